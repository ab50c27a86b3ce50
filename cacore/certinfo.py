"""Reading certificates: what a certificate says, and whether a chain and a key belong together."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from cacore.keys import SUBJECT_OIDS, PrivateKey, public_key_bytes
from cacore.request import San

_PEM_END = b"-----END CERTIFICATE-----"


def load_certificate(pem: bytes) -> x509.Certificate:
    """One PEM certificate, or ``ValueError`` for anything that is not one (cryptography raises
    ``InvalidVersion``, not a ``ValueError``, for a bad version field)."""
    try:
        return x509.load_pem_x509_certificate(pem)
    except x509.InvalidVersion as error:
        raise ValueError(str(error)) from error


def load_certificates(pem: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle, or ``ValueError``."""
    try:
        return x509.load_pem_x509_certificates(pem)
    except x509.InvalidVersion as error:
        raise ValueError(str(error)) from error


def split_pem_certificates(pem: bytes) -> list[bytes]:
    """Each certificate of a PEM bundle, in order, normalised to end with one newline."""
    blocks = []
    for chunk in pem.split(_PEM_END)[:-1]:
        start = chunk.find(b"-----BEGIN CERTIFICATE-----")
        if start >= 0:
            blocks.append(chunk[start:] + _PEM_END + b"\n")
    return blocks


@dataclass(frozen=True)
class CertificateSummary:
    subject: str
    common_name: str
    issuer: str
    serial: int
    not_before: datetime
    not_after: datetime
    sans: tuple[str, ...]
    fingerprint_sha256: str

    def lines(self) -> list[str]:
        return [
            f"subject:     {self.subject}",
            f"issuer:      {self.issuer}",
            f"SANs:        {', '.join(self.sans) or '(none)'}",
            f"serial:      {self.serial}",
            f"not before:  {self.not_before.isoformat()}",
            f"not after:   {self.not_after.isoformat()}",
            f"sha256:      {self.fingerprint_sha256}",
        ]


def summarize(cert: x509.Certificate) -> CertificateSummary:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return CertificateSummary(
        subject=cert.subject.rfc4514_string(),
        common_name=str(names[0].value) if names else "",
        issuer=cert.issuer.rfc4514_string(),
        serial=cert.serial_number,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sans=san_strings(cert),
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(":"),
    )


def san_strings(cert: x509.Certificate) -> tuple[str, ...]:
    labels = {
        "DNS_NAME": "DNS",
        "IP_ADDRESS": "IP",
        "EMAIL_ADDRESS": "email",
        "URL": "URI",
        "DN": "DirName",
    }
    return tuple(f"{labels.get(san.type, san.type)}:{san.value}" for san in certificate_sans(cert))


def subject_fields(name: x509.Name) -> dict[str, str]:
    """A subject as the contract's event keys (the first value of each attribute)."""
    fields: dict[str, str] = {}
    for field, oid in SUBJECT_OIDS.items():
        values = name.get_attributes_for_oid(oid)
        if values:
            value = values[0].value
            fields[field] = value if isinstance(value, str) else value.decode("utf-8", "replace")
    return fields


_SAN_TYPES = {
    x509.DNSName: "DNS_NAME",
    x509.IPAddress: "IP_ADDRESS",
    x509.RFC822Name: "EMAIL_ADDRESS",
    x509.UniformResourceIdentifier: "URL",
    x509.DirectoryName: "DN",
}


def dn_as_written(name: x509.Name) -> str:
    """A directory name in the order its RDNs are encoded, which is the order the CA's request
    wrote them (``CN=app,O=Example`` is encoded CN first). RFC 4514's own string form reverses
    the sequence, so it would show a CA-issued name backwards."""
    return ",".join(rdn.rfc4514_string() for rdn in name.rdns)


def sans_of(names: Iterable[x509.GeneralName]) -> tuple[San, ...]:
    """The contract's typed SANs for the names of a certificate's or a CSR's SAN extension."""
    sans = []
    for name in names:
        san_type = _SAN_TYPES.get(type(name))
        if san_type:
            value = (
                dn_as_written(name.value) if isinstance(name, x509.DirectoryName) else name.value
            )
            sans.append(San(san_type, str(value)))
    return tuple(sans)


def general_name(san: San) -> x509.GeneralName:
    """The x509 name for a contract SAN, the inverse of ``sans_of`` (a ``DN`` is encoded in the
    order written, as the CA encodes it); ``ValueError`` for a value of the wrong form."""
    if san.type == "DNS_NAME":
        return x509.DNSName(san.value)
    if san.type == "IP_ADDRESS":
        return x509.IPAddress(ipaddress.ip_address(san.value))
    if san.type == "EMAIL_ADDRESS":
        return x509.RFC822Name(san.value)
    if san.type == "URL":
        return x509.UniformResourceIdentifier(san.value)
    if san.type == "DN":
        written = x509.Name.from_rfc4514_string(san.value).rdns  # RFC 4514 lists them reversed
        return x509.DirectoryName(x509.Name(list(reversed(written))))
    raise ValueError(f"{san.type!r} is not a SAN type")


def certificate_sans(cert: x509.Certificate) -> tuple[San, ...]:
    try:
        return sans_of(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except (x509.ExtensionNotFound, ValueError):  # ValueError: malformed or repeated extensions
        return ()


def key_matches(cert: x509.Certificate, key: PrivateKey | object) -> bool:
    return public_key_bytes(cert) == public_key_bytes(key)


def chain_problem(leaf: x509.Certificate, issuers: list[x509.Certificate]) -> str | None:
    """Why ``leaf`` does not chain through ``issuers`` (issuing CA first, root last), or None."""
    child = leaf
    for issuer in issuers:
        try:
            _verify_issued_by(child, issuer)
        except (ValueError, TypeError) as error:
            who, by = child.subject.rfc4514_string(), issuer.subject.rfc4514_string()
            return f"{who} is not issued by {by}: {error}"
        except Exception as error:  # InvalidSignature carries no message
            who, by = child.subject.rfc4514_string(), issuer.subject.rfc4514_string()
            return f"signature of {who} does not verify with {by} ({type(error).__name__})"
        child = issuer
    return None


@functools.lru_cache(maxsize=64)
def _verify_issued_by(child: x509.Certificate, issuer: x509.Certificate) -> None:
    """``child.verify_directly_issued_by(issuer)``, remembered for pairs that verify (keyed by
    both certificates' DER; a failure raises and is not kept): every certificate the CA returns
    comes with the same issuing CA under the same root, and that P-384 signature costs more CPU
    than anything else in reading the answer."""
    child.verify_directly_issued_by(issuer)
