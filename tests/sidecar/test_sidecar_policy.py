"""The sidecar's policy as tables: facts on disk + settings + now -> what to do."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cacore import renewal
from cacore.credentials import FileNames
from cacore.keys import KeySpec, private_key_pem
from cacore.renewal import RenewalPoint, RenewalPolicy, certificate_renew_at
from cacore.request import CertificateRequest, San, Subject
from sidecar import policy as d
from sidecar.observe import NOTHING, Observed, observe

T0 = datetime(2030, 1, 1, tzinfo=UTC)  # issue time; the CA backdates notBefore by 5 minutes
P256 = KeySpec("ECDSA", 256)
KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())
REQUEST = CertificateRequest(subject=Subject("app.example.com"))


def leaf(
    key=KEY,
    cn="app.example.com",
    sans=("DNS:app.example.com",),
    days=30,
    eku=(ExtendedKeyUsageOID.CLIENT_AUTH,),
    org=None,
    serial=1234,
):
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Issuing")]))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(T0 - timedelta(minutes=5))
        .not_valid_after(T0 + timedelta(days=days))
        .add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    )
    general = []
    for san in sans:
        kind, _, value = san.partition(":")
        general.append(
            x509.IPAddress(ipaddress.ip_address(value)) if kind == "IP" else x509.DNSName(value)
        )
    if general:
        builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
    return builder.sign(OTHER_KEY, hashes.SHA256())


def seen(cert=None, key=KEY):
    return Observed(
        published=True,
        key=key,
        certificate=cert if cert is not None else leaf(),
        key_matches=(cert if cert is not None else leaf()).public_key().public_numbers()
        == key.public_key().public_numbers(),
    )


NOW = T0 + timedelta(days=1)

ISSUE_ROWS = [
    ("issue as nothing was ever published", NOTHING, REQUEST, NOW, renewal.DOES_NOT_EXIST),
    (
        "issue as the published set lacks the key",
        Observed(published=True, missing=("tls.key",)),
        REQUEST,
        NOW,
        renewal.MISSING_FILE,
    ),
    (
        "issue as the key does not parse",
        Observed(published=True, key_problem="garbage"),
        REQUEST,
        NOW,
        renewal.INVALID_KEY,
    ),
    (
        "issue as the certificate belongs to another key",
        seen(leaf(key=OTHER_KEY)),
        REQUEST,
        NOW,
        renewal.INVALID_KEY_PAIR,
    ),
    ("issue as the certificate expired", seen(), REQUEST, T0 + timedelta(days=31), renewal.EXPIRED),
    (
        "issue as the common name changed",
        seen(),
        CertificateRequest(subject=Subject("other.example.com")),
        NOW,
        renewal.SUBJECT_MISMATCH,
    ),
    (
        "issue as an organization was configured",
        seen(),
        CertificateRequest(subject=Subject("app.example.com", organization="Example")),
        NOW,
        renewal.SUBJECT_MISMATCH,
    ),
    (
        "issue as a SAN was added",
        seen(),
        CertificateRequest(
            subject=Subject("app.example.com"),
            sans=(San("DNS_NAME", "app.example.com"), San("IP_ADDRESS", "10.0.0.1")),
        ),
        NOW,
        renewal.SANS_MISMATCH,
    ),
    (
        "issue as server_auth was added to the purposes",
        seen(),
        CertificateRequest(
            subject=Subject("app.example.com"), purposes=("client_auth", "server_auth")
        ),
        NOW,
        renewal.PURPOSES_MISMATCH,
    ),
    (
        "issue at two thirds of the lifetime",
        seen(),
        REQUEST,
        T0 + timedelta(days=21),
        renewal.RENEWING,
    ),
]


@pytest.mark.parametrize(
    "observed, request_, now, reason", [r[1:] for r in ISSUE_ROWS], ids=[r[0] for r in ISSUE_ROWS]
)
def test_decide_issues_with_the_first_reason_found(observed, request_, now, reason):
    decision = d.evaluate(observed, request_, P256, now)
    assert (decision.reason, decision.issue) == (reason, True)


WAIT_ROWS = [
    ("wait: a valid certificate one day old", seen(), REQUEST, NOW),
    (
        "wait: the CA adds no organization it was not asked for, and more is fine",
        seen(leaf(org="CA Default Org")),
        REQUEST,
        NOW,
    ),
    (
        "wait: SANs compare by value, IPs normalised",
        seen(leaf(sans=("DNS:APP.example.com", "IP:10.0.0.1"))),
        CertificateRequest(
            subject=Subject("app.example.com"),
            sans=(San("IP_ADDRESS", "10.0.0.1"), San("DNS_NAME", "app.example.com")),
        ),
        NOW,
    ),
    (
        "wait: a common name that is no domain gets no SAN",
        seen(leaf(cn="batch job", sans=())),
        CertificateRequest(subject=Subject("batch job")),
        NOW,
    ),
]


@pytest.mark.parametrize(
    "observed, request_, now", [r[1:] for r in WAIT_ROWS], ids=[r[0] for r in WAIT_ROWS]
)
def test_decide_waits_for_a_matching_certificate(observed, request_, now):
    decision = d.evaluate(observed, request_, P256, now)
    assert (decision.reason, decision.issue) == (renewal.UP_TO_DATE, False), decision.message
    assert decision.renew_at is not None and decision.renew_at > now


def test_a_changed_key_algorithm_reissues():
    decision = d.evaluate(seen(), REQUEST, KeySpec("RSA", 2048), NOW)
    assert decision.reason == renewal.KEY_ALGORITHM_MISMATCH


RENEW_ROWS = [
    # (id, point, jitter, expected renewal offset from notBefore)
    ("default two thirds", RenewalPoint(), 0.0, (timedelta(days=30, minutes=5)) * 2 / 3),
    ("a fraction of 0.5", RenewalPoint(fraction=0.5), 0.0, timedelta(days=15, minutes=2.5)),
    (
        "a duration before expiry that fits",
        RenewalPoint(before_expiry=timedelta(days=10)),
        0.0,
        timedelta(days=20, minutes=5),
    ),
    (
        "a duration longer than the lifetime falls back to two thirds",
        RenewalPoint(before_expiry=timedelta(days=40)),
        0.0,
        (timedelta(days=30, minutes=5)) * 2 / 3,
    ),
]


@pytest.mark.parametrize(
    "point, jitter, offset", [r[1:] for r in RENEW_ROWS], ids=[r[0] for r in RENEW_ROWS]
)
def test_renewal_time_follows_the_renewal_point(point, jitter, offset):
    decision = d.evaluate(seen(), REQUEST, P256, NOW, RenewalPolicy(point=point, jitter=jitter))
    expected = (T0 - timedelta(minutes=5) + offset).replace(microsecond=0)
    assert decision.renew_at == expected


def test_jitter_moves_renewal_earlier_stably_per_serial_and_apart_across_serials():
    policy = RenewalPolicy(jitter=0.2)
    plain = d.evaluate(seen(), REQUEST, P256, NOW).renew_at
    times = {certificate_renew_at(leaf(serial=s), policy) for s in range(1000, 1020)}
    assert len(times) == 20, "a fleet issued together must not renew at the same moment"
    lifetime_so_far = plain - (T0 - timedelta(minutes=5))
    assert all(plain - lifetime_so_far * 0.2 <= t <= plain for t in times)
    assert certificate_renew_at(leaf(serial=1000), policy) == certificate_renew_at(
        leaf(serial=1000), policy
    )


def test_min_interval_holds_back_an_always_due_renewal_but_not_a_missing_certificate():
    policy = RenewalPolicy(
        point=RenewalPoint(before_expiry=timedelta(days=30, minutes=4)),
        min_interval=timedelta(seconds=30),
    )
    just_issued = T0 + timedelta(seconds=1)
    held = d.evaluate(seen(), REQUEST, P256, just_issued, policy, last_issued_at=T0)
    assert (held.issue, held.renew_at) == (False, T0 + timedelta(seconds=30))
    due = d.evaluate(seen(), REQUEST, P256, T0 + timedelta(seconds=30), policy, last_issued_at=T0)
    assert (due.issue, due.reason) == (True, renewal.RENEWING)
    missing = d.evaluate(NOTHING, REQUEST, P256, just_issued, policy, last_issued_at=T0)
    assert missing.issue


def test_observe_reads_a_real_set_and_notices_each_kind_of_damage():
    from cryptography.hazmat.primitives.serialization import Encoding

    cert_pem = leaf().public_bytes(Encoding.PEM)
    names = FileNames()
    good = observe({"tls.key": private_key_pem(KEY), "tls.crt": cert_pem}, names)
    assert good.key_matches and d.readiness_problem(good, NOW) is None
    swapped = observe({"tls.key": private_key_pem(OTHER_KEY), "tls.crt": cert_pem}, names)
    assert d.readiness_problem(swapped, NOW).reason == renewal.INVALID_KEY_PAIR
    broken = observe({"tls.key": b"nope", "tls.crt": cert_pem}, names)
    assert d.readiness_problem(broken, NOW).reason == renewal.INVALID_KEY
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert observe({"tls.key": private_key_pem(rsa_key)}, names).missing == ("tls.crt",)
