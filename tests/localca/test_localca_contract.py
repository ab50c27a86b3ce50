"""The real handler's answer for each kind of event, row by row (pure: no HTTP).

Upstream: serverless-ca/terraform-aws-ca, modules/terraform-aws-ca-lambda, v4 (2026):
lambda_code/tls_cert/tls_cert.py `lambda_handler` (steps in order: `Request.from_dict`,
ca_chain_only, `create_csr_info`, CSR load, `certificate_already_issued`,
`is_invalid_certificate_request`, `validate_custom_extensions`, `sign_csr`, `db_tls_cert_issued`),
utils/certs/ca.py `ca_build_cert` / `tls_cert_construct_subject_name`, utils/certs/types.py,
utils/certs/db.py. A crash is an exception escaping the handler (the Lambda's FunctionError
with that errorType); the messages are Python's own for the same operation.
"""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID
from localca_harness import BUCKET, Crash, b64_csr, event
from support.localca_fixtures import csr_pem

CHAIN_KEYS = ["Base64IssuingCaCertificate", "Base64RootCaCertificate", "Base64CaChain"]
CERT_KEYS = ["CertificateInfo", "Base64Certificate", "Subject", *CHAIN_KEYS]
NO_CSR = "argument should be a bytes-like object or ASCII string, not 'NoneType'"


def kind(run) -> object:
    """What a client sees: a Crash, {"error": ...}, or the sorted payload keys."""
    if isinstance(run.result, Crash):
        return run.result
    payload = run.result.payload
    return payload if "error" in payload else list(payload)


# Step 1, Request.from_dict (dataclasses-json 0.6.7): before ca_chain_only is even looked at.
REQUEST_DECODING = [
    pytest.param(
        [],
        Crash("AttributeError", "'list' object has no attribute 'items'"),
        id="an event that is a list",
    ),
    pytest.param(
        "text",
        Crash("AttributeError", "'str' object has no attribute 'items'"),
        id="an event that is a string",
    ),
    pytest.param(
        None,
        Crash("AttributeError", "'NoneType' object has no attribute 'items'"),
        id="an event that is null",
    ),
    pytest.param(
        {"ca_chain_only": True, "lifetime": "abc"},
        Crash("ValueError", "invalid literal for int() with base 10: 'abc'"),
        id="a lifetime that is not a number crashes even with ca_chain_only",
    ),
    pytest.param(
        {"ca_chain_only": True, "lifetime": [1]},
        Crash(
            "TypeError",
            "int() argument must be a string, a bytes-like object or a real number, not 'list'",
        ),
        id="a lifetime that is a list",
    ),
    pytest.param(
        {"ca_chain_only": True, "lifetime": 1e999},
        Crash("OverflowError", "cannot convert float infinity to integer"),
        id="a lifetime of 1e999",
    ),
    pytest.param(
        {"ca_chain_only": True, "purposes": 5},
        Crash("TypeError", "'int' object is not iterable"),
        id="purposes not iterable",
    ),
    pytest.param(
        {"ca_chain_only": True, "extended_key_usages": False},
        Crash("TypeError", "'bool' object is not iterable"),
        id="extended_key_usages not iterable",
    ),
    pytest.param(
        {"ca_chain_only": True, "extensions": ["x"]},
        Crash("AttributeError", "'str' object has no attribute 'keys'"),
        id="extensions holding a string",
    ),
    pytest.param(
        {"ca_chain_only": True, "extensions": {"oid": "1.2.3"}},
        Crash("AttributeError", "'str' object has no attribute 'keys'"),
        id="extensions given as one map",
    ),
    pytest.param(
        {"ca_chain_only": True, "lifetime": None, "common_name": None},
        CHAIN_KEYS,
        id="nulls pass, ca_chain_only needs nothing else",
    ),
    pytest.param(
        {"ca_chain_only": "false"},
        CHAIN_KEYS,
        id="ca_chain_only is truthiness: the string false is true",
    ),
    pytest.param(
        {"ca_chain_only": 0}, Crash("KeyError", "'common_name'"), id="ca_chain_only 0 is false"
    ),
    pytest.param(
        {"lifetime": "x", "purposes": 5},
        Crash("ValueError", "invalid literal for int() with base 10: 'x'"),
        id="fields are decoded in declaration order: lifetime before purposes",
    ),
]


# Step 3, create_csr_info: lifetime, subject, SANs, EKUs are read before the CSR is loaded.
REQUEST_INFO = [
    pytest.param({}, Crash("KeyError", "'common_name'"), id="no common_name"),
    pytest.param(
        {"lifetime": None},
        Crash(
            "TypeError",
            "int() argument must be a string, a bytes-like object or a real number, not 'NoneType'",
        ),
        id="a null lifetime crashes before the missing common_name",
    ),
    pytest.param(
        {"common_name": "x.example.com", "extended_key_usages": [5]},
        Crash("AttributeError", "'int' object has no attribute 'startswith'"),
        id="an EKU that is a number, before any CSR",
    ),
]


# Step 4, loading the CSR: base64 of a PEM CSR, or the GitOps csr_file.
CSR_LOADING = [
    pytest.param({"common_name": "x.example.com"}, Crash("TypeError", NO_CSR), id="no CSR"),
    pytest.param(
        {"common_name": "x.example.com", "base64_csr_data": 12345},
        Crash(
            "Error",
            "Invalid base64-encoded string: number of data characters (5) "
            "cannot be 1 more than a multiple of 4",
        ),
        id="a number is read as its text, then as base64",
    ),
    pytest.param(
        {"common_name": "x.example.com", "base64_csr_data": "é"},
        Crash("ValueError", "string argument should contain only ASCII characters"),
        id="non-ASCII base64",
    ),
    pytest.param(
        {"common_name": "x.example.com", "csr_file": 0},
        {"error": f"CSR file '0' not found in S3 bucket '{BUCKET}'"},
        id="csr_file is read as text: 0 names the file '0'",
    ),
    pytest.param(
        {"common_name": "x.example.com", "csr_file": ""},
        Crash("TypeError", NO_CSR),
        id="an empty csr_file means the base64 path",
    ),
]


@pytest.mark.parametrize(("event_", "expected"), REQUEST_DECODING + REQUEST_INFO + CSR_LOADING)
def test_event_table(lam, event_, expected):
    assert kind(lam(event_)) == expected


def test_bad_and_der_csrs_crash_with_value_error(lam):
    der = x509.load_pem_x509_csr(csr_pem()).public_bytes(serialization.Encoding.DER)

    for data in (b"not a pem", der):
        run = lam(
            {"common_name": "x.example.com", "base64_csr_data": base64.b64encode(data).decode()}
        )
        assert isinstance(run.result, Crash) and run.result.type == "ValueError"


# Steps 5-7: refusals in upstream's order, and the table lookups' own crashes.
def test_a_csr_without_a_cn_is_refused_even_when_the_request_names_one(lam):
    run = lam({"common_name": "x.example.com", "base64_csr_data": b64_csr(None), "lifetime": 0})

    assert kind(run) == {"error": "CSR must include a Common Name"}


def test_cn_equals_inside_another_attribute_passes_the_check_then_crashes(lam):
    # Upstream tests `"CN=" in csr.subject.rfc4514_string()`, then indexes the CSR's CN.
    data = b64_csr(None, extra_subject={"O": "xCN=y"})

    run = lam({"common_name": "x.example.com", "base64_csr_data": data})

    assert kind(run) == Crash("IndexError", "list index out of range")


@pytest.mark.parametrize(
    ("common_name", "force", "expected"),
    [
        pytest.param(
            "",
            False,
            Crash(
                "ClientError",
                "An error occurred (ValidationException) when calling the Query operation: "
                "One or more parameter values are not valid. The AttributeValue for a key "
                "attribute cannot contain an empty string value. Key: CommonName",
            ),
            id="an empty common_name: DynamoDB refuses the key-reuse query",
        ),
        pytest.param(
            5,
            False,
            Crash(
                "ParamValidationError",
                "Parameter validation failed:\nInvalid type for parameter "
                "ExpressionAttributeValues.:CommonName.S, value: 5, type: <class 'int'>, valid "
                "types: <class 'str'>",
            ),
            id="a number: boto3 refuses the query",
        ),
        pytest.param(
            5,
            True,
            Crash("TypeError", "value argument must be a str"),
            id="a number with force_issue: the subject cannot hold it",
        ),
        pytest.param(
            None,
            True,
            Crash(
                "ParamValidationError",
                "Parameter validation failed:\nInvalid type for parameter "
                "Item.CommonName.S, value: None, type: <class 'NoneType'>, valid types: <class "
                "'str'>",
            ),
            id="null with force_issue: signed with the CSR's CN, then the write fails",
        ),
        pytest.param(
            "",
            True,
            Crash(
                "ClientError",
                "An error occurred (ValidationException) when calling the PutItem "
                "operation: One or more parameter values were invalid: An AttributeValue may not "
                "contain an empty string. Key: CommonName",
            ),
            id="empty with force_issue",
        ),
        pytest.param(
            "a" * 65,
            False,
            Crash("ValueError", "Attribute's length must be >= 1 and <= 64, but it was 65"),
            id="a CN longer than 64 characters cannot be in a subject",
        ),
    ],
)
def test_unusable_common_names_crash_as_upstream(lam, common_name, force, expected):
    run = lam(
        {
            "common_name": common_name,
            "base64_csr_data": b64_csr("csr.example.com"),
            "force_issue": force,
        }
    )

    assert kind(run) == expected
    assert lam.history.keys == set()  # nothing on record: the key is not burnt


def test_key_reuse_is_refused_before_a_short_lifetime_and_force_issue_skips_it(lam):
    key = ec.generate_private_key(ec.SECP256R1())
    data = b64_csr("reuse.example.com", key)
    first = lam({"common_name": "reuse.example.com", "base64_csr_data": data})

    reused = lam({"common_name": "reuse.example.com", "base64_csr_data": data, "lifetime": 0})
    forced = lam(
        {"common_name": "reuse.example.com", "base64_csr_data": data, "force_issue": "no"}
    )  # any non-empty string is true
    other_name = lam({"common_name": "other.example.com", "base64_csr_data": data})

    assert kind(first) == CERT_KEYS
    assert kind(reused) == {"error": "Private key has already been used for a certificate"}
    assert kind(forced) == CERT_KEYS
    assert kind(other_name) == CERT_KEYS


def test_csr_file_with_a_key_on_record_is_already_issued_unless_forced(lam):
    key = ec.generate_private_key(ec.SECP256R1())
    lam.csr_files["app.csr"] = csr_pem("gitops.example.com", key)
    request = {"common_name": "gitops.example.com", "csr_file": "app.csr"}

    first, second = lam(request), lam(request)
    same_key_inline = lam(
        {
            "common_name": "gitops.example.com",
            "base64_csr_data": base64.b64encode(csr_pem("gitops.example.com", key)).decode(),
        }
    )
    forced = lam({**request, "force_issue": True})

    assert kind(first) == CERT_KEYS
    assert kind(second) == {"error": "Certificate already issued"}
    assert kind(same_key_inline) == {"error": "Private key has already been used for a certificate"}
    assert kind(forced) == CERT_KEYS


@pytest.mark.parametrize(
    ("lifetime", "expected"),
    [
        pytest.param(0, {"error": "0 is too short"}, id="zero"),
        pytest.param("-3", {"error": "-3 is too short"}, id="a numeric string"),
        pytest.param(-0.5, {"error": "0 is too short"}, id="a fraction truncates toward zero"),
        pytest.param(True, 1, id="true is one day"),
        pytest.param(1.9, 1, id="1.9 is one day"),
        pytest.param("\u0663", 3, id="any Unicode digit, as Python's int() reads it"),
        pytest.param(10**30, 365, id="a huge lifetime is capped silently"),
    ],
)
def test_lifetime(lam, lifetime, expected):
    run = lam(event("life.example.com", lifetime=lifetime))

    if isinstance(expected, dict):
        assert kind(run) == expected
    else:
        cert = run.cert
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(
            days=expected, minutes=5
        )


# Step 7b, custom extensions: checked after the lifetime, first problem refuses.
OID = "1.3.6.1.4.1.55555.1.1"


def ext(oid=OID, value="AA==", **more):
    return {"oid": oid, "value_b64": value, **more}


@pytest.mark.parametrize(
    ("extensions", "expected"),
    [
        pytest.param(
            [ext(), ext()],
            f"Custom extension OID {OID} is specified more than once",
            id="a duplicate",
        ),
        pytest.param(
            [ext(oid="2.5.29.17")],
            "Custom extension OID 2.5.29.17 is reserved and cannot be set by callers",
            id="reserved even when allow-listed",
        ),
        pytest.param(
            [ext(oid="1.2.3.4")],
            "Custom extension OID 1.2.3.4 is not in the configured allowlist",
            id="not allow-listed",
        ),
        pytest.param(
            [{"oid": OID}],
            f"Custom extension OID {OID} is missing required field 'value_b64'",
            id="no value",
        ),
        pytest.param(
            [ext(value="!!")],
            f"Custom extension OID {OID} has an invalid base64 value",
            id="bad base64",
        ),
        pytest.param([{}], "Custom extension is missing required field 'oid'", id="no oid"),
    ],
)
def test_custom_extension_refusals(lam, extensions, expected):
    lam.allowlist = (OID, "2.5.29.17")

    assert kind(lam(event("ext.example.com", extensions=extensions))) == {"error": expected}


@pytest.mark.parametrize(
    ("extensions", "expected"),
    [
        pytest.param(
            [None],
            Crash("AttributeError", "'NoneType' object has no attribute 'get'"),
            id="a null entry",
        ),
        pytest.param(
            [{"oid": ["x"]}],
            Crash("TypeError", "unhashable type: 'list'"),
            id="an oid that is a list",
        ),
    ],
)
def test_custom_extension_crashes(lam, extensions, expected):
    assert kind(lam(event("ext.example.com", extensions=extensions))) == expected


def test_lifetime_is_refused_before_custom_extensions(lam):
    run = lam(event("ext.example.com", lifetime=0, extensions=[{}]))

    assert kind(run) == {"error": "0 is too short"}


def test_critical_is_truthiness_and_custom_extensions_come_before_the_san(lam):
    lam.allowlist = (OID,)

    run = lam(event("order.example.com", extensions=[ext(critical="false")]))

    cert = run.cert
    assert cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(OID)).critical
    assert [e.oid for e in cert.extensions] == [
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.CERTIFICATE_POLICIES,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        x509.ObjectIdentifier(OID),
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    ]


# The issued certificate: subject and extended key usages (utils/certs/ca.py).
@pytest.mark.parametrize(
    ("csr_subject", "fields", "expected"),
    [
        pytest.param(
            {},
            {
                "organization": "Acme",
                "organizational_unit": "Ops",
                "locality": "London",
                "state": "England",
                "country": "GB",
                "email_address": "ops@example.com",
            },
            "ST=England,OU=Ops,O=Acme,L=London,1.2.840.113549.1.9.1=ops@example.com,"
            "C=GB,CN=subj.example.com",
            id="built CN, C, E, L, O, OU, ST; shown reversed",
        ),
        pytest.param(
            {"O": "CSR Org", "C": "US", "L": "Boston"},
            {"organization": "Request Org", "country": ""},
            "O=Request Org,L=Boston,C=US,CN=subj.example.com",
            id="a request field overrides; an empty one keeps the CSR's",
        ),
    ],
)
def test_subject(lam, csr_subject, fields, expected):
    data = b64_csr("csr-cn.example.com", extra_subject=csr_subject)

    run = lam({"common_name": "subj.example.com", "base64_csr_data": data, **fields})

    assert run.payload["Subject"] == expected
    assert run.cert.subject.rfc4514_string() == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(
            {"organization": 5}, Crash("TypeError", "value argument must be a str"), id="a number"
        ),
        pytest.param(
            {"country": "USA"},
            Crash("ValueError", "Attribute's length must be >= 2 and <= 2, but it was 3"),
            id="a three-letter country",
        ),
    ],
)
def test_subject_values_upstream_crashes_on(lam, fields, expected):
    assert kind(lam(event("subj.example.com", **fields))) == expected


def test_an_empty_common_name_in_the_request_would_use_the_csr_cn_but_the_table_refuses(lam):
    run = lam({"common_name": "", "base64_csr_data": b64_csr("csr.example.com")})

    assert isinstance(run.result, Crash) and run.result.type == "ClientError"


CLIENT, SERVER = ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({}, [CLIENT], id="default client auth"),
        pytest.param(
            {"purposes": ["server_auth", "client_auth"]},
            [SERVER, CLIENT],
            id="purposes in the order given",
        ),
        pytest.param(
            {"purposes": ["client_auth", "client_auth"]},
            [CLIENT, CLIENT],
            id="a repeated purpose is repeated",
        ),
        pytest.param({"purposes": "server_auth"}, [CLIENT], id="a string is not a list"),
        pytest.param(
            {"purposes": [["server_auth"]], "extended_key_usages": "CODE_SIGNING"},
            [CLIENT],
            id="unhashable purposes and a string EKU are ignored",
        ),
        pytest.param(
            {
                "extended_key_usages": [
                    "CODE_SIGNING",
                    "1.3.6.1.5.5.7.3.3",
                    "TLS_WEB_CLIENT_AUTHENTICATION",
                    "NONE",
                    "BOGUS",
                ]
            },
            [CLIENT, ExtendedKeyUsageOID.CODE_SIGNING],
            id="EKUs after purposes, each once, NONE and unknown names add nothing",
        ),
        pytest.param(
            {"extended_key_usages": ["2.999", "ANY"]},
            [CLIENT, x509.ObjectIdentifier("2.999"), x509.ObjectIdentifier("2.5.29.37.0")],
            id="dotted OIDs and ANY",
        ),
    ],
)
def test_extended_key_usage(lam, fields, expected):
    run = lam(event("eku.example.com", **fields))

    assert list(run.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == (
        expected
    )


def test_a_kept_dotted_eku_that_is_not_an_oid_crashes_when_signing(lam):
    run = lam(event("eku.example.com", extended_key_usages=["1.foo"]))

    assert isinstance(run.result, Crash) and run.result.type == "ValueError"
    assert lam.history.keys == set()


def test_cert_bundle_and_info(lam, authority):
    run = lam(event("bundle.example.com", cert_bundle="yes"))

    payload = run.payload
    bundle = base64.b64decode(payload["Base64Certificate"]).decode()
    assert bundle.endswith(authority.issuing_pem + authority.root_pem)
    info = payload["CertificateInfo"]
    assert list(info) == ["CommonName", "SerialNumber", "Issued", "Expires"]
    assert info["Issued"] == "2026-05-01 11:55:00" and info["Expires"] == "2026-05-31 12:00:00"
