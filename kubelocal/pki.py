"""Throwaway PKI and kubeconfig files for the local control plane.

One CA per control plane: a serving pair for kube-apiserver, client pairs for the admin and
for kube-controller-manager (both in system:masters), and the ServiceAccount signing key. A
node adds its own pairs later (``issue_pair``) from the same CA, whose key stays in the
cluster's temp dir. Keys are ECDSA P-256 (fast to make) and every private file is written 0600.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    kcm_cert: Path
    kcm_key: Path
    sa_public: Path
    sa_private: Path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _issue(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server_names: tuple[str, ...] = (),
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        return builder.add_extension(usage, critical=True).sign(issuer_key, hashes.SHA256())
    purpose = ExtendedKeyUsageOID.SERVER_AUTH if server_names else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = builder.add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
    if server_names:
        names = [_general_name(n) for n in server_names]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_pair(directory: Path, stem: str, cert: x509.Certificate, key: bytes) -> None:
    write_private(directory / f"{stem}.key", key)
    (directory / f"{stem}.crt").write_bytes(_pem(cert))


# The Service IP of `kubernetes`: the first address of --service-cluster-ip-range.
SERVICE_IP = "10.0.0.1"
APISERVER_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "127.0.0.1",
    SERVICE_IP,
)


def make_pki(directory: Path, server_ips: tuple[str, ...] = ()) -> Pki:
    """CA, serving pair, admin and controller-manager client pairs, ServiceAccount signing key.

    The serving certificate names localhost, 127.0.0.1, the `kubernetes` Service (name and IP)
    and ``server_ips``.
    """
    directory.mkdir(mode=0o700, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("lcc-local-kube-ca")
    write_private(directory / "ca.key", _key_pem(ca_key))
    (directory / "ca.crt").write_bytes(_pem(_issue(ca_name, ca_key, ca_name, ca_key, ca=True)))
    pairs = {
        "serving": (_name("kube-apiserver"), (*APISERVER_NAMES, *server_ips)),
        # system:masters is the admin group RBAC can never deny.
        "admin": (_name("lcc-admin", "system:masters"), ()),
        "kcm": (_name("system:kube-controller-manager", "system:masters"), ()),
    }
    for stem, (subject, names) in pairs.items():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(subject, key, ca_name, ca_key, server_names=names)
        _write_pair(directory, stem, cert, _key_pem(key))
    sa_key = ec.generate_private_key(ec.SECP256R1())
    write_private(directory / "sa.key", _key_pem(sa_key))
    sa_pub = sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (directory / "sa.pub").write_bytes(sa_pub)
    d = directory
    return Pki(
        ca_cert=d / "ca.crt",
        ca_key=d / "ca.key",
        serving_cert=d / "serving.crt",
        serving_key=d / "serving.key",
        admin_cert=d / "admin.crt",
        admin_key=d / "admin.key",
        kcm_cert=d / "kcm.crt",
        kcm_key=d / "kcm.key",
        sa_public=d / "sa.pub",
        sa_private=d / "sa.key",
    )


def issue_pair(
    pki: Pki,
    stem: str,
    common_name: str,
    organization: str | None = None,
    server_names: tuple[str, ...] = (),
) -> tuple[Path, Path]:
    """A client pair (or, with ``server_names``, DNS names and IPs, a serving pair) from the
    cluster's CA, written beside the others as STEM.crt and STEM.key; returns their paths."""
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{pki.ca_key} is not an EC key")
    ca_name = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes()).subject
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(common_name, organization)
    cert = _issue(subject, key, ca_name, ca_key, server_names=server_names)
    directory = pki.ca_cert.parent
    _write_pair(directory, stem, cert, _key_pem(key))
    return directory / f"{stem}.crt", directory / f"{stem}.key"


def write_kubeconfig(
    path: Path,
    server: str,
    ca_pem: bytes,
    user: dict[str, str],
    name: str = "lcc-local",
) -> Path:
    """A kubeconfig (JSON is valid YAML) with one cluster, one user, one current context."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
    write_private(path, json.dumps(config, indent=2).encode())
    return path


def client_cert_user(cert: Path, key: Path) -> dict[str, str]:
    return {
        "client-certificate-data": base64.b64encode(cert.read_bytes()).decode(),
        "client-key-data": base64.b64encode(key.read_bytes()).decode(),
    }
