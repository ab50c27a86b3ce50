"""Requests are refused locally, naming the field, before anything reaches the CA."""

import base64

import pytest

from cacore.edge.keygen import build_csr, generate_key
from cacore.errors import InvalidRequest
from cacore.keys import parse_key_spec
from cacore.request import CertificateRequest, San, Subject, parse_sans, to_event, validate


def request(**changes):
    base = {"subject": Subject("app.example.com")}
    base.update(changes)
    return CertificateRequest(**base)


@pytest.mark.parametrize(
    ("req", "field"),
    [
        pytest.param(
            request(subject=Subject("")), "common_name", id="an empty common name is refused"
        ),
        pytest.param(
            request(subject=Subject("  ")), "common_name", id="a blank common name is refused"
        ),
        pytest.param(
            request(subject=Subject("x" * 65)),
            "common_name",
            id="a common name over 64 characters is refused",
        ),
        pytest.param(request(lifetime_days=0), "lifetime", id="lifetime 0 is refused"),
        pytest.param(
            request(lifetime_days=366),
            "lifetime",
            id="lifetime above 365 is refused rather than silently capped",
        ),
        pytest.param(request(lifetime_days="30"), "lifetime", id="lifetime as text is refused"),
        pytest.param(
            request(purposes=("code_signing",)), "purposes", id="an unknown purpose is refused"
        ),
        pytest.param(request(purposes=()), "purposes", id="no purpose at all is refused"),
        pytest.param(
            request(extended_key_usages=("SIGNING",)),
            "extended_key_usages",
            id="an unknown EKU name is refused",
        ),
        pytest.param(
            request(sans=(San("DNS_NAME", "*.com"),)),
            "sans[0]",
            id="a wildcard over a TLD is refused (the CA would drop it)",
        ),
        pytest.param(
            request(sans=(San("DNS_NAME", "localhost"),)),
            "sans[0]",
            id="a single-label name is refused (the CA would drop it)",
        ),
        pytest.param(
            request(sans=(San("DNS_NAME", "a..example.com"),)),
            "sans[0]",
            id="an empty label is refused",
        ),
        pytest.param(
            request(sans=(San("IP_ADDRESS", "300.1.1.1"),)),
            "sans[0]",
            id="a bad IP address is refused",
        ),
        pytest.param(
            request(sans=(San("EMAIL_ADDRESS", "nobody"),)),
            "sans[0]",
            id="an email without @ is refused",
        ),
        pytest.param(
            request(sans=(San("URL", "no-scheme"),)),
            "sans[0]",
            id="a URL without scheme is refused",
        ),
        pytest.param(
            request(sans=(San("OTHER", "x"),)), "sans[0].type", id="an unknown SAN type is refused"
        ),
        pytest.param(
            request(subject=Subject("a.example.com", country="GBR")),
            "country",
            id="a three-letter country is refused",
        ),
    ],
)
def test_invalid_requests_name_the_field(req, field):
    with pytest.raises(InvalidRequest) as caught:
        validate(req)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    "req",
    [
        pytest.param(request(), id="the minimal request is valid"),
        pytest.param(request(lifetime_days=1), id="lifetime 1 is the lower bound"),
        pytest.param(request(lifetime_days=365), id="lifetime 365 is the upper bound"),
        pytest.param(
            request(purposes=("client_auth", "server_auth")), id="both purposes are valid"
        ),
        pytest.param(
            request(extended_key_usages=("CODE_SIGNING", "1.3.6.1.5.5.7.3.4")),
            id="EKU names and dotted OIDs are valid",
        ),
        pytest.param(
            request(
                sans=(
                    San("DNS_NAME", "*.svc.example.com"),
                    San("IP_ADDRESS", "::1"),
                    San("EMAIL_ADDRESS", "ops@example.com"),
                    San("URL", "https://example.org/ns/a"),
                    San("DN", "CN=app,O=Example"),
                )
            ),
            id="every SAN type is accepted in its valid form",
        ),
        pytest.param(
            request(subject=Subject("Payments Partner Ltd")),
            id="a common name need not be a domain",
        ),
    ],
)
def test_valid_requests_pass(req):
    assert validate(req) is req


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(
            "a.example.com", (San("DNS_NAME", "a.example.com"),), id="a string is a DNS name"
        ),
        pytest.param(
            "a.example.com, b.example.com",
            (San("DNS_NAME", "a.example.com"), San("DNS_NAME", "b.example.com")),
            id="a comma-separated string is several DNS names",
        ),
        pytest.param(
            "IP:10.0.0.1,EMAIL:a@example.com,URI:spiffe://x/y",
            (
                San("IP_ADDRESS", "10.0.0.1"),
                San("EMAIL_ADDRESS", "a@example.com"),
                San("URL", "spiffe://x/y"),
            ),
            id="short prefixes in text select the type",
        ),
        pytest.param(
            ["a.example.com", "IP_ADDRESS:10.0.0.2"],
            (San("DNS_NAME", "a.example.com"), San("IP_ADDRESS", "10.0.0.2")),
            id="a list of strings",
        ),
        pytest.param(
            [{"type": "IP_ADDRESS", "value": "10.0.0.3"}],
            (San("IP_ADDRESS", "10.0.0.3"),),
            id="a list of typed entries",
        ),
        pytest.param(
            {"DNS_NAME": ["a.example.com"], "IP_ADDRESS": "10.0.0.4"},
            (San("DNS_NAME", "a.example.com"), San("IP_ADDRESS", "10.0.0.4")),
            id="a map of type to values",
        ),
        pytest.param(None, (), id="nothing means no SANs"),
    ],
)
def test_sans_are_read_in_every_contract_form(value, expected):
    assert parse_sans(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param([{"type": "DNS_NAME"}], id="a typed entry without value"),
        pytest.param({"DNS_NAME": [1]}, id="a map value that is not text"),
        pytest.param(42, id="a number"),
    ],
)
def test_malformed_san_forms_are_refused(value):
    with pytest.raises(InvalidRequest) as caught:
        parse_sans(value)
    assert caught.value.field.startswith("sans")


def test_event_carries_subject_sans_and_base64_of_the_pem_csr():
    key = generate_key()
    req = request(
        subject=Subject("app.example.com", organization="Example", country="GB"),
        sans=(San("DNS_NAME", "app.example.com"), San("IP_ADDRESS", "10.0.0.1")),
        lifetime_days=7,
        purposes=("client_auth", "server_auth"),
        force_issue=True,
    )
    csr = build_csr(key, req.subject)
    event = to_event(req, csr)
    assert event["common_name"] == "app.example.com"
    assert event["organization"] == "Example"
    assert event["country"] == "GB"
    assert event["lifetime"] == 7
    assert event["purposes"] == ["client_auth", "server_auth"]
    assert event["sans"] == [
        {"type": "DNS_NAME", "value": "app.example.com"},
        {"type": "IP_ADDRESS", "value": "10.0.0.1"},
    ]
    assert event["force_issue"] is True
    assert base64.b64decode(event["base64_csr_data"]) == csr
    assert "cert_bundle" not in event


def test_a_der_csr_is_refused_before_sending():
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    key = generate_key()
    der = x509.load_pem_x509_csr(build_csr(key, Subject("a.example.com"))).public_bytes(
        Encoding.DER
    )
    with pytest.raises(InvalidRequest) as caught:
        to_event(request(), der)
    assert caught.value.field == "csr"


@pytest.mark.parametrize(
    ("text", "algorithm", "size"),
    [
        ("ecdsa-p256", "ECDSA", 256),
        ("ECDSA_P384", "ECDSA", 384),
        ("rsa-2048", "RSA", 2048),
        ("rsa-3072", "RSA", 3072),
        ("rsa-4096", "RSA", 4096),
        ("ecdsa", "ECDSA", 256),
    ],
)
def test_key_specs_parse(text, algorithm, size):
    spec = parse_key_spec(text)
    assert (spec.algorithm, spec.size) == (algorithm, size)


@pytest.mark.parametrize("text", ["dsa-1024", "rsa-1024", "ecdsa-p521", ""])
def test_unsupported_key_specs_name_the_field(text):
    with pytest.raises(InvalidRequest) as caught:
        parse_key_spec(text)
    assert caught.value.field == "key_algorithm"


@pytest.mark.parametrize("text", ["ecdsa-p256", "ecdsa-p384", "rsa-2048"])
def test_generated_keys_match_their_spec_and_sign_a_csr_with_the_subject(text):
    from cryptography import x509

    from cacore.keys import key_spec_of

    key = generate_key(parse_key_spec(text))
    assert str(key_spec_of(key)) == text
    csr = x509.load_pem_x509_csr(
        build_csr(key, Subject("a.example.com", organization="Example", country="GB"))
    )
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=a.example.com,O=Example,C=GB"


@pytest.mark.parametrize(
    "text, sans",
    [
        (
            'app.example.com,"DN:CN=app,O=Example"',
            (San("DNS_NAME", "app.example.com"), San("DN", "CN=app,O=Example")),
        ),
        (
            '"DN:CN=app,O=Example", IP:10.0.0.1',
            (San("DN", "CN=app,O=Example"), San("IP_ADDRESS", "10.0.0.1")),
        ),
        (
            "a.example.com, b.example.com",
            (San("DNS_NAME", "a.example.com"), San("DNS_NAME", "b.example.com")),
        ),
    ],
    ids=[
        "a quoted DN keeps its commas",
        "a quoted DN first, spaces after commas",
        "plain lists split",
    ],
)
def test_a_comma_list_quotes_a_dn_san_csv_style(text, sans):
    assert parse_sans(text) == sans


def test_a_dn_san_reads_in_the_order_the_ca_encoded_it():
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    from cacore.certinfo import sans_of

    encoded = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "app"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example"),
        ]
    )
    assert sans_of([x509.DirectoryName(encoded)]) == (San("DN", "CN=app,O=Example"),)
