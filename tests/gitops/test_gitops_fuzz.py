"""Fuzzing certs-gitops' parsers of outside input (hypothesis): the files of a pull request (any
bytes as tls.json, revoked.json, CSRs and the CA bundle; any JSON; entries with hostile values)
and the CA's DynamoDB items end in findings, records and plans, never an exception.

Two consistency promises too: every finding points at a line of the file, and an entry with no
error finding always becomes a request the shared core accepts (what validate passes, issue can
send). Bounded in the suite; ``LCC_FUZZ_EXAMPLES`` runs more by hand (docs/fuzzing.md)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.fuzzing import FUZZ, hostile_text, json_values
from support.localca_fixtures import csr_pem

from cacore.errors import InvalidRequest
from cacore.request import validate
from gitops import jsontext
from gitops import problems as p
from gitops.layout import EnvLayout
from gitops.records import parse_item, parse_serial
from gitops.schema import ENTRY_KEYS, check_entry, check_revoked_entry, to_request
from gitops.validation import EnvState, check_state

LAYOUT = EnvLayout(Path("certs"), "dev")
CSR = csr_pem("partner.example.com")
VALUES = st.one_of(
    json_values,
    st.sampled_from(
        ["partner.example.com", "GB", 30, 400, ["client_auth"], ["server_auth", "x"], True,
         "partner.csr", ["a.example.com", {"type": "IP_ADDRESS", "value": "10.0.0.1"}],
         {"DNS_NAME": ["a.example.com"]}, [{"oid": "1.2.3", "value_b64": "AAA="}], "*.com"]
    ),
)  # fmt: skip
entries = st.dictionaries(st.sampled_from(ENTRY_KEYS) | hostile_text, VALUES, max_size=8)


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_fuzz_any_bytes_decode_to_text_or_one_finding(data):
    text = jsontext.decode(data)
    if isinstance(text, jsontext.SyntaxProblem):
        assert text.line >= 1 and text.col >= 1 and text.message
        return
    parsed = jsontext.parse(text)
    if isinstance(parsed, jsontext.Document):
        for line, col in parsed.positions.values():
            assert 1 <= line <= text.count("\n") + 1 and col >= 1


@FUZZ
@given(st.lists(entries | VALUES, max_size=6), st.sampled_from([None, 2]))
def test_fuzz_any_tls_json_gives_findings_that_point_at_its_lines(values, indent):
    text = json.dumps(values, indent=indent)
    state = EnvState(
        LAYOUT, tls_text=text, csrs={"partner.csr": CSR, "junk.csr": b"-----BEGIN junk"}
    )
    result = check_state(state)
    lines = text.count("\n") + 1
    for problem in result.problems:
        assert problem.code and problem.message
        if problem.file.endswith("tls.json") and problem.line is not None:
            assert 1 <= problem.line <= lines, problem
    for checked in result.entries:
        # an entry validate passes is a request the core accepts, so issue can send it
        validate(to_request(checked.entry), state.max_lifetime_days)


@FUZZ
@given(entries, st.integers(0, 5))
def test_fuzz_an_entry_without_errors_is_a_valid_request(entry, index):
    findings = check_entry(entry, index)
    if any(f.severity == p.ERROR for f in findings):
        return
    try:
        validate(to_request(entry))
    except InvalidRequest as error:  # pragma: no cover - the failure this test exists for
        raise AssertionError(
            f"validate passed {entry!r} but the core refuses it: {error}"
        ) from error


@FUZZ
@given(
    st.text(max_size=300)
    | st.lists(
        st.dictionaries(st.sampled_from(["common_name", "serial_number", "x"]), VALUES), max_size=4
    ).map(json.dumps)
)
def test_fuzz_any_revoked_json_gives_findings(text):
    state = EnvState(LAYOUT, tls_text="[]", revoked_texts={LAYOUT.revoked_json: text})
    check_state(state)
    parsed = jsontext.parse(text)
    if isinstance(parsed, jsontext.Document) and isinstance(parsed.value, list):
        for index, value in enumerate(parsed.value):
            check_revoked_entry(value, index)


@FUZZ
@given(st.binary(max_size=400), st.dictionaries(hostile_text, st.binary(max_size=80), max_size=3))
def test_fuzz_any_csr_and_bundle_bytes_give_findings(bundle, csr_files):
    entry = [{"common_name": "partner.example.com", "csr_file": name} for name in csr_files]
    state = EnvState(LAYOUT, tls_text=json.dumps(entry), csrs=csr_files, ca_bundle=bundle)
    check_state(state)


dynamodb_values = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(["S", "B", "N"]), json_values | st.binary(max_size=60)),
)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["CommonName", "SerialNumber", "Issued", "Expires", "Certificate", "X"]),
        dynamodb_values,
    )
)
def test_fuzz_any_dynamodb_item_is_a_record(item):
    record = parse_item(item)
    from datetime import UTC, datetime

    assert record.state(datetime.now(UTC), set()) in (
        "valid",
        "expired",
        "revoked",
        "unreadable",
        "not-yet-valid",
    )


@FUZZ
@given(hostile_text | st.from_regex(r"(0x)?[0-9a-fA-F:]{1,50}", fullmatch=True))
def test_fuzz_serials_parse_or_refuse(text):
    with contextlib.suppress(ValueError):
        assert parse_serial(text).isdigit()


@pytest.mark.parametrize("text", [":-1", "0x-1", "0x_ff", "1_000", "+5", "٣", "²", "ab:", "0x"])
def test_found_serials_with_signs_underscores_or_other_digits_are_refused(text):
    with pytest.raises(ValueError):
        parse_serial(text)


@pytest.mark.parametrize(
    ("text", "serial"), [("12345", "12345"), ("0x1f", "31"), ("1F:2a", "7978"), (" 007 ", "7")]
)
def test_serials_in_decimal_hex_and_colon_hex(text, serial):
    assert parse_serial(text) == serial
