"""The sidecar's kubernetes issuer against an in-memory stand-in for the three API calls (the real
API server is in tests/signer): what each end of a CSR becomes, and that a pending CSR is waited
on again instead of being multiplied."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cacore.csr import load_csr
from cacore.errors import CARefused, Denied, InvalidResponse, PendingApproval
from cacore.keys import DEFAULT_KEY
from cacore.request import CertificateRequest, San, Subject
from sidecar.kubeissuer import KubernetesIssuer, TrustBundleUnavailable
from sidecar.settings import KubeIssuerSettings

NOW = datetime.now(UTC)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn, key, issuer_name=None, issuer_key=None):
    return (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer_name or _name(cn))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=9))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(issuer_key or key, hashes.SHA256())
    )  # fmt: skip


ROOT_KEY, ISSUING_KEY = (
    ec.generate_private_key(ec.SECP384R1()),
    ec.generate_private_key(ec.SECP256R1()),
)
ROOT = _ca("root", ROOT_KEY)
ISSUING = _ca("issuing", ISSUING_KEY, ROOT.subject, ROOT_KEY)
PEM = serialization.Encoding.PEM


class FakeApi:
    """create/get/watch like the API server; ``then`` says what the signer does to each CSR."""

    def __init__(self, then):
        self.then = then
        self.created: list[dict] = []
        self.objects: dict[str, dict] = {}

    def create_csr(self, body):
        name = f"csr-{len(self.created)}"
        obj = {**body, "metadata": {"name": name, "resourceVersion": "1"}, "status": {}}
        self.created.append(obj)
        self.objects[name] = obj
        return obj

    def get_csr(self, name):
        obj = self.objects.get(name)
        if obj is not None:
            self.then(obj)
        return obj

    def watch_csr(self, name, version, seconds):
        return iter(())


def sign(obj):
    csr = load_csr(base64.b64decode(obj["spec"]["request"]))
    leaf = (
        x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ISSUING.subject)
        .public_key(csr.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(minutes=5)).not_valid_after(NOW + timedelta(days=1))
        .sign(ISSUING_KEY, hashes.SHA256())
    )  # fmt: skip
    chain = leaf.public_bytes(PEM) + ISSUING.public_bytes(PEM)
    obj["status"] = {"certificate": base64.b64encode(chain).decode()}


def condition(type_, reason, message):
    def apply(obj):
        obj["status"] = {"conditions": [{"type": type_, "status": "True", "reason": reason,
                                         "message": message}]}  # fmt: skip

    return apply


def issuer(tmp_path: Path, api: FakeApi, bundle: bytes | None = ROOT.public_bytes(PEM)):
    path = tmp_path / "bundle" / "prod.crt"
    path.parent.mkdir()
    if bundle is not None:
        path.write_bytes(ISSUING.public_bytes(PEM) + bundle)
    settings = KubeIssuerSettings(
        signer_name="clientcerts.dev/prod", api_url="https://127.0.0.1:1",
        token_file=tmp_path / "token", ca_file=None, trust_bundle_file=path,
        usages=("digital signature", "key encipherment", "client auth"), csr_timeout=0.0,
    )  # fmt: skip
    clock = iter(range(10**6))
    return KubernetesIssuer(settings, api, monotonic=lambda: float(next(clock)),  # type: ignore[arg-type]
                            sleep=lambda s: None, bundle_wait=3)  # fmt: skip


REQUEST = CertificateRequest(Subject("api.shop.svc"), sans=(San("DNS_NAME", "api.shop.svc"),))


def test_a_signed_csr_becomes_a_verified_issuance_with_the_bundles_root(tmp_path):
    api = FakeApi(sign)
    issuance = issuer(tmp_path, api)(REQUEST, DEFAULT_KEY)
    assert issuance.certificate.root_ca_pem == ROOT.public_bytes(PEM)
    assert issuance.certificate.ca_bundle_pem == ISSUING.public_bytes(PEM) + ROOT.public_bytes(PEM)
    body = api.created[0]
    assert body["spec"]["signerName"] == "clientcerts.dev/prod"
    assert body["spec"]["expirationSeconds"] == 30 * 86400
    sans = load_csr(base64.b64decode(body["spec"]["request"])).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert sans.value.get_values_for_type(x509.DNSName) == ["api.shop.svc"]


def test_a_denial_carries_the_approvers_reason_and_ends_the_csr(tmp_path):
    api = FakeApi(condition("Denied", "PolicyViolation", 'ClientCertificatePolicy "p": spec.sans'))
    issue = issuer(tmp_path, api)
    with pytest.raises(Denied) as raised:
        issue(REQUEST, DEFAULT_KEY)
    assert raised.value.denial_reason == "PolicyViolation" and not raised.value.retryable
    assert 'ClientCertificatePolicy "p"' in raised.value.message
    assert issue.attempt is None  # the next attempt makes a new key and CSR


def test_a_failed_csr_carries_the_cas_words(tmp_path):
    api = FakeApi(condition("Failed", "CARefused", "Private key has already been used"))
    with pytest.raises(CARefused, match="Private key has already been used"):
        issuer(tmp_path, api)(REQUEST, DEFAULT_KEY)


def test_a_pending_csr_is_waited_on_again_not_recreated(tmp_path):
    api = FakeApi(condition("clientcerts.dev/AwaitingApproval", "ManualApprovalRequired",
                            "kubectl certificate approve csr-0"))  # fmt: skip
    issue = issuer(tmp_path, api)
    for _ in range(3):
        with pytest.raises(PendingApproval, match="kubectl certificate approve csr-0"):
            issue(REQUEST, DEFAULT_KEY)
    assert len(api.created) == 1
    api.then = sign
    issue(REQUEST, DEFAULT_KEY)
    assert len(api.created) == 1


def test_a_changed_request_abandons_the_pending_csr(tmp_path):
    api = FakeApi(lambda obj: None)
    issue = issuer(tmp_path, api)
    with pytest.raises(PendingApproval, match="nobody approved or denied it"):
        issue(REQUEST, DEFAULT_KEY)
    with pytest.raises(PendingApproval):
        issue(CertificateRequest(Subject("other.shop.svc")), DEFAULT_KEY)
    assert len(api.created) == 2


def test_a_missing_bundle_keeps_the_signed_certificate_for_the_next_attempt(tmp_path):
    api = FakeApi(sign)
    issue = issuer(tmp_path, api, bundle=None)
    with pytest.raises(TrustBundleUnavailable):
        issue(REQUEST, DEFAULT_KEY)
    assert issue.attempt is not None and issue.attempt.chain is not None
    issue.settings.trust_bundle_file.write_bytes(ISSUING.public_bytes(PEM) + ROOT.public_bytes(PEM))
    assert issue(REQUEST, DEFAULT_KEY).certificate.serial
    assert len(api.created) == 1


def test_a_certificate_for_another_key_is_refused(tmp_path):
    def wrong_key(obj):
        other = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(_name("x"))
            .sign(other, hashes.SHA256())
        )
        obj["spec"] = {**obj["spec"], "request": base64.b64encode(csr.public_bytes(PEM)).decode()}
        sign(obj)

    with pytest.raises(InvalidResponse, match="not the CSR's key"):
        issuer(tmp_path, FakeApi(wrong_key))(REQUEST, DEFAULT_KEY)
