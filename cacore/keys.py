"""Key types and key encodings: which algorithms the project makes, and how keys are compared and
serialised. Making keys and signing CSRs needs randomness, so it lives at the edge
(``cacore.edge.keygen``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from cacore.errors import InvalidRequest
from cacore.request import Subject

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

CURVES = {256: ec.SECP256R1, 384: ec.SECP384R1}
RSA_SIZES = (2048, 3072, 4096)
KEY_ALGORITHMS = ("ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096")

SUBJECT_OIDS = {
    "country": NameOID.COUNTRY_NAME,
    "state": NameOID.STATE_OR_PROVINCE_NAME,
    "locality": NameOID.LOCALITY_NAME,
    "organization": NameOID.ORGANIZATION_NAME,
    "organizational_unit": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "common_name": NameOID.COMMON_NAME,
    "email_address": NameOID.EMAIL_ADDRESS,
}


@dataclass(frozen=True)
class KeySpec:
    algorithm: str  # "ECDSA" or "RSA"
    size: int  # curve bits for ECDSA, modulus bits for RSA

    def __str__(self) -> str:
        return f"{'ecdsa-p' if self.algorithm == 'ECDSA' else 'rsa-'}{self.size}"


DEFAULT_KEY = KeySpec("ECDSA", 256)


def parse_key_spec(text: str, field: str = "key_algorithm") -> KeySpec:
    """``ecdsa-p256`` (default), ``ecdsa-p384``, ``rsa-2048``, ``rsa-3072`` or ``rsa-4096``."""
    normalised = text.strip().lower().replace("_", "-")
    aliases = {
        "ecdsa": "ecdsa-p256",
        "ec": "ecdsa-p256",
        "p256": "ecdsa-p256",
        "p384": "ecdsa-p384",
        "rsa": "rsa-2048",
    }
    normalised = aliases.get(normalised, normalised)
    if normalised not in KEY_ALGORITHMS:
        raise InvalidRequest(
            field, f"{text!r} is not supported; use one of {', '.join(KEY_ALGORITHMS)}"
        )
    kind, _, size = normalised.partition("-")
    return KeySpec("ECDSA" if kind == "ecdsa" else "RSA", int(size.lstrip("p")))


def key_spec_of(key: object) -> KeySpec | None:
    """The ``KeySpec`` of a private or public key, or None for key types the project lacks."""
    public = key.public_key() if hasattr(key, "public_key") else key
    if isinstance(public, ec.EllipticCurvePublicKey):
        return KeySpec("ECDSA", public.curve.key_size)
    if isinstance(public, rsa.RSAPublicKey):
        return KeySpec("RSA", public.key_size)
    return None


def subject_name(subject: Subject) -> x509.Name:
    values = subject.fields()
    return x509.Name(
        [
            x509.NameAttribute(oid, values[name])
            for name, oid in SUBJECT_OIDS.items()
            if name in values
        ]
    )


def private_key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"unsupported private key type {type(key).__name__}")
    return key


def public_key_bytes(key: Any) -> bytes:
    """A comparable encoding of a public key (from a private key, a certificate or a CSR key)."""
    public = key.public_key() if hasattr(key, "public_key") else key
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
