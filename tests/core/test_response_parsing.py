"""Every answer shape of the contract becomes a verified certificate or a typed error."""

import base64

import pytest
from support.pki import MiniCA

from cacore.edge.keygen import generate_key
from cacore.errors import CAFunctionError, CARefused, InvalidResponse
from cacore.response import parse_ca_chain, parse_issued, verify_issued

CA = MiniCA.create()
KEY = generate_key()
LEAF = CA.sign(KEY.public_key(), "app.example.com")


def test_a_success_payload_becomes_an_issued_certificate():
    issued = parse_issued(CA.payload(LEAF))
    assert issued.serial == LEAF.serial_number
    assert issued.not_before == LEAF.not_valid_before_utc
    assert issued.not_after == LEAF.not_valid_after_utc
    assert issued.not_after.tzinfo is not None
    assert issued.common_name == "app.example.com"
    assert issued.chain_pem.count(b"BEGIN CERTIFICATE") == 2
    assert issued.ca_bundle_pem.count(b"BEGIN CERTIFICATE") == 2
    assert verify_issued(issued, KEY) is issued


def test_with_cert_bundle_the_leaf_is_the_first_certificate():
    issued = parse_issued(CA.payload(LEAF, bundle=True))
    assert issued.certificate.serial_number == LEAF.serial_number
    assert issued.certificate_pem.count(b"BEGIN CERTIFICATE") == 1


@pytest.mark.parametrize(
    "message",
    [
        "CSR must include a Common Name",
        "Private key has already been used for a certificate",
        "0 is too short",
        "Certificate already issued",
        "CSR file 'partner.csr' not found in S3 bucket 'serverless-ca-internal-dev'",
        "1.2.3.4 is not in the configured allowlist",
    ],
)
def test_each_refusal_keeps_the_ca_message_verbatim(message):
    with pytest.raises(CARefused) as caught:
        parse_issued({"error": message})
    assert caught.value.message == message
    assert caught.value.reason == "Refused"
    assert not caught.value.retryable


@pytest.mark.parametrize(
    ("payload", "error_type"),
    [
        pytest.param(
            {"errorMessage": "Incorrect padding", "errorType": "Error", "stackTrace": []},
            "Error",
            id="bad base64 crashes the function",
        ),
        pytest.param(
            {"errorMessage": "'common_name'", "errorType": "KeyError"},
            "KeyError",
            id="a missing common name crashes the function",
        ),
        pytest.param(
            {"errorMessage": "Unable to marshal response", "errorType": "Runtime.MarshalError"},
            "Runtime.MarshalError",
            id="ca_chain_only on v4.0.0 fails to marshal",
        ),
        pytest.param(
            "Task timed out",
            "Unhandled",
            id="a payload that is not an object still reports the crash",
        ),
    ],
)
def test_function_errors_are_typed_and_retryable(payload, error_type):
    with pytest.raises(CAFunctionError) as caught:
        parse_issued(payload, function_error="Unhandled")
    assert caught.value.error_type == error_type
    assert caught.value.retryable


def test_ca_chain_only_marshal_error_is_survivable():
    with pytest.raises(CAFunctionError):
        parse_ca_chain({"errorType": "Runtime.MarshalError", "errorMessage": "x"}, "Unhandled")


def test_ca_chain_only_success_gives_both_ca_certificates():
    payload = CA.payload(LEAF)
    chain = parse_ca_chain(
        {k: payload[k] for k in ("Base64IssuingCaCertificate", "Base64RootCaCertificate")}
    )
    assert b"BEGIN CERTIFICATE" in chain.issuing_ca_pem
    assert b"BEGIN CERTIFICATE" in chain.root_ca_pem


def _without(key):
    payload = CA.payload(LEAF)
    del payload[key]
    return payload


def _with(key, value):
    payload = CA.payload(LEAF)
    payload[key] = value
    return payload


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(None, id="an empty payload"),
        pytest.param([], id="a list"),
        pytest.param(_without("Base64Certificate"), id="no certificate"),
        pytest.param(_without("Base64IssuingCaCertificate"), id="no issuing CA"),
        pytest.param(
            _with("Base64Certificate", "not base64!"), id="a certificate that is not base64"
        ),
        pytest.param(
            _with("Base64Certificate", base64.b64encode(b"hello").decode()),
            id="base64 of something that is not PEM",
        ),
        pytest.param(
            _with("CertificateInfo", {"SerialNumber": "1"}),
            id="a serial that contradicts the certificate",
        ),
    ],
)
def test_malformed_answers_are_invalid_responses(payload):
    with pytest.raises(InvalidResponse):
        parse_issued(payload)


def test_a_certificate_for_another_key_is_refused():
    issued = parse_issued(CA.payload(CA.sign(generate_key().public_key(), "app.example.com")))
    with pytest.raises(InvalidResponse, match="public key is not the CSR's key"):
        verify_issued(issued, KEY)


def test_a_certificate_from_another_ca_is_refused():
    other = MiniCA.create("Other")
    foreign = other.payload(other.sign(KEY.public_key(), "app.example.com"))
    payload = CA.payload(LEAF)
    payload["Base64Certificate"] = foreign["Base64Certificate"]
    payload["CertificateInfo"] = foreign["CertificateInfo"]
    with pytest.raises(InvalidResponse, match="does not verify"):
        verify_issued(parse_issued(payload), KEY)


def test_an_issuing_ca_not_under_the_returned_root_is_refused():
    other = MiniCA.create("Other")
    payload = CA.payload(LEAF)
    payload["Base64RootCaCertificate"] = other.payload(LEAF)["Base64RootCaCertificate"]
    with pytest.raises(InvalidResponse, match="does not verify"):
        verify_issued(parse_issued(payload), KEY)


def test_a_certificate_that_is_not_valid_now_is_refused():
    """Written to disk, an expired certificate would make the caller ask again at once, for ever."""
    from datetime import UTC, datetime, timedelta

    issued = parse_issued(CA.payload(LEAF))
    now = datetime.now(UTC)
    assert verify_issued(issued, KEY, now) is issued
    for wrong_clock in (now + timedelta(days=400), now - timedelta(days=1)):
        with pytest.raises(InvalidResponse) as caught:
            verify_issued(issued, KEY, wrong_clock)
        assert "not valid now" in caught.value.message


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe not utf-8", b"[" * 100_000, b"1" * 5000, b'{"a": NaN', b"<html>502</html>"],
    ids=["not UTF-8", "nested without end", "an integer of 5000 digits", "cut short", "HTML"],
)
def test_payload_bytes_that_are_not_json_are_an_invalid_response(raw):
    from cacore.response import decode_payload

    with pytest.raises(InvalidResponse):
        decode_payload(raw)


def test_a_chain_field_holding_junk_between_pem_markers_is_an_invalid_response():
    payload = dict(CA.payload(LEAF))
    junk = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    payload["Base64RootCaCertificate"] = base64.b64encode(junk).decode()
    with pytest.raises(InvalidResponse):
        parse_issued(payload)


def test_certificate_info_of_the_wrong_type_is_ignored_not_a_crash():
    payload = dict(CA.payload(LEAF), CertificateInfo=["not", "an", "object"])
    assert parse_issued(payload).serial == LEAF.serial_number


def test_a_chain_verified_before_does_not_vouch_for_another_root():
    """The issuing CA's signature under its root is remembered once verified: by both exact
    certificates, so the same issuing CA with any other root is checked, and refused."""
    assert verify_issued(parse_issued(CA.payload(LEAF)), KEY).serial == LEAF.serial_number
    assert verify_issued(parse_issued(CA.payload(LEAF)), KEY).serial == LEAF.serial_number
    payload = CA.payload(LEAF)
    payload["Base64RootCaCertificate"] = MiniCA.create("Other").payload(LEAF)[
        "Base64RootCaCertificate"
    ]
    for _ in range(2):
        with pytest.raises(InvalidResponse, match="does not verify"):
            verify_issued(parse_issued(payload), KEY)
