"""Reading certificates: what a certificate says, and whether a chain and a key belong together."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtensionOID, NameOID

from cacore.keys import PrivateKey, public_key_bytes

_PEM_END = b"-----END CERTIFICATE-----"


def split_pem_certificates(pem: bytes) -> list[bytes]:
    """Each certificate of a PEM bundle, in order, normalised to end with one newline."""
    blocks = []
    for chunk in pem.split(_PEM_END)[:-1]:
        start = chunk.find(b"-----BEGIN CERTIFICATE-----")
        if start >= 0:
            blocks.append(chunk[start:] + _PEM_END + b"\n")
    return blocks


def load_certificates(pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem)


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
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return ()
    labels = {
        x509.DNSName: "DNS",
        x509.IPAddress: "IP",
        x509.RFC822Name: "email",
        x509.UniformResourceIdentifier: "URI",
        x509.DirectoryName: "DirName",
    }
    out = []
    for name in ext:
        value = name.value.rfc4514_string() if isinstance(name, x509.DirectoryName) else name.value
        out.append(f"{labels.get(type(name), 'other')}:{value}")
    return tuple(out)


def key_matches(cert: x509.Certificate, key: PrivateKey | object) -> bool:
    return public_key_bytes(cert) == public_key_bytes(key)


def chain_problem(leaf: x509.Certificate, issuers: list[x509.Certificate]) -> str | None:
    """Why ``leaf`` does not chain through ``issuers`` (issuing CA first, root last), or None."""
    child = leaf
    for issuer in issuers:
        who, by = child.subject.rfc4514_string(), issuer.subject.rfc4514_string()
        try:
            child.verify_directly_issued_by(issuer)
        except (ValueError, TypeError) as error:
            return f"{who} is not issued by {by}: {error}"
        except Exception as error:  # InvalidSignature carries no message
            return f"signature of {who} does not verify with {by} ({type(error).__name__})"
        child = issuer
    return None


def validity_problem(cert: x509.Certificate, now: datetime) -> str | None:
    if now < cert.not_valid_before_utc:
        return f"not valid before {cert.not_valid_before_utc.isoformat()}"
    if now >= cert.not_valid_after_utc:
        return f"expired at {cert.not_valid_after_utc.isoformat()}"
    return None
