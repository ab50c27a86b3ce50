"""Reading the CA's answer: the one place where a Lambda payload becomes a certificate or error."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from cryptography import x509

from cacore.certinfo import chain_problem, load_certificate, split_pem_certificates
from cacore.errors import CAFunctionError, CARefused, InvalidResponse
from cacore.keys import PrivateKey, public_key_bytes


@dataclass(frozen=True)
class IssuedCertificate:
    """A leaf and its CA certificates, as PEM bytes, with the facts callers schedule on."""

    certificate_pem: bytes  # the leaf alone
    issuing_ca_pem: bytes
    root_ca_pem: bytes
    serial: int
    not_before: datetime
    not_after: datetime
    subject: str
    common_name: str

    @property
    def chain_pem(self) -> bytes:
        """Leaf then issuing CA: what a TLS peer presents (``tls.crt``)."""
        return self.certificate_pem + self.issuing_ca_pem

    @property
    def ca_bundle_pem(self) -> bytes:
        """Issuing then root CA: what a peer trusts (``ca.crt``)."""
        return self.issuing_ca_pem + self.root_ca_pem

    @property
    def certificate(self) -> x509.Certificate:
        return load_certificate(self.certificate_pem)


@dataclass(frozen=True)
class Issuance:
    """One successful issuance: the key the caller made and the verified certificate for it."""

    key: PrivateKey
    certificate: IssuedCertificate
    seconds: float


@dataclass(frozen=True)
class CAChain:
    issuing_ca_pem: bytes
    root_ca_pem: bytes


def decode_payload(raw: bytes) -> object:
    """The Lambda's payload bytes as JSON (None when empty); anything else is
    ``InvalidResponse``, whatever the bytes are (not UTF-8, not JSON, nested without end)."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise InvalidResponse(
            f"CA payload is not JSON ({type(error).__name__}): {raw[:200]!r}"
        ) from error


def raise_for_failure(payload: object, function_error: str | None) -> dict:
    """The payload as a dict if it is an answer, else the typed error it stands for."""
    if function_error:
        body = payload if isinstance(payload, dict) else {}
        raise CAFunctionError(
            str(body.get("errorType", function_error)),
            str(body.get("errorMessage", payload)),
        )
    if not isinstance(payload, dict):
        raise InvalidResponse(f"CA answered {type(payload).__name__}, expected a JSON object")
    if "error" in payload:
        raise CARefused(str(payload["error"]))
    return payload


def _pem_field(payload: dict, key: str) -> bytes:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidResponse(f"CA response has no {key}")
    try:
        pem = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidResponse(f"CA response {key} is not base64: {error}") from error
    blocks = split_pem_certificates(pem)
    if not blocks:
        raise InvalidResponse(f"CA response {key} holds no PEM certificate")
    for block in blocks:
        _load(block, key)
    return b"".join(blocks)


def _load(pem: bytes, key: str) -> x509.Certificate:
    try:
        return load_certificate(pem)
    except ValueError as error:
        raise InvalidResponse(
            f"CA response {key} holds a certificate that does not parse: {error}"
        ) from error


def parse_ca_chain(payload: object, function_error: str | None = None) -> CAChain:
    body = raise_for_failure(payload, function_error)
    return CAChain(
        issuing_ca_pem=_pem_field(body, "Base64IssuingCaCertificate"),
        root_ca_pem=_pem_field(body, "Base64RootCaCertificate"),
    )


def issued_certificate(
    leaf_pem: bytes, issuing_ca_pem: bytes, root_ca_pem: bytes, subject: str | None = None
) -> IssuedCertificate:
    """An ``IssuedCertificate`` from PEM: the leaf, and the CA certificates it should chain to
    (checked by ``verify_issued``). ``InvalidResponse`` when the leaf does not parse."""
    try:
        leaf = load_certificate(leaf_pem)
    except ValueError as error:
        raise InvalidResponse(f"CA returned a certificate that does not parse: {error}") from error
    names = [a.value for a in leaf.subject if a.oid == x509.oid.NameOID.COMMON_NAME]
    return IssuedCertificate(
        certificate_pem=leaf_pem,
        issuing_ca_pem=issuing_ca_pem,
        root_ca_pem=root_ca_pem,
        serial=leaf.serial_number,
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        subject=subject or leaf.subject.rfc4514_string(),
        common_name=str(names[0]) if names else "",
    )


def parse_issued(payload: object, function_error: str | None = None) -> IssuedCertificate:
    """An ``IssuedCertificate`` from a successful issuance payload (``cert_bundle`` or not)."""
    body = raise_for_failure(payload, function_error)
    chain = parse_ca_chain(body)
    # With cert_bundle the field holds leaf + issuing + root; the leaf always comes first.
    leaf_pem = split_pem_certificates(_pem_field(body, "Base64Certificate"))[0]
    issued = issued_certificate(
        leaf_pem, chain.issuing_ca_pem, chain.root_ca_pem, str(body.get("Subject") or "") or None
    )
    info = body.get("CertificateInfo")
    info = info if isinstance(info, dict) else {}
    serial = info.get("SerialNumber")
    if serial is not None and str(serial) != str(issued.serial):
        raise InvalidResponse(
            f"CertificateInfo.SerialNumber {serial} is not the certificate's {issued.serial}"
        )
    if not issued.common_name and info.get("CommonName"):
        issued = replace(issued, common_name=str(info["CommonName"]))
    return issued


# How far the CA's clock may be from ours before a certificate counts as not valid now.
CLOCK_SKEW = timedelta(minutes=10)


def verify_issued(
    issued: IssuedCertificate, public_key: object, now: datetime | None = None
) -> IssuedCertificate:
    """Refuse a certificate that is not for our key, does not chain to the returned CAs, or
    (given ``now``) is not valid now: written to disk, an expired certificate would only make
    the caller ask again at once, over and over."""
    leaf = issued.certificate
    try:
        same_key = public_key_bytes(leaf) == public_key_bytes(public_key)
    except Exception as error:  # a key type cryptography cannot load
        raise InvalidResponse(
            f"CA returned a certificate whose key cannot be read: {error}"
        ) from error
    if not same_key:
        raise InvalidResponse("CA returned a certificate whose public key is not the CSR's key")
    issuers = [
        _load(issued.issuing_ca_pem, "Base64IssuingCaCertificate"),
        _load(issued.root_ca_pem, "Base64RootCaCertificate"),
    ]
    problem = chain_problem(leaf, issuers)
    if problem:
        raise InvalidResponse(f"CA returned a certificate that does not verify: {problem}")
    if now is not None and not (issued.not_before - CLOCK_SKEW <= now < issued.not_after):
        raise InvalidResponse(
            f"CA returned a certificate valid from {issued.not_before.isoformat()} to "
            f"{issued.not_after.isoformat()}, which is not valid now ({now.isoformat()}); "
            "is the CA's clock (or this machine's) wrong?"
        )
    return issued
