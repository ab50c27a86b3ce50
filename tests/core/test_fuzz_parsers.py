"""Fuzzing the shared core's parsers of outside input (hypothesis): whatever comes in, what comes
out is a value or one of the project's typed errors (``cacore.errors``), never another exception.

- the Lambda's answer: raw payload bytes, any JSON, and real answers mutated (fields dropped or
  replaced, base64 of junk, PEM cut short, chains truncated or swapped);
- SAN lists in every form the contract takes, requests and their validation, and the promise
  that a request ``validate`` accepts can always be turned into a CSR and an event;
- CSR files: random bytes, real CSRs cut or flipped, and the shared CSR checks;
- durations, renewal points, key algorithms; the text made safe for terminals.

Bounded in the suite; ``LCC_FUZZ_EXAMPLES`` runs more by hand (docs/fuzzing.md).
"""

from __future__ import annotations

import base64
import contextlib
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st
from support.fuzzing import FUZZ, hostile_text, json_values
from support.localca_fixtures import csr_pem
from support.pki import MiniCA

from cacore import csr as csrs
from cacore.edge.keygen import build_csr, generate_key
from cacore.errors import CAError, InvalidRequest
from cacore.keys import parse_key_spec
from cacore.renewal import parse_duration, parse_renewal_point
from cacore.request import (
    SAN_TYPES,
    CertificateRequest,
    San,
    Subject,
    parse_sans,
    split_san_list,
    to_event,
    validate,
)
from cacore.response import decode_payload, parse_ca_chain, parse_issued, verify_issued
from cacore.text import printable, unsafe_character

CA = MiniCA.create("Fuzz")
KEY = generate_key()
GOOD = CA.payload(CA.sign(KEY.public_key(), "fuzz.example.com"))
OTHER_CA = MiniCA.create("Other")
PEM_OF = {
    "leaf": base64.b64decode(GOOD["Base64Certificate"]),
    "issuing": base64.b64decode(GOOD["Base64IssuingCaCertificate"]),
    "root": base64.b64decode(GOOD["Base64RootCaCertificate"]),
    "other": OTHER_CA.issuing.public_bytes(serialization.Encoding.PEM),
}
FIELDS = list(GOOD)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- the Lambda's answer ----------------------------------------------------------------------


def _answer(payload: object, function_error: str | None = None) -> None:
    try:
        issued = parse_issued(payload, function_error)
        verify_issued(issued, KEY, None)
        parse_ca_chain(payload, function_error)
    except CAError:
        pass


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_payload_bytes_decode_or_invalid_response(raw):
    try:
        payload = decode_payload(raw)
    except CAError:
        return
    _answer(payload)


@FUZZ
@given(json_values, st.none() | st.sampled_from(["Unhandled", "Handled", ""]) | hostile_text)
def test_fuzz_any_json_answer_is_a_certificate_or_a_typed_error(payload, function_error):
    _answer(payload, function_error)


def _pem_mutation() -> st.SearchStrategy[bytes]:
    whole = st.sampled_from(list(PEM_OF.values()))
    cut = st.tuples(whole, st.integers(0, 900)).map(lambda pair: pair[0][: pair[1]])
    flipped = st.tuples(whole, st.integers(0, 899), st.integers(1, 255)).map(
        lambda t: t[0][: t[1]] + bytes([t[0][t[1] % len(t[0])] ^ t[2]]) + t[0][t[1] + 1 :]
    )
    joined = st.lists(whole | cut, min_size=0, max_size=4).map(b"".join)
    return st.one_of(whole, cut, flipped, joined, st.binary(max_size=200))


field_values = st.one_of(
    _pem_mutation().map(_b64),
    _pem_mutation().map(lambda pem: pem.decode("latin-1")),
    json_values,
)


@FUZZ
@given(
    st.dictionaries(st.sampled_from(FIELDS + ["error", "errorType"]), field_values, max_size=4),
    st.lists(st.sampled_from(FIELDS), max_size=3),
)
def test_fuzz_a_real_answer_with_fields_replaced_or_dropped(replaced, dropped):
    payload = {k: v for k, v in GOOD.items() if k not in dropped}
    payload.update(replaced)
    _answer(payload)


@FUZZ
@given(st.lists(st.sampled_from(["leaf", "issuing", "root", "other"]), max_size=4))
def test_fuzz_chains_in_any_order_or_truncated_never_verify_wrongly(order):
    """Whatever the chain fields hold, a certificate is only accepted when it truly chains."""
    payload = dict(GOOD)
    blocks = [PEM_OF[name] for name in order]
    payload["Base64IssuingCaCertificate"] = _b64(b"".join(blocks[:1]))
    payload["Base64RootCaCertificate"] = _b64(b"".join(blocks[1:]))
    try:
        issued = verify_issued(parse_issued(payload), KEY, None)
    except CAError:
        return
    assert order[:2] == ["issuing", "root"], "a wrong chain was accepted"
    assert issued.serial == int(GOOD["CertificateInfo"]["SerialNumber"])


# --- SANs and requests ------------------------------------------------------------------------


@FUZZ
@given(json_values | hostile_text)
def test_fuzz_sans_in_any_form_parse_or_refuse(value):
    try:
        sans = parse_sans(value)
    except InvalidRequest:
        return
    assert all(isinstance(s, San) and isinstance(s.value, str) for s in sans)


@FUZZ
@given(hostile_text)
def test_fuzz_comma_lists_split_or_refuse(text):
    try:
        assert isinstance(split_san_list(text), list)
    except InvalidRequest as error:
        assert error.field == "sans"


subjects = st.builds(
    Subject,
    common_name=hostile_text,
    organization=st.none() | hostile_text,
    organizational_unit=st.none() | hostile_text,
    locality=st.none() | hostile_text,
    state=st.none() | hostile_text,
    country=st.none() | hostile_text | st.sampled_from(["GB", "US", "gb", "G"]),
    email_address=st.none() | hostile_text | st.sampled_from(["a@example.com", "é@exämple.com"]),
)
sans = st.lists(
    st.builds(San, st.sampled_from(SAN_TYPES) | hostile_text, hostile_text)
    | st.sampled_from(
        [
            San("DNS_NAME", "app.example.com"),
            San("DNS_NAME", "*.example.com"),
            San("IP_ADDRESS", "10.0.0.1"),
            San("IP_ADDRESS", "::1"),
            San("EMAIL_ADDRESS", "team@example.com"),
            San("URL", "https://example.com/id"),
            San("DN", "CN=app,O=Example"),
        ]
    ),
    max_size=4,
)


@FUZZ
@given(
    subjects,
    sans,
    st.integers(-5, 400),
    st.lists(hostile_text | st.sampled_from(["client_auth", "server_auth"]), max_size=3),
    st.lists(hostile_text | st.sampled_from(["CODE_SIGNING", "1.2.3.4"]), max_size=3),
)
def test_fuzz_a_request_validate_accepts_always_becomes_a_csr_and_an_event(
    subject, sans, lifetime, purposes, ekus
):
    request = CertificateRequest(subject, tuple(sans), lifetime, tuple(purposes), tuple(ekus))
    try:
        validate(request)
    except InvalidRequest as error:
        assert error.field and unsafe_character(error.message) is None
        return
    pem = build_csr(KEY, request.subject)  # must not fail for an accepted request
    event = to_event(request, pem)
    json.dumps(event)  # the event must be sendable
    assert csrs.read_csr(pem).subject is not None


# --- CSR files --------------------------------------------------------------------------------

REAL_CSR = csr_pem("partner.example.com")


def _csr_bytes() -> st.SearchStrategy[bytes]:
    cut = st.integers(0, len(REAL_CSR)).map(lambda n: REAL_CSR[:n])
    flipped = st.tuples(st.integers(0, len(REAL_CSR) - 1), st.integers(1, 255)).map(
        lambda t: REAL_CSR[: t[0]] + bytes([REAL_CSR[t[0]] ^ t[1]]) + REAL_CSR[t[0] + 1 :]
    )
    header = st.binary(max_size=300).map(
        lambda junk: (
            b"-----BEGIN CERTIFICATE REQUEST-----\n"
            + base64.encodebytes(junk)
            + b"-----END CERTIFICATE REQUEST-----\n"
        )
    )
    return st.one_of(st.binary(max_size=300), cut, flipped, header)


@FUZZ
@given(_csr_bytes(), st.none() | hostile_text)
def test_fuzz_csr_bytes_load_and_check_or_refuse(data, common_name):
    try:
        csr = csrs.read_csr(data, "--csr")
    except InvalidRequest as error:
        assert error.field == "--csr"
        return
    for check, message in csrs.csr_problems(csr):
        assert check in (csrs.SIGNATURE, csrs.KEY, csrs.NO_COMMON_NAME) and message
    csrs.requested_sans(csr)
    csrs.subject_fields(csr)
    with contextlib.suppress(InvalidRequest):
        csrs.check_csr(csr, "--csr", common_name)


# --- settings-like text -----------------------------------------------------------------------


@FUZZ
@given(
    hostile_text | st.from_regex(r"[0-9.e+]{1,12}(ms|s|m|h|d)([0-9]{1,4}[smhd])?", fullmatch=True)
)  # noqa: E501
def test_fuzz_durations_parse_or_refuse(text):
    with contextlib.suppress(InvalidRequest):
        assert parse_duration(text).total_seconds() >= 0


@FUZZ
@given(hostile_text | st.from_regex(r"[0-9./%e]{1,10}", fullmatch=True))
def test_fuzz_renewal_points_parse_or_refuse(text):
    try:
        point = parse_renewal_point(text)
    except InvalidRequest:
        return
    assert point.fraction is not None or point.before_expiry is not None


@FUZZ
@given(hostile_text)
def test_fuzz_key_algorithms_parse_or_refuse(text):
    with contextlib.suppress(InvalidRequest):
        parse_key_spec(text)


@FUZZ
@given(st.text(alphabet=st.characters(exclude_categories=()), max_size=600), st.integers(1, 700))
def test_fuzz_printable_text_holds_no_control_character_and_is_bounded(text, limit):
    safe = printable(text, limit)
    assert unsafe_character(safe) is None
    assert len(safe) <= 6 * limit + 40
    safe.encode("utf-8")  # always encodable for a terminal or a log


# --- what the long runs found, kept as plain tests (docs/fuzzing.md) ----------------------------


def _with_bad_version(der: bytes, marker: bytes, replacement: bytes) -> bytes:
    assert marker in der[:40]
    return der.replace(marker, replacement, 1)


def test_found_a_csr_with_an_invalid_version_is_refused_not_a_crash():
    der = x509.load_pem_x509_csr(REAL_CSR).public_bytes(serialization.Encoding.DER)
    bad = _with_bad_version(der, b"\x02\x01\x00", b"\x02\x01\x40")  # version 64
    pem = b"-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(bad)
    pem += b"-----END CERTIFICATE REQUEST-----\n"
    with pytest.raises(InvalidRequest) as caught:
        csrs.read_csr(pem, "--csr")
    assert "not a valid CSR version" in caught.value.message


def test_found_a_certificate_with_an_invalid_version_is_an_invalid_response():
    der = CA.issuing.public_bytes(serialization.Encoding.DER)
    bad = _with_bad_version(der, b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x07")
    pem = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(bad)
    pem += b"-----END CERTIFICATE-----\n"
    payload = dict(GOOD, Base64IssuingCaCertificate=_b64(pem))
    with pytest.raises(CAError):
        parse_issued(payload)


@pytest.mark.parametrize("text", ["\r0", "a.example.com\nb.example.com", "a\x00b"])
def test_found_a_san_list_with_a_line_break_or_nul_is_refused(text):
    with pytest.raises(InvalidRequest) as caught:
        parse_sans(text)
    assert "line break or a NUL" in caught.value.message
