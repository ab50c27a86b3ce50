"""Property-based fuzzing of the local CA's request handling (hypothesis).

Three levels, each with its own promise:
- the handler (`issuance.handle`) on any JSON event answers a certificate, a refusal, or raises
  one of the exceptions the real handler raises (a crash); nothing is recorded unless issued;
- `LocalCA.invoke` on any bytes answers a Reply (result, refusal, FunctionError) or the 400
  the service gives for a payload that is not JSON; never anything else;
- the HTTP server on any request bytes answers with a JSON error or result, or closes the
  connection; it keeps serving and never logs a traceback.

The suite runs a bounded number of examples; a longer run by hand (docs/local-ca.md):
    LOCALCA_FUZZ_EXAMPLES=20000 python -m pytest -q --timeout=0 tests/localca/test_localca_fuzz.py
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import assume, given
from hypothesis import event as label
from hypothesis import strategies as st
from localca_harness import (
    INVOKE_PATH,
    NOW,
    Crash,
    Lambda,
    RawReply,
    ReplyStream,
    http_request,
    read_reply,
    signed_head,
)
from support.fuzzing import fuzz_settings
from support.localca_fixtures import csr_pem

from localca.config import Config
from localca.logs import JsonLog
from localca.replies import HttpError, Reply
from localca.server import LocalCA, LocalCAServer

EXAMPLES = int(os.environ.get("LOCALCA_FUZZ_EXAMPLES", "60"))
# A client waits this long for an answer: a hang fails, a starved machine does not.
PATIENCE = 30.0
FUZZ = fuzz_settings(EXAMPLES)

# What the real handler can raise on a hostile event (each traced to an upstream step in
# test_localca_contract.py); "Error" is binascii.Error (bad base64).
CRASH_TYPES = {
    "AttributeError",
    "TypeError",
    "ValueError",
    "KeyError",
    "OverflowError",
    "IndexError",
    "Error",
    "ParamValidationError",
    "ClientError",
    "UnicodeEncodeError",
}
REFUSALS = (
    "CSR must include a Common Name",
    "Private key has already been used for a certificate",
    "Certificate already issued",
    "CSR file '",
    "Custom extension ",
)
CERT_KEYS = [
    "CertificateInfo",
    "Base64Certificate",
    "Subject",
    "Base64IssuingCaCertificate",
    "Base64RootCaCertificate",
    "Base64CaChain",
]
CHAIN_KEYS = CERT_KEYS[3:]

_KEYS = [ec.generate_private_key(ec.SECP256R1()) for _ in range(2)] + [
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
]
CSRS = [
    base64.b64encode(csr_pem(cn, key)).decode() for cn in ("fuzz.example.com", "x") for key in _KEYS
] + [base64.b64encode(csr_pem(None, _KEYS[0])).decode()]

leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
json_values = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
san_types = st.sampled_from(
    ["DNS_NAME", "IP_ADDRESS", "EMAIL_ADDRESS", "URL", "DN", "dns_name", "BOGUS", ""]
)
san_texts = st.one_of(
    st.sampled_from(
        [
            "a.example.com",
            "*.example.com",
            "*.com",
            "10.0.0.1",
            "::1",
            "ops@example.com",
            "https://a.example.com/x",
            "spiffe://x/y",
            "CN=app,O=Example",
            "C=USA",
            "bücher.example",
            "é@example.com",
            "",
        ]
    ),
    st.text(max_size=16),
)
sans = st.one_of(
    json_values,
    san_texts,
    st.lists(san_texts, max_size=4),
    st.lists(
        st.fixed_dictionaries(
            {}, optional={"type": st.one_of(san_types, leaf), "value": st.one_of(san_texts, leaf)}
        ),
        max_size=4,
    ),
    st.dictionaries(
        san_types,
        st.one_of(san_texts, st.lists(st.one_of(san_texts, leaf), max_size=3), leaf),
        max_size=3,
    ),
)
fields = {
    "common_name": st.one_of(st.sampled_from(["fuzz.example.com", "x", "", "a" * 65]), leaf),
    "base64_csr_data": st.one_of(st.sampled_from(CSRS), leaf, st.text(max_size=40)),
    "csr_file": st.one_of(st.sampled_from(["app.csr", "missing.csr", "../x"]), leaf),
    "lifetime": st.one_of(st.integers(-3, 1000), leaf, st.sampled_from(["5", "x", 1e999])),
    "purposes": st.one_of(
        st.lists(st.sampled_from(["client_auth", "server_auth", "x"])), json_values
    ),
    "extended_key_usages": st.one_of(
        st.lists(st.sampled_from(["CODE_SIGNING", "NONE", "1.2.3", "1.foo", "2.999", "ANY"])),
        json_values,
    ),
    "extensions": st.one_of(
        st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "oid": st.one_of(st.sampled_from(["1.3.6.1.4.1.1.1", "2.5.29.17"]), leaf),
                    "value_b64": st.one_of(st.just("AA=="), leaf),
                    "critical": leaf,
                },
            )
        ),
        json_values,
    ),
    "sans": sans,
    **{
        name: st.one_of(st.sampled_from(["GB", "USA", "Acme", ""]), leaf)
        for name in (
            "country",
            "organization",
            "organizational_unit",
            "locality",
            "state",
            "email_address",
        )
    },
    **{name: leaf for name in ("force_issue", "cert_bundle", "ca_chain_only")},
}
# Mostly-valid events with a few fields fuzzed reach every later step (signing included).
plausible = st.builds(
    lambda n, csr, extra: {"common_name": f"f{n}.example.com", "base64_csr_data": csr, **extra},
    st.integers(0, 10**9),
    st.sampled_from(CSRS[:3]),
    st.fixed_dictionaries(
        {},
        optional={k: v for k, v in fields.items() if k not in ("common_name", "base64_csr_data")},
    ),
)
events = st.one_of(
    plausible,
    st.fixed_dictionaries({}, optional=fields),
    json_values,
)


@pytest.fixture(scope="module")
def fuzz_lambda(tmp_path_factory) -> Lambda:
    from localca.authority import load_or_create

    ca, _ = load_or_create(tmp_path_factory.mktemp("fuzz-ca") / "state", NOW)
    lam = Lambda(ca)
    lam.allowlist = ("1.3.6.1.4.1.1.1",)
    lam.csr_files["app.csr"] = csr_pem("fuzz.example.com", _KEYS[1])
    return lam


@FUZZ
@given(event=events)
def test_the_handler_answers_or_crashes_as_upstream_can(fuzz_lambda, event):
    before = set(fuzz_lambda.history.keys)

    run = fuzz_lambda(event)

    if isinstance(run.result, Crash):
        label(f"crash {run.result.type}")
        assert run.result.type in CRASH_TYPES, run.result
        assert fuzz_lambda.history.keys == before
        return
    payload = run.result.payload
    label(
        "refusal"
        if "error" in payload
        else "chain"
        if "Base64Certificate" not in payload
        else "certificate"
    )
    if "error" in payload:
        assert list(payload) == ["error"] and isinstance(payload["error"], str)
        assert payload["error"].startswith(REFUSALS) or payload["error"].endswith("is too short")
        assert fuzz_lambda.history.keys == before
    elif list(payload) == CHAIN_KEYS:
        assert event.get("ca_chain_only")
    else:
        assert list(payload) == CERT_KEYS
        cert = run.cert
        cert.verify_directly_issued_by(fuzz_lambda.ca.issuing_cert)
        assert cert.not_valid_after_utc - cert.not_valid_before_utc <= (
            datetime(2000, 12, 31, 0, 5, tzinfo=UTC) - datetime(2000, 1, 1, tzinfo=UTC)
        )
        assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert payload["CertificateInfo"]["CommonName"] == event["common_name"]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    config = Config(state_dir=tmp_path_factory.mktemp("fuzz-app") / "state")
    app = LocalCA(config, lambda: datetime.now(UTC), JsonLog(io.StringIO()))
    app.open()
    yield app
    app.close()


payloads = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    events.map(lambda v: json.dumps(v, default=str).encode()),  # Infinity included: a 400
    st.sampled_from([b"", b"   ", b"NaN", b"[" * 3000, b"1" * 5000, b"\xef\xbb\xbf{}", b"\xff"]),
)


@FUZZ
@given(payload=payloads)
def test_invoke_answers_every_payload_with_a_typed_reply(app, payload):
    try:
        reply, lines = app.invoke(payload, "fuzz")
    except HttpError as error:
        assert (error.status, error.code) == (400, "InvalidRequestContentException")
        return
    assert isinstance(reply, Reply) and reply.status == 200
    body = json.loads(reply.body)
    if reply.headers.get("X-Amz-Function-Error") == "Unhandled":
        assert body["errorType"] in CRASH_TYPES | {"Runtime.UnmarshalError"}
    else:
        assert "error" in body or "Base64CaChain" in body
    assert all(isinstance(line, str) for line in lines)


@pytest.fixture(scope="module")
def http_server(tmp_path_factory):
    stream = io.StringIO()
    config = Config(
        state_dir=tmp_path_factory.mktemp("fuzz-http") / "state",
        request_timeout=0.5,
        idle_timeout=0.5,
    )
    with LocalCAServer(config, log=JsonLog(stream)) as server:
        yield server
    log = stream.getvalue()
    assert "Traceback" not in log
    assert '"server_error"' not in log and '"connection_error"' not in log


header_names = st.sampled_from(
    [
        "Host",
        "Content-Length",
        "Transfer-Encoding",
        "Expect",
        "Authorization",
        "X-Amz-Date",
        "Connection",
        "X-Amz-Invocation-Type",
        "X-Amz-Log-Type",
        "Content-Type",
    ]
)
header_values = st.one_of(
    st.sampled_from(
        [
            "0",
            "5",
            "-1",
            "chunked",
            "gzip",
            "100-continue",
            "close",
            "keep-alive",
            "Event",
            "DryRun",
            "Tail",
            "99999999999",
            "AWS4-HMAC-SHA256 Credential=x",
        ]
    ),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
)
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "BREW"])
paths = st.one_of(
    st.sampled_from(
        [
            INVOKE_PATH,
            "/",
            "/_localca/stats",
            "/_localca/faults",
            "/_localca/nope",
            INVOKE_PATH + "?Qualifier=x",
            "/2015-03-31/functions//invocations",
            "http://[::1/",
            "/2015-03-31/functions/%ff%00/invocations",
        ]
    ),
    st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=30),
)
versions = st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/x", ""])
raw_requests = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda m, p, v, hs, body: (
            (
                f"{m} {p} {v}".strip()
                + "\r\n"
                + "".join(f"{k}: {val}\r\n" for k, val in hs)
                + "\r\n"
            ).encode("latin-1")
            + body
        ),
        methods,
        paths,
        versions,
        st.lists(st.tuples(header_names, header_values), max_size=6),
        st.binary(max_size=100),
    ),
)


def _exchange(port: int, data: bytes) -> RawReply:
    with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        # The server splits the request line on whitespace, as http.server does.
        return read_reply(sock, PATIENCE, to_head=data.split(None, 1)[:1] == [b"HEAD"])


@FUZZ
@given(data=raw_requests)
def test_the_server_answers_any_request_bytes_with_json_or_closes(http_server, data):
    reply = _exchange(http_server.port, data)

    if reply.status is not None:
        assert 100 <= reply.status < 600
        if reply.body:
            json.loads(reply.body)
    health = _exchange(http_server.port, b"GET /_localca/health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert health.status == 200


@FUZZ
@given(event=events)
def test_signed_invocations_of_any_event_get_lambda_answers(http_server, event):
    port = http_server.port
    try:
        body = json.dumps(event, default=str, allow_nan=False).encode()
    except ValueError:  # an infinity: not JSON, the 400 row of the fault table
        assume(False)
    headers = {
        "Host": f"127.0.0.1:{port}",
        **signed_head(port, body),
        "Content-Length": str(len(body)),
    }

    reply = _exchange(port, http_request("POST", INVOKE_PATH, headers, body))

    assert reply.status == 200
    payload = json.loads(reply.body)
    if reply.headers.get("x-amz-function-error"):
        assert payload["errorType"] in CRASH_TYPES
    else:
        assert list(payload) in (["error"], CERT_KEYS, CHAIN_KEYS)


@FUZZ
@given(
    event=events,
    sizes=st.lists(st.integers(1, 64), min_size=1, max_size=8),
    junk=st.sampled_from(["", ";ext=1", " ", ";a"]),
    requests=st.integers(1, 3),
)
def test_chunked_and_pipelined_signed_invocations(http_server, event, sizes, junk, requests):
    port = http_server.port
    try:
        body = json.dumps(event, default=str, allow_nan=False).encode()
    except ValueError:
        assume(False)
    chunks, rest = [], body
    for size in sizes * (len(body) // sum(sizes) + 1):
        if not rest:
            break
        chunks.append(b"%x%s\r\n%s\r\n" % (min(size, len(rest)), junk.encode(), rest[:size]))
        rest = rest[size:]
    headers = {
        "Host": f"127.0.0.1:{port}",
        **signed_head(port, body),
        "Transfer-Encoding": "chunked",
    }
    one = http_request("POST", INVOKE_PATH, headers, b"".join(chunks) + b"0\r\n\r\n")

    with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as sock:
        sock.sendall(one * requests)  # pipelined on one connection
        stream = ReplyStream(sock, PATIENCE)
        replies = [stream.read() for _ in range(requests)]

    for reply in replies:
        assert reply.status == 200, reply
        assert list(json.loads(reply.body)) in (
            ["error"],
            CERT_KEYS,
            CHAIN_KEYS,
            ["errorMessage", "errorType", "requestId", "stackTrace"],
        )


mutations = st.sampled_from(["drop", "duplicate", "lower", "garble", "none"])


@FUZZ
@given(event=st.fixed_dictionaries({}, optional=fields), name=header_names, how=mutations)
def test_signed_requests_with_a_mutated_header_get_a_typed_answer(http_server, event, name, how):
    port = http_server.port
    try:
        body = json.dumps(event, default=str, allow_nan=False).encode()
    except ValueError:
        assume(False)
    headers = {
        "Host": f"127.0.0.1:{port}",
        **signed_head(port, body),
        "Content-Length": str(len(body)),
    }
    lines = [f"{k}: {v}" for k, v in headers.items()]
    target = next(
        (i for i, line in enumerate(lines) if line.lower().startswith(name.lower())), None
    )
    if target is not None and how == "drop":
        del lines[target]
    elif target is not None and how == "duplicate":
        lines.append(lines[target])
    elif target is not None and how == "lower":
        lines[target] = lines[target].lower()
    elif target is not None and how == "garble":
        lines[target] = lines[target][:-1] + "\x7f"
    data = (f"POST {INVOKE_PATH} HTTP/1.1\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode(
        "latin-1"
    ) + body

    reply = _exchange(port, data)

    if reply.status is not None and reply.body:
        answer = json.loads(reply.body)
        assert isinstance(answer, dict)
        if reply.status != 200:
            assert reply.code and isinstance(answer["message"], str)
