"""Builders for the signer's unit tests: CSRs as the API serves them, policies, requesters."""

from __future__ import annotations

import base64
from typing import Any

from certoperator.signer.csrview import CsrView, view
from certoperator.signer.policyspec import Policy, parse_policy
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

SIGNER = "clientcerts.dev/local"
KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

_OIDS = {
    "CN": NameOID.COMMON_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "C": NameOID.COUNTRY_NAME,
}


def csr_pem(
    subject: dict[str, str] | None = None,
    sans: list[x509.GeneralName] | None = None,
    key: Any = KEY,
) -> bytes:
    subject = {"CN": "api.payments.svc"} if subject is None else subject
    name = x509.Name([x509.NameAttribute(_OIDS[k], v) for k, v in subject.items()])
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def dns(*names: str) -> list[x509.GeneralName]:
    return [x509.DNSName(n) for n in names]


def service_account(namespace: str = "payments", name: str = "api") -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def pod_extra(pod: str = "api-7d9f", uid: str = "0f6c-uid", node: str = "node-1") -> dict:
    return {
        "authentication.kubernetes.io/pod-name": [pod],
        "authentication.kubernetes.io/pod-uid": [uid],
        "authentication.kubernetes.io/node-name": [node],
    }


def csr_object(
    pem: bytes | None = None,
    username: str | None = None,
    extra: dict | None = None,
    usages: list[str] | None = None,
    expiration: int | None = None,
    signer: str = SIGNER,
    conditions: list[dict] | None = None,
    certificate: bytes = b"",
    name: str = "csr-1",
) -> dict:
    spec: dict[str, Any] = {
        "request": base64.b64encode(pem if pem is not None else csr_pem()).decode(),
        "signerName": signer,
        "usages": usages if usages is not None else ["digital signature", "client auth"],
        "username": username if username is not None else service_account(),
        "groups": ["system:serviceaccounts", "system:authenticated"],
        "extra": extra or {},
    }
    if expiration is not None:
        spec["expirationSeconds"] = expiration
    status: dict[str, Any] = {"conditions": conditions or []}
    if certificate:
        status["certificate"] = base64.b64encode(certificate).decode()
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "7"},
        "spec": spec,
        "status": status,
    }


def csr(**kwargs: Any) -> CsrView:
    return view(csr_object(**kwargs))


def policy(name: str = "payments", **spec: Any) -> Policy:
    body: dict[str, Any] = {
        "signerNames": [SIGNER],
        "requesters": {"serviceAccounts": [{"namespace": "payments", "name": "api"}]},
        "subject": {"commonName": "{serviceAccount}.{namespace}.svc"},
        "sans": [
            "{serviceAccount}.{namespace}.svc",
            "{serviceAccount}.{namespace}.svc.cluster.local",
        ],
    }
    body.update(spec)
    return parse_policy(name, body)
