"""Making private keys and signing CSRs: the randomness of the core. Keys are made where they are
used and leave only as a 0600 file or a Secret."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cacore.errors import InvalidRequest
from cacore.keys import (
    CURVES,
    DEFAULT_KEY,
    KEY_ALGORITHMS,
    RSA_SIZES,
    KeySpec,
    PrivateKey,
    subject_name,
)
from cacore.request import Subject


def generate_key(spec: KeySpec = DEFAULT_KEY) -> PrivateKey:
    if spec.algorithm == "ECDSA" and spec.size in CURVES:
        return ec.generate_private_key(CURVES[spec.size]())
    if spec.algorithm == "RSA" and spec.size in RSA_SIZES:
        return rsa.generate_private_key(public_exponent=65537, key_size=spec.size)
    raise InvalidRequest(
        "key_algorithm", f"{spec} is not supported; use one of {', '.join(KEY_ALGORITHMS)}"
    )


def build_csr(key: PrivateKey, subject: Subject) -> bytes:
    """A PEM CSR signed by ``key``: the CA uses only its public key and subject."""
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject_name(subject))
    return csr.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
