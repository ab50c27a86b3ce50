"""Builders for operator unit tests: a small CA chain and Secret views, with modifiers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from certoperator.api import ANNOTATION_ISSUED_AT, ANNOTATION_SPEC_HASH
from certoperator.conditions import format_time
from certoperator.policy import Input, SecretFacts, SecretView, inspect_secret
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cacore.keys import private_key_pem
from cacore.renewal import RenewalPoint

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
OWNER = "uid-1"
HASH = "hash-1"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, issuer, public_key, signer, not_before, not_after, ca):
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    return builder.sign(signer, hashes.SHA256())


ROOT_KEY = ec.generate_private_key(ec.SECP256R1())
ROOT = _cert(
    "root",
    "root",
    ROOT_KEY.public_key(),
    ROOT_KEY,
    NOW - timedelta(days=900),
    NOW + timedelta(days=900),
    True,
)
ISSUING_KEY = ec.generate_private_key(ec.SECP256R1())
ISSUING = _cert(
    "issuing",
    "root",
    ISSUING_KEY.public_key(),
    ROOT_KEY,
    NOW - timedelta(days=900),
    NOW + timedelta(days=900),
    True,
)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def issued_data(
    not_before=NOW - timedelta(days=1), days=30, key=None, signer=ISSUING_KEY, not_after=None
):
    key = key or ec.generate_private_key(ec.SECP256R1())
    leaf = _cert(
        "app.example.com",
        "issuing",
        key.public_key(),
        signer,
        not_before,
        not_after or not_before + timedelta(days=days),
        False,
    )
    return {
        "tls.crt": pem(leaf) + pem(ISSUING),
        "tls.key": private_key_pem(key),
        "ca.crt": pem(ISSUING) + pem(ROOT),
    }, leaf


def secret(**changes) -> SecretFacts:
    """A Secret as the checks see it (inspected once, as the watch does)."""
    data, _ = issued_data()
    view = SecretView(
        name="app-tls",
        controller_uid=OWNER,
        annotations={
            ANNOTATION_SPEC_HASH: HASH,
            ANNOTATION_ISSUED_AT: format_time(NOW - timedelta(days=1)),
        },
        data=data,
    )
    return inspect_secret(replace(view, **changes))


def make_input(**changes) -> Input:
    base = Input(
        owner_uid=OWNER,
        spec_hash=HASH,
        renewal=RenewalPoint(),
        secret=secret(),
        previously_issued=True,
        now=NOW,
        jitter=0.0,
    )
    return replace(base, **changes)
