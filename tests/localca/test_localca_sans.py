"""SAN rules of the contract, end to end through the local CA and on the pure rules."""

from __future__ import annotations

import base64
import ipaddress

import pytest
from cryptography import x509
from support.localca_fixtures import csr_pem, invoke, issue_event

from localca import sans as san_rules


@pytest.fixture
def client(ca):
    return ca.lambda_client()


def general_names(payload: dict) -> list[tuple[str, str]] | None:
    cert = x509.load_pem_x509_certificate(base64.b64decode(payload["Base64Certificate"]))
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    out = []
    for name in ext.value:
        value = name.value
        if isinstance(name, x509.DirectoryName):
            value = value.rfc4514_string()
        out.append((type(name).__name__, str(value)))
    return out


@pytest.mark.parametrize(
    ("common_name", "sans", "expected"),
    [
        pytest.param(
            "cn.example.com",
            None,
            [("DNSName", "cn.example.com")],
            id="no sans and a domain CN gives the CN as the only DNS SAN",
        ),
        pytest.param(
            "my workload",
            None,
            None,
            id="no sans and a CN that is not a domain gives no SAN extension",
        ),
        pytest.param(
            "cn.example.com",
            [],
            [("DNSName", "cn.example.com")],
            id="an empty list counts as no sans",
        ),
        pytest.param(
            "cn.example.com",
            "one.example.com",
            [("DNSName", "one.example.com")],
            id="a string is one DNS name and the CN is not added",
        ),
        pytest.param(
            "cn.example.com",
            ["a.example.com", "b.example.com"],
            [("DNSName", "a.example.com"), ("DNSName", "b.example.com")],
            id="a list of strings are DNS names",
        ),
        pytest.param(
            "cn.example.com",
            ["*.example.net", "*.com", "bad name", "net"],
            [("DNSName", "*.example.net")],
            id="a wildcard is kept only over a valid domain and invalid names dropped",
        ),
        pytest.param(
            "cn.example.com",
            [
                {"type": "DNS_NAME", "value": "www.example.com"},
                {"type": "IP_ADDRESS", "value": "192.168.1.1"},
                {"type": "IP_ADDRESS", "value": "2001:db8::1"},
                {"type": "EMAIL_ADDRESS", "value": "admin@example.com"},
                {"type": "URL", "value": "https://svc.example.com/path"},
                {"type": "DN", "value": "CN=Example,O=Org"},
            ],
            [
                ("DNSName", "www.example.com"),
                ("IPAddress", "192.168.1.1"),
                ("IPAddress", "2001:db8::1"),
                ("RFC822Name", "admin@example.com"),
                ("UniformResourceIdentifier", "https://svc.example.com/path"),
                ("DirectoryName", "CN=Example,O=Org"),
            ],
            id="typed SANs of every type",
        ),
        pytest.param(
            "cn.example.com",
            [
                {"type": "DNS_NAME", "value": "ok.example.com"},
                {"type": "IP_ADDRESS", "value": "not-an-ip"},
                {"type": "EMAIL_ADDRESS", "value": "not-an-email"},
                {"type": "URL", "value": "spiffe://cluster.local/ns/a/sa/b"},
                {"type": "BOGUS", "value": "x"},
            ],
            [("DNSName", "ok.example.com")],
            id="invalid typed SANs and unknown types are dropped",
        ),
        pytest.param(
            "cn.example.com",
            {"DNS_NAME": ["a.example.com", "b.example.com"], "IP_ADDRESS": "10.0.0.1"},
            [("DNSName", "a.example.com"), ("DNSName", "b.example.com"), ("IPAddress", "10.0.0.1")],
            id="the map form takes a list or a single value per type",
        ),
        pytest.param(
            "cn.example.com",
            ["bad name"],
            None,
            id="sans given but all invalid gives no SAN extension",
        ),
    ],
)
def test_san_rules(client, common_name, sans, expected):
    fields = {} if sans is None else {"sans": sans}

    _, payload = invoke(client, issue_event(common_name, **fields))

    assert general_names(payload) == expected


def test_sans_inside_the_csr_are_ignored(client):
    pem = csr_pem("csrsan.example.com", dns_sans=["evil.example.org"])
    event = {"common_name": "csrsan.example.com", "base64_csr_data": base64.b64encode(pem).decode()}

    _, payload = invoke(client, event)

    assert general_names(payload) == [("DNSName", "csrsan.example.com")]


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        pytest.param("example.com", True, id="a two-label domain is valid"),
        pytest.param("svc.ns.svc.cluster.local", True, id="a cluster DNS name is valid"),
        pytest.param("com", False, id="a bare top-level domain is not valid"),
        pytest.param("localhost", False, id="a single label is not valid"),
        pytest.param("10.0.0.1", False, id="an IP address is not a domain"),
        pytest.param("-bad.example.com", False, id="a label may not start with a hyphen"),
        pytest.param("has space.example.com", False, id="spaces are not valid"),
    ],
)
def test_domain_validation(value, valid):
    assert san_rules.is_domain(value) is valid


def test_dropped_sans_are_logged():
    notes: list[str] = []

    kept = san_rules.select("cn.example.com", ["*.com", "a.example.com"], notes.append)

    assert kept == [san_rules.San("DNS_NAME", "a.example.com")]
    assert notes == ["Invalid DNS_NAME value '*.com' excluded from SANs"]


def test_ip_sans_become_ip_general_names():
    names = san_rules.to_general_names([san_rules.San("IP_ADDRESS", "::1")], lambda _: None)

    assert names == [x509.IPAddress(ipaddress.ip_address("::1"))]
