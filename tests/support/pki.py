"""Builders for CA payloads in unit tests: a tiny in-memory CA that answers in the contract's shape.

Integration tests use the real local CA over HTTP; this exists so the response parser's unit
tests can build any payload, including ones a well-behaved CA would never send.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class MiniCA:
    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    issuing_key: ec.EllipticCurvePrivateKey
    issuing: x509.Certificate

    @classmethod
    def create(cls, name: str = "Test") -> MiniCA:
        now = datetime.now(UTC)
        root_key = ec.generate_private_key(ec.SECP384R1())
        root = (
            x509.CertificateBuilder()
            .subject_name(_name(f"{name} Root CA"))
            .issuer_name(_name(f"{name} Root CA"))
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(root_key, hashes.SHA384())
        )
        issuing_key = ec.generate_private_key(ec.SECP256R1())
        issuing = (
            x509.CertificateBuilder()
            .subject_name(_name(f"{name} Issuing CA"))
            .issuer_name(root.subject)
            .public_key(issuing_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1825))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(root_key, hashes.SHA384())
        )
        return cls(root_key, root, issuing_key, issuing)

    def sign(self, public_key: object, cn: str, days: int = 30) -> x509.Certificate:
        now = datetime.now(UTC).replace(microsecond=0)
        return (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.issuing.subject)
            .public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=days))
            .sign(self.issuing_key, hashes.SHA256())
        )

    def payload(self, leaf: x509.Certificate, bundle: bool = False) -> dict:
        fmt = "%Y-%m-%d %H:%M:%S"
        leaf_pem = _pem(leaf)
        if bundle:
            leaf_pem += _pem(self.issuing) + _pem(self.root)
        return {
            "CertificateInfo": {
                "CommonName": leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value,
                "SerialNumber": str(leaf.serial_number),
                "Issued": leaf.not_valid_before_utc.strftime(fmt),
                "Expires": leaf.not_valid_after_utc.strftime(fmt),
            },
            "Base64Certificate": _b64(leaf_pem),
            "Subject": leaf.subject.rfc4514_string(),
            "Base64IssuingCaCertificate": _b64(_pem(self.issuing)),
            "Base64RootCaCertificate": _b64(_pem(self.root)),
            "Base64CaChain": _b64(_pem(self.issuing) + b"\n" + _pem(self.root)),
        }
