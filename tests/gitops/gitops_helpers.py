"""Real files for the GitOps tests: a certs/ tree in a temp dir, CSRs of every kind, the CLI."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from support.localca_fixtures import csr_pem

ROOT = Path(__file__).resolve().parents[2]

# The entry as upstream's docs print it, comma after "sans" missing: users copy it verbatim.
DOCUMENTED_EXAMPLE = """[
  {
    "common_name": "server.example.com",
    "sans": ["server.example.com", "server2.example.com"]
    "lifetime": 365,
    "csr_file": "server-example-com.csr"
  }
]
"""


def good_entry(**overrides: object) -> dict:
    entry = {
        "common_name": "partner.example.com",
        "purposes": ["client_auth"],
        "lifetime": 90,
        "csr_file": "partner.csr",
    }
    entry.update(overrides)
    return {k: v for k, v in entry.items() if v is not None}


def der_csr(cn: str = "partner.example.com") -> bytes:
    return x509.load_pem_x509_csr(csr_pem(cn)).public_bytes(serialization.Encoding.DER)


def tampered_csr(cn: str = "partner.example.com") -> bytes:
    """A CSR whose signature no longer matches: the last signature byte flipped."""
    der = bytearray(der_csr(cn))
    der[-1] ^= 0x01
    body = base64.encodebytes(bytes(der)).decode().replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    text = "\n".join(["-----BEGIN CERTIFICATE REQUEST-----", *lines])
    return (text + "\n-----END CERTIFICATE REQUEST-----\n").encode()


def csr_for_key(key: object, cn: str = "partner.example.com") -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, algorithm)
    return csr.public_bytes(serialization.Encoding.PEM)


def rsa_1024_csr() -> bytes:
    return csr_for_key(rsa.generate_private_key(public_exponent=65537, key_size=1024))


def ed25519_csr() -> bytes:
    return csr_for_key(ed25519.Ed25519PrivateKey.generate())


def private_key_pem() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class Tree:
    """certs/<env>/ under a temp dir, written file by file as a partner's PR would."""

    def __init__(self, base: Path, env: str = "dev") -> None:
        self.base = base
        self.root = base / "certs"
        self.env = env
        self.dir = self.root / env
        (self.dir / "csrs").mkdir(parents=True, exist_ok=True)
        self.tls("[]\n")

    def tls(self, value: object) -> Tree:
        text = value if isinstance(value, str) else json.dumps(value, indent=2) + "\n"
        (self.dir / "tls.json").write_text(text)
        return self

    def revoked(self, value: object) -> Tree:
        text = value if isinstance(value, str) else json.dumps(value, indent=2) + "\n"
        (self.dir / "revoked.json").write_text(text)
        return self

    def csr(self, name: str, data: bytes | None = None) -> bytes:
        data = csr_pem("partner.example.com") if data is None else data
        (self.dir / "csrs" / name).write_bytes(data)
        return data

    def ca_bundle(self, data: bytes) -> Tree:
        (self.dir / "ca-bundle.pem").write_bytes(data)
        return self


def run_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`certs-gitops ARGS` as a separate process, the way CI and people run it."""
    child_env = dict(env if env is not None else os.environ)
    paths = [str(ROOT), child_env.get("PYTHONPATH")]
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    return subprocess.run(
        [sys.executable, "-m", "gitops.main", *args],
        cwd=cwd,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
