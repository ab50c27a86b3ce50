"""SAN rules of the real handler, row by row: input shapes, validation, the double filter, DN order.

Upstream facts (serverless-ca/terraform-aws-ca, modules/terraform-aws-ca-lambda):
- utils/certs/types.py `normalize_sans_input` / `filter_and_validate_sans_typed`, run once in
  `CsrInfo.__post_init__` and again by the `sans` property read in `crypto_cert_request_info`
  (utils/certs/crypto.py): so an all-invalid list falls back to the common name;
- validators 0.35.0 `domain`, `email`, `url` (pinned in lambda_code/tls_cert/requirements.txt);
- utils/certs/crypto.py `convert_sans_to_x509` (a conversion error skips the entry) and
  `parse_dn_to_x509_name` (split on commas, keys CN O OU C ST L E DC, order kept).
"""

from __future__ import annotations

import base64
import ipaddress

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from localca_harness import Crash, event
from support.localca_fixtures import csr_pem, invoke, issue_event

from localca import sans as san_rules
from localca import validation

CN = "cn.example.com"


def names_of(cert: x509.Certificate) -> list[tuple[str, str]] | None:
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


def dns(*values: str) -> list[tuple[str, str]]:
    return [("DNSName", v) for v in values]


SAN_TABLE = [
    # shapes
    pytest.param(CN, None, dns(CN), id="no sans: the CN when it is a domain"),
    pytest.param("my workload", None, None, id="no sans and a CN that is no domain: no SAN"),
    pytest.param(CN, [], dns(CN), id="an empty list counts as no sans"),
    pytest.param(CN, "one.example.com", dns("one.example.com"), id="a string is one DNS name"),
    pytest.param(
        CN,
        ["a.example.com", "b.example.com"],
        dns("a.example.com", "b.example.com"),
        id="a list of strings are DNS names, the CN is not added",
    ),
    pytest.param(
        CN,
        {"DNS_NAME": ["a.example.com"], "IP_ADDRESS": "10.0.0.1"},
        [*dns("a.example.com"), ("IPAddress", "10.0.0.1")],
        id="a map takes a list or one value per type",
    ),
    pytest.param(
        CN,
        [{"value": "v.example.com"}],
        dns("v.example.com"),
        id="a typed entry without type is a DNS name",
    ),
    pytest.param(
        CN,
        [{"type": "dns_name", "value": "l.example.com"}],
        dns("l.example.com"),
        id="types are upper-cased",
    ),
    pytest.param(
        CN, {"dns_name": "m.example.com"}, dns("m.example.com"), id="map keys are upper-cased"
    ),
    # issue 14 item 1: the double filter falls back to the CN when every entry is dropped
    pytest.param(CN, ["bad name"], dns(CN), id="every entry invalid: the CN, as with no sans"),
    pytest.param(CN, "", dns(CN), id="an empty string is dropped, then the CN"),
    pytest.param(
        CN, [{"type": "BOGUS", "value": "x"}], dns(CN), id="an unknown type is dropped, then the CN"
    ),
    pytest.param(
        CN,
        [{"type": "", "value": "x.example.com"}],
        dns(CN),
        id="an empty type is skipped, then the CN",
    ),
    pytest.param(CN, [1, "a.example.com"], dns(CN), id="a list mixing shapes gives nothing: CN"),
    pytest.param(CN, 5, dns(CN), id="a number gives nothing: the CN"),
    pytest.param(CN, {}, dns(CN), id="an empty map gives nothing: the CN"),
    pytest.param(CN, {"DNS_NAME": 5}, dns(CN), id="a map value that is no string or list: CN"),
    pytest.param(
        "my workload",
        ["bad name"],
        None,
        id="every entry invalid and a CN that is no domain: no SAN",
    ),
    # DNS names (validators.domain)
    pytest.param(
        CN,
        ["*.example.net", "*.com", "*", "*.*.example.net", "x*.example.net"],
        dns("*.example.net"),
        id="a wildcard only as the first label over a domain",
    ),
    pytest.param(
        CN,
        ["my_host.example.com", "a.b_c", "a.b__c"],
        dns("a.b_c"),
        id="underscore only in the top-level label, never doubled",
    ),
    pytest.param(
        CN,
        ["com", "localhost", "10.0.0.1", "-a.example.com", "a.example.com."],
        dns(CN),
        id="bare TLD, single label, IP, leading hyphen, trailing dot: dropped",
    ),
    pytest.param(
        CN,
        ["a" * 63 + ".example.com", "a" * 64 + ".example.com"],
        dns("a" * 63 + ".example.com"),
        id="a label holds at most 63 characters",
    ),
    pytest.param(
        CN,
        ["bücher.example.com"],
        None,
        id="a unicode domain is valid but cryptography refuses it: no SAN at all",
    ),
    # IP addresses (ipaddress.ip_address)
    pytest.param(
        CN,
        [{"type": "IP_ADDRESS", "value": "2001:db8::1"}],
        [("IPAddress", "2001:db8::1")],
        id="IPv6",
    ),
    pytest.param(
        CN,
        [{"type": "IP_ADDRESS", "value": 167772161}],
        [("IPAddress", "10.0.0.1")],
        id="an integer is an IP address",
    ),
    pytest.param(
        CN, [{"type": "IP_ADDRESS", "value": "010.0.0.1"}], dns(CN), id="leading zeros are refused"
    ),
    pytest.param(
        CN,
        {"IP_ADDRESS": [0]},
        None,
        id="0 passes the first filter but is skipped as empty by the second: no SAN",
    ),
    # emails (validators.email)
    pytest.param(
        CN,
        [{"type": "EMAIL_ADDRESS", "value": "ops+x@example.com"}],
        [("RFC822Name", "ops+x@example.com")],
        id="an email",
    ),
    pytest.param(
        CN,
        {"EMAIL_ADDRESS": ["a@b@example.com", "a..b@example.com", "@example.com"]},
        dns(CN),
        id="two @, an empty atom, an empty local part: dropped",
    ),
    pytest.param(
        CN,
        {"EMAIL_ADDRESS": "é@example.com"},
        None,
        id="a Latin-1 local part is valid but cryptography refuses it: no SAN",
    ),
    # URLs (validators.url)
    pytest.param(
        CN,
        {
            "URL": [
                "https://svc.example.com/p?q=1#f",
                "http://10.0.0.1:8080/x",
                "ftp://u:p@files.example.com",
            ]
        },
        [
            ("UniformResourceIdentifier", u)
            for u in (
                "https://svc.example.com/p?q=1#f",
                "http://10.0.0.1:8080/x",
                "ftp://u:p@files.example.com",
            )
        ],
        id="web-like schemes, ports, user info",
    ),
    pytest.param(
        CN,
        {
            "URL": [
                "spiffe://cluster.local/ns/a/sa/b",
                "https://x.example.com/?a",
                "https://x.example.com:0/",
                "https://localhost/",
            ]
        },
        dns(CN),
        id="spiffe, a bare query key, port 0, a single-label host: dropped",
    ),
    # directory names (issue 14 item 2)
    pytest.param(
        CN,
        [{"type": "DN", "value": "CN=app,O=Example"}],
        [("DirectoryName", "O=Example,CN=app")],
        id="a DN keeps the order written (CN first, so RFC 4514 shows it last)",
    ),
    pytest.param(
        CN,
        [{"type": "DN", "value": "cn = app , o=Example, X=y"}],
        [("DirectoryName", "O=Example,CN=app")],
        id="keys are case-insensitive, spaces trimmed, unknown keys left out",
    ),
    pytest.param(
        CN,
        [{"type": "DN", "value": "CN=a\\,b,O=x"}],
        [("DirectoryName", "O=x,CN=a\\\\")],
        id="no escaping: a comma always splits",
    ),
    pytest.param(
        CN,
        [{"type": "DN", "value": "X=y,FOO=bar"}],
        [("DirectoryName", "")],
        id="valid by substring (FOO= holds O=) but no known key: an empty name",
    ),
    pytest.param(
        CN,
        [{"type": "DN", "value": "C=USA"}],
        None,
        id="cryptography refuses a 3-letter country: skipped, no SAN",
    ),
    pytest.param(
        CN,
        [{"type": "DN", "value": "nothing here"}],
        dns(CN),
        id="a DN without = is dropped: the CN",
    ),
]


@pytest.mark.parametrize(("common_name", "sans", "expected"), SAN_TABLE)
def test_san_table(lam, common_name, sans, expected):
    fields = {} if sans is None else {"sans": sans}

    run = lam(event(common_name, **fields))

    assert names_of(run.cert) == expected


@pytest.mark.parametrize(
    ("sans", "error_type", "message"),
    [
        pytest.param(
            [{"type": None, "value": "x"}],
            "AttributeError",
            "'NoneType' object has no attribute 'upper'",
            id="a null type",
        ),
        pytest.param(
            {"DNS_NAME": [5]},
            "AttributeError",
            "'int' object has no attribute 'split'",
            id="a DNS name that is a number",
        ),
        pytest.param(
            [{"type": "DN", "value": 5}],
            "TypeError",
            "argument of type 'int' is not iterable",
            id="a DN that is a number",
        ),
        pytest.param(
            {"EMAIL_ADDRESS": [True]},
            "AttributeError",
            "'bool' object has no attribute 'count'",
            id="an email that is a boolean",
        ),
    ],
)
def test_san_values_upstream_crashes_on(lam, sans, error_type, message):
    # Raised while the request is read, before the CSR: even an event without one crashes so.
    run = lam({"common_name": CN, "sans": sans})

    assert run.result == Crash(error_type, message)


def test_dropped_and_unconvertible_sans_are_logged_as_upstream_prints_them(lam):
    run = lam(event(CN, sans=["*.com", "ok.example.com", "bücher.example.com"]))

    assert run.log == [
        "Invalid DNS_NAME value '*.com' excluded from SANs",
        "Error converting SAN DNS_NAME:bücher.example.com to x509 format: DNSName values should "
        "be passed as an A-label string. This means unicode characters should be encoded via a "
        "library like idna.",
    ]


def test_sans_inside_the_csr_are_ignored(lam):
    pem = csr_pem("csrsan.example.com", dns_sans=["evil.example.org"])

    run = lam(
        {"common_name": "csrsan.example.com", "base64_csr_data": base64.b64encode(pem).decode()}
    )

    assert names_of(run.cert) == dns("csrsan.example.com")


def test_a_dn_san_is_encoded_in_the_order_written(lam):
    run = lam(event(CN, sans=[{"type": "DN", "value": "CN=app,O=Example,C=GB"}]))

    ext = run.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    (name,) = ext.get_values_for_type(x509.DirectoryName)
    assert [a.oid for a in name] == [
        NameOID.COMMON_NAME,
        NameOID.ORGANIZATION_NAME,
        NameOID.COUNTRY_NAME,
    ]


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        pytest.param("example.com", True, id="a two-label domain"),
        pytest.param("svc.ns.svc.cluster.local", True, id="a cluster DNS name"),
        pytest.param("EXAMPLE.COM", True, id="case-insensitive"),
        pytest.param("xn--bcher-kva.example", True, id="an A-label"),
        pytest.param("com", False, id="a bare top-level domain"),
        pytest.param("example.c0m1", False, id="a TLD ending in a digit"),
        pytest.param("a\u00a0b.com", False, id="non-ASCII whitespace"),
        pytest.param(5, False, id="a number"),
    ],
)
def test_domain_rule(value, valid):
    assert validation.is_domain(value) is valid


def test_ip_sans_become_ip_general_names():
    names = san_rules.to_general_names([san_rules.San("IP_ADDRESS", "::1")], lambda _: None)

    assert names == [x509.IPAddress(ipaddress.ip_address("::1"))]


@pytest.fixture
def client(ca):
    return ca.lambda_client()


@pytest.mark.parametrize(
    ("sans", "expected"),
    [
        pytest.param(["not a name"], dns("e2e.example.com"), id="all invalid: the CN"),
        pytest.param(
            [{"type": "DN", "value": "CN=app,O=Example"}],
            [("DirectoryName", "O=Example,CN=app")],
            id="DN order",
        ),
        pytest.param(
            {"DNS_NAME": "a.example.com", "URL": "https://a.example.com/x"},
            [*dns("a.example.com"), ("UniformResourceIdentifier", "https://a.example.com/x")],
            id="map form",
        ),
    ],
)
def test_san_rules_through_boto3(client, sans, expected):
    _, payload = invoke(client, issue_event("e2e.example.com", sans=sans))

    cert = x509.load_pem_x509_certificate(base64.b64decode(payload["Base64Certificate"]))
    assert names_of(cert) == expected
