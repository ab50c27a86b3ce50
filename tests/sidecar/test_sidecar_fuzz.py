"""Fuzzing the sidecar's parsers of outside input (hypothesis): its settings (every variable and
flag, any text) end in ``Settings`` or one ``SettingsError`` line; the files it finds on disk
(any bytes under any name, a real set with files cut, swapped or corrupted) end in facts and a
decision, never an exception. Bounded in the suite; ``LCC_FUZZ_EXAMPLES`` runs more by hand."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from support.fuzzing import FUZZ, hostile_text
from support.pki import MiniCA

from cacore.credentials import FileNames, credential_files
from cacore.edge.keygen import generate_key
from cacore.keys import DEFAULT_KEY, private_key_pem
from cacore.request import CertificateRequest, Subject
from cacore.response import parse_issued
from cacore.text import unsafe_character
from sidecar.observe import observe
from sidecar.policy import evaluate, readiness_problem
from sidecar.settings import OPTIONS, SettingsError, load

VARIABLES = [option.variables[0] for option in OPTIONS]
# Values people really write, so the fuzzer also gets past the first check of each setting.
PLAUSIBLE = st.sampled_from(
    ["1", "0", "30", "0600", "0640", "0000", "2/3", "70%", "10d", "1s", "5m", "true", "off",
     "0.0.0.0:8081", "HUP", "app.example.com", "tls.key", "/certs", "1e400h", "-1", "nan"]
)  # fmt: skip


@FUZZ
@given(st.dictionaries(st.sampled_from(VARIABLES), hostile_text | PLAUSIBLE, max_size=8))
def test_fuzz_any_environment_is_settings_or_one_settings_error(environ):
    environ = {k: v for k, v in environ.items() if "\0" not in v}  # the OS forbids NUL
    try:
        load(["once"], {"CERT_SIDECAR_COMMON_NAME": "app.example.com", **environ})
    except SettingsError as error:
        line = str(error)
        assert "\n" not in line.strip() or unsafe_character(line) is None
        assert line.startswith(tuple(VARIABLES)) or "see cert-sidecar --help" in line


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(OPTIONS), hostile_text | PLAUSIBLE), max_size=4))
def test_fuzz_any_flags_are_settings_or_one_settings_error(flags):
    argv = ["check"]
    for option, value in flags:
        if "\0" not in value:
            argv.append(f"{option.flag}={value}")
    with contextlib.suppress(SettingsError):
        load(argv, {})


CA = MiniCA.create("Sidecar fuzz")
KEY = generate_key()
ISSUED = parse_issued(CA.payload(CA.sign(KEY.public_key(), "App Client")))
NAMES = FileNames()
GOOD_FILES = credential_files(private_key_pem(KEY), ISSUED, NAMES)
# not a domain: no SAN expected; MiniCA's leaf has no extended key usage: no purpose expected
REQUEST = CertificateRequest(Subject("App Client"), purposes=())
NOW = datetime.now(UTC)


def _mangled(data: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.just(data),
        st.integers(0, len(data)).map(lambda n: data[:n]),
        st.tuples(st.integers(0, len(data) - 1), st.integers(1, 255)).map(
            lambda t: data[: t[0]] + bytes([data[t[0]] ^ t[1]]) + data[t[0] + 1 :]
        ),
        st.sampled_from(list(GOOD_FILES.values())),
        st.binary(max_size=200),
    )


file_sets = st.fixed_dictionaries(
    {},
    optional={name: _mangled(content) for name, content in GOOD_FILES.items()},
).flatmap(
    lambda files: st.dictionaries(hostile_text, st.binary(max_size=50), max_size=2).map(
        lambda extra: {**extra, **files}
    )
)


@FUZZ
@given(st.none() | file_sets, st.integers(-40, 40))
def test_fuzz_any_files_on_disk_are_facts_and_a_decision(files, days):
    observed = observe(files, NAMES)
    now = NOW + timedelta(days=days)
    readiness_problem(observed, now)
    decision = evaluate(observed, REQUEST, DEFAULT_KEY, now)
    assert decision.reason and isinstance(decision.issue, bool)
    if files == GOOD_FILES and -1 < days < 19:
        assert not decision.issue, decision
