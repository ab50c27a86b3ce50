"""Which entries `issue` sends: one pure decision per entry, from the CA's records and a clock."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from support.localca_fixtures import csr_pem
from support.pki import MiniCA, _pem

from gitops import issuing
from gitops.jsontext import append_to_array, parse
from gitops.records import parse_item, parse_serial
from gitops.validation import CheckedEntry

CA = MiniCA.create("Decide")
KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())


def entry(force: bool = False) -> CheckedEntry:
    pem = csr_pem("partner.example.com", KEY)
    fields = {"common_name": "partner.example.com", "csr_file": "partner.csr"}
    if force:
        fields["force_issue"] = True
    return CheckedEntry(0, fields, pem, x509.load_pem_x509_csr(pem))


def record(key=KEY, revoked: bool = False):
    cert = CA.sign(key.public_key(), "partner.example.com", days=30)
    item = {
        "CommonName": {"S": "partner.example.com"},
        "SerialNumber": {"S": str(cert.serial_number)},
        "Issued": {"S": "2026-01-01 00:00:00"},
        "Expires": {"S": "2026-01-31 00:00:00"},
        "Certificate": {"B": base64.b64encode(_pem(cert))},  # base64 of PEM, as the CA writes
    }
    if revoked:
        item["Revoked"] = {"S": "2026-01-02 00:00:00"}
    return parse_item(item)


NOW = record().certificate.not_valid_before_utc + timedelta(days=1)
LATER = NOW + timedelta(days=60)

ROWS = [
    (
        "send an entry whose key the CA has never certified",
        entry(),
        [],
        NOW,
        issuing.SEND,
        issuing.WOULD_ISSUE,
    ),
    (
        "send when the name only has certificates for other keys",
        entry(),
        [record(OTHER_KEY)],
        NOW,
        issuing.SEND,
        issuing.WOULD_ISSUE,
    ),
    (
        "skip an entry whose key holds a valid certificate",
        entry(),
        [record()],
        NOW,
        issuing.SKIP,
        issuing.ALREADY_ISSUED,
    ),
    (
        "skip and flag an entry whose certificate was revoked in the table",
        entry(),
        [record(revoked=True)],
        NOW,
        issuing.SKIP,
        issuing.REVOKED,
    ),
    (
        "skip and flag an expired certificate since the CA refuses the key again",
        entry(),
        [record()],
        LATER,
        issuing.SKIP,
        issuing.EXPIRED,
    ),
    (
        "renew an expired certificate when the entry sets force_issue",
        entry(force=True),
        [record()],
        LATER,
        issuing.SEND,
        issuing.WOULD_ISSUE,
    ),
    (
        "skip a force_issue entry that is still valid, so reruns stay idempotent",
        entry(force=True),
        [record()],
        NOW,
        issuing.SKIP,
        issuing.ALREADY_ISSUED,
    ),
    (
        "send without a table and let the CA's key-reuse guard decide",
        entry(),
        None,
        NOW,
        issuing.SEND,
        issuing.WOULD_ISSUE,
    ),
    (
        "refuse a force_issue entry without a table since every rerun would issue",
        entry(force=True),
        None,
        NOW,
        issuing.SKIP,
        issuing.FAILED,
    ),
]


@pytest.mark.parametrize(
    "checked, records, now, action, status", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS]
)
def test_plan_entry(checked, records, now, action, status):
    decision = issuing.plan_entry(checked, records, now, set())

    assert (decision.action, decision.status) == (action, status)


def test_a_serial_in_revoked_json_counts_as_revoked_before_the_ca_publishes_it():
    listed = record()

    decision = issuing.plan_entry(entry(), [listed], NOW, {listed.serial})

    assert decision.status == issuing.REVOKED


def test_a_dry_run_decides_without_a_ca():
    outcomes = issuing.run([entry()], lambda cn: [], None, NOW, set(), dry_run=True)

    assert [(o.status, o.csr_file) for o in outcomes] == [(issuing.WOULD_ISSUE, "partner.csr")]


SERIALS = [
    ("decimal stays decimal", "12345", "12345"),
    ("0x hex becomes decimal", "0x3039", "12345"),
    ("openssl colon hex becomes decimal", "30:39", "12345"),
]


@pytest.mark.parametrize("text, expected", [r[1:] for r in SERIALS], ids=[r[0] for r in SERIALS])
def test_parse_serial(text, expected):
    assert parse_serial(text) == expected


def test_a_serial_that_is_not_a_number_says_how_to_write_it():
    with pytest.raises(ValueError, match="give it in decimal as the DynamoDB table shows it"):
        parse_serial("serial-1")


def test_appending_keeps_existing_text_and_indentation():
    original = '[\n    {"common_name": "a.example.com",  "csr_file": "a.csr"}\n]\n'

    updated = append_to_array(original, {"common_name": "b.example.com"})

    assert updated.startswith('[\n    {"common_name": "a.example.com",  "csr_file": "a.csr"},\n')
    assert '\n    {\n      "common_name": "b.example.com"\n    }\n]\n' in updated
    assert parse(updated).value[1] == {"common_name": "b.example.com"}


def test_appending_to_an_empty_array():
    assert append_to_array("[]\n", {"a": 1}) == '[\n  {\n    "a": 1\n  }\n]\n'
