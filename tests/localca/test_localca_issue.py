"""Successful issuance through boto3 over HTTP: response shape and certificate contents."""

from __future__ import annotations

import base64
import json
import subprocess
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from support.localca_fixtures import csr_pem, invoke, issue_event

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
RESPONSE_KEYS = [
    "CertificateInfo",
    "Base64Certificate",
    "Subject",
    "Base64IssuingCaCertificate",
    "Base64RootCaCertificate",
    "Base64CaChain",
]


def pem_certs(b64: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(base64.b64decode(b64))


def leaf_of(payload: dict) -> x509.Certificate:
    return pem_certs(payload["Base64Certificate"])[0]


@pytest.fixture
def client(ca):
    return ca.lambda_client()


def test_success_has_exactly_the_contract_shape(client):
    response, payload = invoke(client, issue_event("shape.example.com"))

    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert list(payload) == RESPONSE_KEYS
    info = payload["CertificateInfo"]
    assert list(info) == ["CommonName", "SerialNumber", "Issued", "Expires"]
    cert = leaf_of(payload)
    assert info["CommonName"] == "shape.example.com"
    assert info["SerialNumber"] == str(cert.serial_number)
    assert info["SerialNumber"].isdigit()
    assert info["Issued"] == cert.not_valid_before_utc.strftime(TIME_FORMAT)
    assert info["Expires"] == cert.not_valid_after_utc.strftime(TIME_FORMAT)
    assert payload["Subject"] == "CN=shape.example.com"


def test_certificate_contents_follow_the_contract(client):
    _, payload = invoke(client, issue_event("contents.example.com"))
    cert = leaf_of(payload)
    issuing = pem_certs(payload["Base64IssuingCaCertificate"])[0]
    ext = cert.extensions

    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature and usage.value.key_encipherment
    assert not usage.value.key_cert_sign and not usage.value.content_commitment
    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    policies = ext.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in policies] == ["2.23.140.1.2.1"]
    ski = ext.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    issuing_ski = issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == issuing_ski.digest
    assert cert.issuer == issuing.subject
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    issuing.public_key().verify(
        cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256())
    )


def test_validity_is_backdated_five_minutes_and_lasts_the_default_30_days(client):
    _, payload = invoke(client, issue_event("validity.example.com"))
    cert = leaf_of(payload)
    issued = datetime.strptime(payload["CertificateInfo"]["Issued"], TIME_FORMAT)
    expires = datetime.strptime(payload["CertificateInfo"]["Expires"], TIME_FORMAT)

    assert expires - issued == timedelta(days=30, minutes=5)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=30, minutes=5)


def test_ca_certificates_are_p384_root_and_p256_issuing_chained(client):
    _, payload = invoke(client, issue_event("chain.example.com"))
    root_pem = base64.b64decode(payload["Base64RootCaCertificate"]).decode()
    issuing_pem = base64.b64decode(payload["Base64IssuingCaCertificate"]).decode()
    root = x509.load_pem_x509_certificate(root_pem.encode())
    issuing = x509.load_pem_x509_certificate(issuing_pem.encode())

    assert isinstance(root.public_key().curve, ec.SECP384R1)
    assert isinstance(issuing.public_key().curve, ec.SECP256R1)
    assert root.subject == root.issuer and issuing.issuer == root.subject
    assert base64.b64decode(payload["Base64CaChain"]).decode() == (
        issuing_pem.strip() + "\n" + root_pem.strip()
    )


def test_openssl_verifies_the_chain_for_client_auth(client, tmp_path):
    _, payload = invoke(client, issue_event("openssl.example.com"))
    (tmp_path / "root.pem").write_bytes(base64.b64decode(payload["Base64RootCaCertificate"]))
    (tmp_path / "issuing.pem").write_bytes(base64.b64decode(payload["Base64IssuingCaCertificate"]))
    (tmp_path / "leaf.pem").write_bytes(base64.b64decode(payload["Base64Certificate"]))

    result = subprocess.run(
        [
            "openssl",
            "verify",
            "-purpose",
            "sslclient",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            "leaf.pem",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "leaf.pem: OK" in result.stdout


@pytest.mark.parametrize(
    ("csr_subject", "request_fields", "expected"),
    [
        pytest.param(
            {},
            {
                "organization": "Acme",
                "organizational_unit": "Ops",
                "locality": "London",
                "state": "England",
                "country": "GB",
            },
            "ST=England,OU=Ops,O=Acme,L=London,C=GB,CN=subj.example.com",
            id="request fields fill the subject in upstream order",
        ),
        pytest.param(
            {"O": "CSR Org", "C": "US", "L": "Boston"},
            {"organization": "Request Org"},
            "O=Request Org,L=Boston,C=US,CN=subj.example.com",
            id="a request field overrides the CSR field and the rest of the CSR is kept",
        ),
        pytest.param(
            {},
            {"email_address": "ops@example.com"},
            "1.2.840.113549.1.9.1=ops@example.com,CN=subj.example.com",
            id="email address lands in the subject as upstream formats it",
        ),
    ],
)
def test_subject_merges_request_over_csr(client, csr_subject, request_fields, expected):
    pem = csr_pem("csr-cn.example.com", extra_subject=csr_subject)
    event = {
        "common_name": "subj.example.com",
        "base64_csr_data": base64.b64encode(pem).decode(),
        **request_fields,
    }

    _, payload = invoke(client, event)

    assert payload["Subject"] == expected
    assert leaf_of(payload).subject.rfc4514_string() == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({}, ["1.3.6.1.5.5.7.3.2"], id="default purpose is client auth"),
        pytest.param(
            {"purposes": ["server_auth"]}, ["1.3.6.1.5.5.7.3.1"], id="server auth alone is kept"
        ),
        pytest.param(
            {"purposes": ["client_auth", "server_auth"]},
            ["1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.1"],
            id="both purposes are kept",
        ),
        pytest.param(
            {"purposes": ["code_sign"]},
            ["1.3.6.1.5.5.7.3.2"],
            id="an invalid purpose becomes client auth",
        ),
        pytest.param(
            {"purposes": []}, ["1.3.6.1.5.5.7.3.2"], id="empty purposes become client auth"
        ),
        pytest.param(
            {"extended_key_usages": ["CODE_SIGNING", "1.3.6.1.5.5.7.3.17", "NOT_A_USAGE", "NONE"]},
            ["1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.3", "1.3.6.1.5.5.7.3.17"],
            id="extended key usages add names and OIDs and drop unknown ones",
        ),
    ],
)
def test_extended_key_usage_from_purposes_and_names(client, fields, expected):
    _, payload = invoke(client, issue_event("eku.example.com", **fields))

    eku = leaf_of(payload).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert [oid.dotted_string for oid in eku] == expected


@pytest.mark.parametrize(
    ("lifetime", "days"),
    [
        pytest.param(1, 1, id="one day is the shortest lifetime"),
        pytest.param(90, 90, id="a lifetime under the cap is kept"),
        pytest.param(365, 365, id="the cap itself is kept"),
        pytest.param(5000, 365, id="a lifetime above the cap is silently capped"),
    ],
)
def test_lifetime_is_capped_at_the_maximum(client, lifetime, days):
    _, payload = invoke(client, issue_event("life.example.com", lifetime=lifetime))

    cert = leaf_of(payload)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=days, minutes=5)


def test_a_configured_maximum_lifetime_caps_requests(local_ca_factory):
    private = local_ca_factory("--max-lifetime-days", "7")

    _, payload = invoke(private.lambda_client(), issue_event("cap.example.com", lifetime=30))

    cert = leaf_of(payload)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=7, minutes=5)


def test_cert_bundle_holds_leaf_issuing_and_root(client):
    _, payload = invoke(client, issue_event("bundle.example.com", cert_bundle=True))

    bundle = pem_certs(payload["Base64Certificate"])
    assert len(bundle) == 3
    assert bundle[0].subject.rfc4514_string() == "CN=bundle.example.com"
    assert bundle[1] == pem_certs(payload["Base64IssuingCaCertificate"])[0]
    assert bundle[2] == pem_certs(payload["Base64RootCaCertificate"])[0]
    assert payload["Subject"] == "CN=bundle.example.com"


def test_ca_chain_only_returns_just_the_three_ca_values_without_a_csr(client):
    response, chain = invoke(client, {"ca_chain_only": True})
    _, issued = invoke(client, issue_event("chainonly.example.com"))

    assert "FunctionError" not in response
    assert list(chain) == ["Base64IssuingCaCertificate", "Base64RootCaCertificate", "Base64CaChain"]
    for key in chain:
        assert chain[key] == issued[key]


def test_rsa_keys_in_the_csr_are_accepted(client):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    _, payload = invoke(client, issue_event("rsa.example.com", key=key))

    public = leaf_of(payload).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.public_numbers() == key.public_key().public_numbers()


def test_unknown_request_keys_are_ignored(client):
    response, payload = invoke(
        client, issue_event("unknown.example.com", notify_issued=True, surprise={"a": 1})
    )

    assert "FunctionError" not in response
    assert payload["CertificateInfo"]["CommonName"] == "unknown.example.com"


@pytest.mark.parametrize(
    "function_name",
    [
        pytest.param("serverless-tls-cert-dev", id="plain name"),
        pytest.param(
            "arn:aws:lambda:us-east-1:123456789012:function:serverless-tls-cert-dev", id="full ARN"
        ),
        pytest.param("123456789012:function:serverless-tls-cert-dev", id="partial ARN"),
        pytest.param("serverless-tls-cert-dev:$LATEST", id="name with the LATEST qualifier"),
    ],
)
def test_function_is_found_by_name_or_arn(client, function_name):
    _, payload = invoke(client, issue_event("arn.example.com"), function_name=function_name)

    assert payload["CertificateInfo"]["CommonName"] == "arn.example.com"


def test_private_key_from_issued_certificate_matches_csr_key(client):
    key = ec.generate_private_key(ec.SECP256R1())

    _, payload = invoke(client, issue_event("keymatch.example.com", key=key))

    public = (
        leaf_of(payload)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert public == key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert leaf_of(payload).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "keymatch.example.com"
    )


def test_event_and_dry_run_invocation_types(ca):
    client = ca.lambda_client()
    before = ca.stats()

    event = client.invoke(
        FunctionName="serverless-tls-cert-dev",
        InvocationType="Event",
        Payload=json.dumps(issue_event("async.example.com")),
    )
    dry = client.invoke(
        FunctionName="serverless-tls-cert-dev", InvocationType="DryRun", Payload=b"{}"
    )

    assert event["StatusCode"] == 202
    assert dry["StatusCode"] == 204
    assert ca.stats()["issued"] == before["issued"] + 1


def test_log_tail_reports_dropped_sans(client):
    response = client.invoke(
        FunctionName="serverless-tls-cert-dev",
        LogType="Tail",
        Payload=json.dumps(issue_event("tail.example.com", sans=["*.com", "ok.example.com"])),
    )

    tail = base64.b64decode(response["LogResult"]).decode()
    assert "Invalid DNS_NAME value '*.com' excluded from SANs" in tail
