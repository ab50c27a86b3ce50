"""The root (ECDSA P-384) and issuing (ECDSA P-256) CA, created once and kept in the state dir."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from localca.state import FRESH_START, StateError, prepare

ROOT_LIFETIME_DAYS = 7300
ISSUING_LIFETIME_DAYS = 3650
CLOCK_SKEW = timedelta(minutes=5)

_FILES = ("root-ca.key", "root-ca.pem", "issuing-ca.key", "issuing-ca.pem")


@dataclass(frozen=True)
class Authority:
    """CA keys and certificates held in memory so issuance does no file I/O."""

    root_cert: x509.Certificate
    issuing_cert: x509.Certificate
    issuing_key: ec.EllipticCurvePrivateKey
    root_pem: str
    issuing_pem: str

    @property
    def issuing_public_key(self) -> ec.EllipticCurvePublicKey:
        return self.issuing_key.public_key()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lambda-client-certs local CA"),
        ]
    )


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def build_root(key: ec.EllipticCurvePrivateKey, now: datetime) -> x509.Certificate:
    name = _name("Serverless Root CA")
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=ROOT_LIFETIME_DAYS))
        .add_extension(_ca_usage(), critical=True)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA384())
    )


def build_issuing(
    key: ec.EllipticCurvePrivateKey,
    root: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    now: datetime,
) -> x509.Certificate:
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(_name("Serverless Issuing CA"))
        .issuer_name(root.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=ISSUING_LIFETIME_DAYS))
        .add_extension(_ca_usage(), critical=True)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .sign(root_key, hashes.SHA384())
    )


def _write_private(path: Path, data: bytes) -> None:
    # Created 0600 from the start and renamed into place, so a key is never world-readable
    # and never half-written.
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_or_create(state_dir: Path, now: datetime) -> tuple[Authority, bool]:
    """The CA kept in `state_dir`, created there on first use; True when it was created."""
    prepare(state_dir)
    paths = [state_dir / name for name in _FILES]
    present = [p.exists() for p in paths]
    if all(present):
        return _load(state_dir), False
    if any(present):
        missing = ", ".join(p.name for p, ok in zip(paths, present, strict=True) if not ok)
        raise StateError(
            f"state_dir {state_dir} holds a partial CA (missing {missing}): restore the files "
            f"from a backup, {FRESH_START}"
        )
    root_key = ec.generate_private_key(ec.SECP384R1())
    issuing_key = ec.generate_private_key(ec.SECP256R1())
    root = build_root(root_key, now)
    issuing = build_issuing(issuing_key, root, root_key, now)
    _write_private(paths[0], _key_pem(root_key))
    _write_private(paths[1], root.public_bytes(serialization.Encoding.PEM))
    _write_private(paths[2], _key_pem(issuing_key))
    _write_private(paths[3], issuing.public_bytes(serialization.Encoding.PEM))
    return _load(state_dir), True


def _broken(path: Path, problem: str) -> StateError:
    return StateError(
        f"state_dir {path.parent}: {path.name} {problem}: restore it from a backup, {FRESH_START}"
    )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _broken(path, f"cannot be read ({exc.strerror})") from exc


def _certificate(path: Path) -> tuple[x509.Certificate, str]:
    data = _read(path)
    try:
        return x509.load_pem_x509_certificate(data), data.decode("ascii")
    except ValueError as exc:  # UnicodeDecodeError included
        raise _broken(path, "is not a PEM certificate") from exc


def _load(state_dir: Path) -> Authority:
    root, root_pem = _certificate(state_dir / "root-ca.pem")
    issuing, issuing_pem = _certificate(state_dir / "issuing-ca.pem")
    key_path = state_dir / "issuing-ca.key"
    try:
        key = serialization.load_pem_private_key(_read(key_path), None)
    except (ValueError, TypeError) as exc:  # TypeError: an encrypted key
        raise _broken(key_path, "is not an unencrypted PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise _broken(key_path, "is not an ECDSA key")
    if key.public_key() != issuing.public_key():
        raise _broken(key_path, "does not match issuing-ca.pem")
    try:
        issuing.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise _broken(state_dir / "issuing-ca.pem", "is not issued by root-ca.pem") from exc
    return Authority(
        root_cert=root,
        issuing_cert=issuing,
        issuing_key=key,
        root_pem=root_pem,
        issuing_pem=issuing_pem,
    )
