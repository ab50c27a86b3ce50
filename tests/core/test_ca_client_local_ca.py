"""The CA client through boto3 and HTTP against the local CA: every outcome a caller must handle."""

import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from cacore.config import CAConfig
from cacore.edge.client import CAClient, LambdaTransport
from cacore.edge.keygen import build_csr, generate_key
from cacore.errors import (
    AccessDenied,
    CAFunctionError,
    CARefused,
    FunctionNotFound,
    Throttled,
    TransportError,
)
from cacore.keys import parse_key_spec
from cacore.request import CertificateRequest, San, Subject


@pytest.fixture
def client(ca, monkeypatch):
    for name, value in ca.env.items():
        monkeypatch.setenv(name, value)
    return CAClient(
        LambdaTransport(
            CAConfig(function=ca.function_name, region=ca.region, endpoint_url=ca.endpoint_url)
        )
    )


def req(cn="client.example.com", **changes):
    return CertificateRequest(subject=Subject(cn), **changes)


@pytest.mark.parametrize("key_algorithm", ["ecdsa-p256", "ecdsa-p384", "rsa-2048"])
def test_issuance_returns_a_verified_certificate_for_our_key(client, key_algorithm):
    issuance = client.issue_with_new_key(req(lifetime_days=7), parse_key_spec(key_algorithm))
    cert = issuance.certificate
    assert (
        cert.certificate.public_key().public_numbers() == issuance.key.public_key().public_numbers()
    )
    assert cert.not_after - cert.not_before == timedelta(days=7, minutes=5)
    now = datetime.now(UTC)
    assert cert.not_before <= now - timedelta(minutes=4) and cert.not_after > now
    assert cert.common_name == "client.example.com"


def test_the_chain_verifies_with_the_openssl_command(client, tmp_path):
    cert = client.issue_with_new_key(req()).certificate
    (tmp_path / "root.pem").write_bytes(cert.root_ca_pem)
    (tmp_path / "issuing.pem").write_bytes(cert.issuing_ca_pem)
    (tmp_path / "leaf.pem").write_bytes(cert.certificate_pem)
    result = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            "-purpose",
            "sslclient",
            "leaf.pem",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "leaf.pem: OK" in result.stdout


def test_a_reused_key_is_refused_with_the_ca_message_and_force_issue_overrides_it(client):
    key = generate_key()
    client.issue(req("reuse.example.com"), key)
    with pytest.raises(CARefused) as caught:
        client.issue(req("reuse.example.com"), key)
    assert caught.value.message == "Private key has already been used for a certificate"
    forced = client.issue(req("reuse.example.com", force_issue=True), key)
    assert forced.common_name == "reuse.example.com"


def test_cert_bundle_responses_are_understood(client):
    cert = client.issue_with_new_key(req(cert_bundle=True)).certificate
    assert cert.certificate_pem.count(b"BEGIN CERTIFICATE") == 1


def test_ca_chain_only_returns_the_ca_certificates(client):
    chain = client.ca_chain()
    issuing = x509.load_pem_x509_certificate(chain.issuing_ca_pem)
    root = x509.load_pem_x509_certificate(chain.root_ca_pem)
    issuing.verify_directly_issued_by(root)


def test_typed_sans_reach_the_certificate(client):
    sans = (
        San("DNS_NAME", "svc.example.com"),
        San("IP_ADDRESS", "10.1.2.3"),
        San("URL", "https://example.org/app"),
    )
    cert = client.issue_with_new_key(req(sans=sans)).certificate.certificate
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ext.get_values_for_type(x509.DNSName) == ["svc.example.com"]
    assert [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]
    assert ext.get_values_for_type(x509.UniformResourceIdentifier) == ["https://example.org/app"]


def test_a_refusal_fault_keeps_the_message(client, ca):
    ca.inject("refuse", message="CSR must include a Common Name")
    with pytest.raises(CARefused, match="^CSR must include a Common Name$"):
        client.issue_with_new_key(req())


def test_a_crash_is_a_retryable_function_error(client, ca):
    ca.inject("crash")
    with pytest.raises(CAFunctionError) as caught:
        client.issue_with_new_key(req())
    assert caught.value.retryable


def test_a_real_crash_shape_from_bad_input_is_a_function_error(ca, client):
    payload, function_error = client.invoker.invoke(
        {"common_name": "x.example.com", "base64_csr_data": "@@not base64@@"}
    )
    assert function_error
    with pytest.raises(CAFunctionError):
        from cacore.response import parse_issued

        parse_issued(payload, function_error)


def test_throttling_is_typed_and_retryable_and_the_sdk_did_not_retry(client, ca):
    before = ca.stats()["invocations"]
    ca.inject("throttle")
    with pytest.raises(Throttled) as caught:
        client.issue_with_new_key(req())
    assert caught.value.retryable
    assert ca.stats()["invocations"] - before == 1


def test_a_delay_is_waited_for_not_retried(client, ca):
    before = ca.stats()["issued"]
    ca.inject("delay", seconds=1.5)
    client.issue_with_new_key(req())
    assert ca.stats()["issued"] - before == 1


def test_wrong_credentials_are_access_denied(ca, monkeypatch):
    for name, value in ca.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    client = CAClient(LambdaTransport(CAConfig(function=ca.function_name, region=ca.region)))
    with pytest.raises(AccessDenied) as caught:
        client.issue_with_new_key(req())
    assert not caught.value.retryable


def test_an_unknown_function_is_function_not_found(ca, monkeypatch):
    for name, value in ca.env.items():
        monkeypatch.setenv(name, value)
    client = CAClient(
        LambdaTransport(CAConfig(function="serverless-tls-cert-nope", region=ca.region))
    )
    with pytest.raises(FunctionNotFound):
        client.issue_with_new_key(req())


def test_an_unreachable_endpoint_is_a_retryable_transport_error(ca, monkeypatch):
    from support.localca_fixtures import free_port

    for name, value in ca.env.items():
        monkeypatch.setenv(name, value)
    config = CAConfig(
        function=ca.function_name,
        region=ca.region,
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        connect_timeout=1,
    )
    with pytest.raises(TransportError) as caught:
        CAClient(LambdaTransport(config)).issue_with_new_key(req())
    assert caught.value.retryable


def test_a_partner_csr_is_certified_without_its_key(client):
    key = generate_key()
    csr = build_csr(key, Subject("partner.example.com"))
    cert = client.issue_csr(req("partner.example.com"), csr)
    assert cert.certificate.public_key().public_numbers() == key.public_key().public_numbers()


def test_a_role_arn_is_assumed_through_sts_and_its_credentials_sign_the_invoke(
    ca, dynamodb_server, monkeypatch
):
    """moto's server plays STS. The local CA knows only the base credentials, so the invoke
    signed with the assumed role's temporary credentials must be refused: proof they were used."""
    for name, value in ca.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", dynamodb_server)
    role = "arn:aws:iam::123456789012:role/cert-issuer"
    transport = LambdaTransport(
        CAConfig(function=ca.function_name, region=ca.region, role_arn=role)
    )
    denied_before = ca.stats()["denied"]
    with pytest.raises(AccessDenied):
        CAClient(transport).issue_with_new_key(req())
    assert ca.stats()["denied"] == denied_before + 1
    credentials = transport.client._request_signer._credentials.get_frozen_credentials()
    assert credentials.access_key != ca.env["AWS_ACCESS_KEY_ID"]
    assert credentials.token, "assumed-role credentials carry a session token"
