"""Refusals ({"error": ...}) and crashes (FunctionError) exactly as the contract lists them."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from support.localca_fixtures import csr_pem, invoke, issue_event


@pytest.fixture
def client(ca):
    return ca.lambda_client()


def test_reusing_a_key_for_the_same_common_name_is_refused(client):
    key = ec.generate_private_key(ec.SECP256R1())
    invoke(client, issue_event("reuse.example.com", key=key))

    response, payload = invoke(client, issue_event("reuse.example.com", key=key))

    assert "FunctionError" not in response
    assert payload == {"error": "Private key has already been used for a certificate"}


def test_force_issue_skips_the_key_reuse_refusal(client):
    key = ec.generate_private_key(ec.SECP256R1())
    _, first = invoke(client, issue_event("force.example.com", key=key))

    _, second = invoke(client, issue_event("force.example.com", key=key, force_issue=True))

    assert second["CertificateInfo"]["SerialNumber"] != first["CertificateInfo"]["SerialNumber"]


def test_the_same_key_under_another_common_name_is_not_reuse(client):
    key = ec.generate_private_key(ec.SECP256R1())
    invoke(client, issue_event("one.example.com", key=key))

    _, payload = invoke(client, issue_event("two.example.com", key=key))

    assert payload["CertificateInfo"]["CommonName"] == "two.example.com"


def test_a_csr_without_common_name_is_refused_even_with_common_name_in_the_request(client):
    pem = csr_pem(None, extra_subject={"O": "No CN"})
    event = {"common_name": "nocn.example.com", "base64_csr_data": base64.b64encode(pem).decode()}

    _, payload = invoke(client, event)

    assert payload == {"error": "CSR must include a Common Name"}


@pytest.mark.parametrize(
    ("lifetime", "message"),
    [
        pytest.param(0, "0 is too short", id="zero days is too short"),
        pytest.param(-5, "-5 is too short", id="negative days are too short"),
    ],
)
def test_lifetime_below_one_day_is_refused(client, lifetime, message):
    _, payload = invoke(client, issue_event("short.example.com", lifetime=lifetime))

    assert payload == {"error": message}


def test_key_reuse_is_reported_before_a_too_short_lifetime(client):
    key = ec.generate_private_key(ec.SECP256R1())
    invoke(client, issue_event("order.example.com", key=key))

    _, payload = invoke(client, issue_event("order.example.com", key=key, lifetime=0))

    assert payload == {"error": "Private key has already been used for a certificate"}


def test_a_refusal_does_not_record_the_key(client):
    key = ec.generate_private_key(ec.SECP256R1())
    invoke(client, issue_event("norecord.example.com", key=key, lifetime=0))

    _, payload = invoke(client, issue_event("norecord.example.com", key=key))

    assert "CertificateInfo" in payload


def _der_csr_b64() -> str:
    pem = csr_pem("der.example.com")
    der = x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER)
    return base64.b64encode(der).decode()


@pytest.mark.parametrize(
    ("event", "error_type"),
    [
        pytest.param(
            {"base64_csr_data": base64.b64encode(csr_pem()).decode()},
            "KeyError",
            id="a missing common_name crashes",
        ),
        pytest.param(
            {"common_name": "x.example.com", "base64_csr_data": "abc"},
            "Error",
            id="bad base64 crashes",
        ),
        pytest.param(
            {
                "common_name": "x.example.com",
                "base64_csr_data": base64.b64encode(b"not a pem").decode(),
            },
            "ValueError",
            id="bad PEM crashes",
        ),
        pytest.param(
            {"common_name": "x.example.com", "base64_csr_data": _der_csr_b64()},
            "ValueError",
            id="a DER CSR crashes",
        ),
        pytest.param({"common_name": "x.example.com"}, "TypeError", id="no CSR at all crashes"),
        pytest.param(
            {
                "common_name": "x.example.com",
                "lifetime": "forever",
                "base64_csr_data": base64.b64encode(csr_pem()).decode(),
            },
            "ValueError",
            id="a non-numeric lifetime crashes",
        ),
        pytest.param(
            ["not", "an", "object"], "AttributeError", id="an event that is not an object crashes"
        ),
    ],
)
def test_crashes_come_back_as_function_errors(client, event, error_type):
    response, payload = invoke(client, event)

    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == error_type
    assert isinstance(payload["errorMessage"], str)
    assert isinstance(payload["stackTrace"], list)


def test_missing_common_name_crash_names_the_key(client):
    _, payload = invoke(client, {"base64_csr_data": base64.b64encode(csr_pem()).decode()})

    assert payload["errorMessage"] == "'common_name'"


def test_a_payload_that_is_not_json_is_rejected_by_the_service(client):
    with pytest.raises(client.exceptions.InvalidRequestContentException):
        invoke(client, b"{not json")


EXAMPLE_OID = "1.3.6.1.4.1.55555.1.1"


def _extension(oid=EXAMPLE_OID, value=b"device-class-a", critical=False):
    return {"oid": oid, "value_b64": base64.b64encode(value).decode(), "critical": critical}


@pytest.mark.parametrize(
    ("extensions", "message"),
    [
        pytest.param(
            [_extension()],
            f"Custom extension OID {EXAMPLE_OID} is not in the configured allowlist",
            id="the default empty allowlist refuses every custom extension",
        ),
        pytest.param(
            [_extension(oid="2.5.29.17")],
            "Custom extension OID 2.5.29.17 is reserved and cannot be set by callers",
            id="a CA-controlled extension is reserved",
        ),
        pytest.param(
            [{"value_b64": "AA=="}],
            "Custom extension is missing required field 'oid'",
            id="an extension without oid is refused",
        ),
    ],
)
def test_custom_extension_refusals(client, extensions, message):
    _, payload = invoke(client, issue_event("ext.example.com", extensions=extensions))

    assert payload == {"error": message}


def test_an_allow_listed_custom_extension_lands_in_the_certificate(local_ca_factory):
    private = local_ca_factory("--extension-allowlist", EXAMPLE_OID)
    event = issue_event("extok.example.com", extensions=[_extension(critical=True)])

    _, payload = invoke(private.lambda_client(), event)

    cert = x509.load_pem_x509_certificate(base64.b64decode(payload["Base64Certificate"]))
    ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(EXAMPLE_OID))
    assert ext.critical
    assert ext.value.value == b"device-class-a"


def test_an_allow_listed_extension_with_bad_base64_is_refused(local_ca_factory):
    private = local_ca_factory("--extension-allowlist", EXAMPLE_OID)
    bad = {"oid": EXAMPLE_OID, "value_b64": "not base64!!"}

    _, payload = invoke(
        private.lambda_client(), issue_event("extbad.example.com", extensions=[bad])
    )

    assert payload == {"error": f"Custom extension OID {EXAMPLE_OID} has an invalid base64 value"}
