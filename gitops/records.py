"""Issued certificates as the CA's DynamoDB table holds them (pure: items in, decisions out).

Item shape (the contract): ``CommonName`` (S, hash key), ``SerialNumber`` (S, range key, decimal),
``Issued`` and ``Expires`` (S), ``Certificate`` (B: base64 of the PEM text; boto3 hands back the
base64 bytes, the console shows them base64-encoded once more), ``Revoked`` (S, when revoked).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from cacore.certinfo import load_certificate
from cacore.keys import public_key_bytes


@dataclass(frozen=True)
class IssuedRecord:
    common_name: str
    serial: str
    issued: str
    expires: str
    revoked: str | None
    certificate_pem: bytes | None
    problem: str | None = None  # why the Certificate attribute is unusable

    @property
    def certificate(self) -> x509.Certificate | None:
        if self.certificate_pem is None:
            return None
        return load_certificate(self.certificate_pem)

    def public_key(self) -> bytes | None:
        cert = self.certificate
        return public_key_bytes(cert) if cert is not None else None

    def state(self, now: datetime, revoked_serials: set[str]) -> str:
        """valid, expired, revoked or unreadable: what a partner would get from it."""
        cert = self.certificate
        if cert is None:
            return "unreadable"
        if self.revoked or self.serial in revoked_serials:
            return "revoked"
        if now >= cert.not_valid_after_utc:
            return "expired"
        if now < cert.not_valid_before_utc:
            return "not-yet-valid"
        return "valid"


def _attr(item: Mapping[str, object], name: str, kind: str = "S") -> object:
    value = item.get(name)
    return value.get(kind) if isinstance(value, Mapping) else None


def certificate_pem(raw: object) -> bytes:
    """The PEM text from the Certificate attribute: base64 of PEM, or PEM itself as a fallback
    for tables written by tools that skipped the encoding."""
    if isinstance(raw, str):
        raw = raw.encode()
    if not isinstance(raw, bytes | bytearray):
        raise ValueError("Certificate is not a binary attribute")
    data = bytes(raw)
    if not data.lstrip().startswith(b"-----BEGIN"):
        try:
            data = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as error:
            raise ValueError(f"Certificate is neither PEM nor base64 of PEM: {error}") from error
    load_certificate(data)
    return data


def parse_item(item: Mapping[str, object]) -> IssuedRecord:
    try:
        pem, problem = certificate_pem(_attr(item, "Certificate", "B")), None
    except ValueError as error:
        pem, problem = None, str(error)
    revoked = _attr(item, "Revoked")
    return IssuedRecord(
        common_name=str(_attr(item, "CommonName") or ""),
        serial=str(_attr(item, "SerialNumber") or ""),
        issued=str(_attr(item, "Issued") or ""),
        expires=str(_attr(item, "Expires") or ""),
        revoked=str(revoked) if revoked else None,
        certificate_pem=pem,
        problem=problem,
    )


def newest(records: Iterable[IssuedRecord]) -> list[IssuedRecord]:
    """Readable records, newest first (by the certificate's notBefore, then serial)."""
    readable = [(r, r.certificate) for r in records]
    ordered = sorted(
        ((r, c) for r, c in readable if c is not None),
        key=lambda pair: (pair[1].not_valid_before_utc, int(pair[0].serial or 0)),
        reverse=True,
    )
    return [record for record, _ in ordered]


def newest_valid(
    records: Iterable[IssuedRecord], now: datetime, revoked_serials: set[str]
) -> IssuedRecord | None:
    for record in newest(records):
        if record.state(now, revoked_serials) == "valid":
            return record
    return None


def with_public_key(records: Iterable[IssuedRecord], public_key: bytes) -> list[IssuedRecord]:
    """Records certifying ``public_key``, newest first: how a CSR is known to be issued."""
    return [r for r in newest(records) if r.public_key() == public_key]


def parse_serial(text: str) -> str:
    """A serial as the table keys it (decimal), from decimal, ``0x`` hex or ``3a:5f:..`` hex."""
    cleaned = text.strip().lower()
    # Digits only: int() alone would also take a sign, underscores and other scripts' digits.
    try:
        if re.fullmatch(r"0x[0-9a-f]+", cleaned):
            return str(int(cleaned[2:], 16))
        if re.fullmatch(r"[0-9a-f]{1,2}(:[0-9a-f]{1,2})+", cleaned):
            return str(int(cleaned.replace(":", ""), 16))
        if re.fullmatch(r"[0-9]+", cleaned):
            return str(int(cleaned))
    except ValueError:  # more digits than Python converts (4300)
        pass
    raise ValueError(
        f"{text!r} is not a serial number; give it in decimal as the DynamoDB table shows it, "
        "or as hex with a 0x prefix or colons (openssl x509 -serial)"
    )
