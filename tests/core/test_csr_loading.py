"""``load_csr``: a CSR made elsewhere, judged once (parsed and its signature checked), however
often the next steps ask again; a CSR that fails is refused every time, naming the field."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cacore.csr import SIGNATURE_MESSAGE, load_csr
from cacore.edge.keygen import build_csr, generate_key
from cacore.errors import InvalidRequest
from cacore.request import Subject


def _tampered(pem: bytes) -> bytes:
    """The same request with one byte of its signature changed (it still parses)."""
    der = bytearray(x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01
    return x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)


def test_a_csr_is_judged_once_and_the_same_bytes_give_the_same_request():
    pem = build_csr(generate_key(), Subject("app.example.com"))
    first = load_csr(pem, "spec.request")
    assert load_csr(pem, "csr") is first
    assert first.is_signature_valid


def test_a_csr_whose_signature_does_not_verify_is_refused_every_time_naming_the_field():
    key = generate_key()
    good = build_csr(key, Subject("app.example.com"))
    load_csr(good)
    bad = _tampered(good)
    for field in ("spec.request", "--csr"):
        with pytest.raises(InvalidRequest) as caught:
            load_csr(bad, field)
        assert caught.value.field == field
        assert caught.value.message == f"{field}: {SIGNATURE_MESSAGE}"


def test_bytes_that_are_no_csr_are_refused_with_what_they_are():
    with pytest.raises(InvalidRequest, match="spec.request: is not a PEM certificate request"):
        load_csr(b"hello", "spec.request")
    with pytest.raises(InvalidRequest, match="spec.request: is not a PEM certificate request"):
        load_csr(b"hello", "spec.request")
