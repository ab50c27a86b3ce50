"""The trigger chain, one row per reason, named as sentences; plus retry and renewal timing."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from certoperator.api import ANNOTATION_ISSUED_AT, ANNOTATION_SPEC_HASH
from certoperator.conditions import format_time
from certoperator.policy import (
    FailedAttempts,
    RetryPolicy,
    evaluate,
    may_issue,
    renew_at,
    retry_at,
    template_drift,
)
from cryptography.hazmat.primitives.asymmetric import ec
from operator_builders import HASH, NOW, ROOT_KEY, issued_data, make_input, secret

from cacore import renewal
from cacore.keys import private_key_pem
from cacore.renewal import RenewalPoint

_data, _ = issued_data()
_other_key = ec.generate_private_key(ec.SECP256R1())
_expired, _ = issued_data(not_before=NOW - timedelta(days=31), days=30)
_foreign_chain, _ = issued_data(signer=ROOT_KEY)  # signed by the root, not by the issuing CA

TRIGGERS = [
    (
        "issue the first certificate when no Secret exists and none was ever issued",
        make_input(secret=None, previously_issued=False),
        renewal.DOES_NOT_EXIST,
    ),
    (
        "re-issue when the Secret was deleted after an issuance",
        make_input(secret=None, previously_issued=True),
        renewal.SECRET_MISSING,
    ),
    (
        "take over a Secret of that name controlled by another object",
        make_input(secret=secret(controller_uid="someone-else")),
        renewal.SECRET_NOT_OWNED,
    ),
    (
        "take over a Secret controlled by nobody",
        make_input(secret=secret(controller_uid=None)),
        renewal.SECRET_NOT_OWNED,
    ),
    (
        "re-issue when the Secret has no private key",
        make_input(secret=secret(data={k: v for k, v in _data.items() if k != "tls.key"})),
        renewal.MISSING_DATA,
    ),
    (
        "re-issue when the certificate does not parse",
        make_input(
            secret=secret(
                data={
                    **_data,
                    "tls.crt": b"-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n",
                }
            )
        ),
        renewal.MISSING_DATA,
    ),
    (
        "re-issue when the key was replaced by another key",
        make_input(secret=secret(data={**_data, "tls.key": private_key_pem(_other_key)})),
        renewal.INVALID_KEY_PAIR,
    ),
    (
        "re-issue when the certificate does not chain to ca.crt",
        make_input(secret=secret(data=_foreign_chain)),
        renewal.INVALID_CHAIN,
    ),
    (
        "re-issue when the spec hash on the Secret differs from the spec",
        make_input(spec_hash="hash-2"),
        renewal.SPEC_CHANGED,
    ),
    (
        "re-issue when the Secret has no spec hash at all",
        make_input(secret=secret(annotations={})),
        renewal.SPEC_CHANGED,
    ),
    ("renew an expired certificate", make_input(secret=secret(data=_expired)), renewal.EXPIRED),
    (
        "renew when two thirds of the lifetime have passed",
        make_input(now=NOW + timedelta(days=19)),
        renewal.RENEWING,
    ),
    (
        "renew when the renewal time equals now",
        make_input(renewal=RenewalPoint(before_expiry=timedelta(days=29)), now=NOW),
        renewal.RENEWING,
    ),
]


@pytest.mark.parametrize(
    "inp, expected", [(i, e) for _, i, e in TRIGGERS], ids=[t[0] for t in TRIGGERS]
)
def test_trigger_chain_names_the_first_reason(inp, expected):
    verdict, facts = evaluate(inp)
    assert verdict is not None and verdict.reason == expected
    assert facts is None


def test_a_valid_secret_for_the_current_spec_needs_nothing_and_reports_its_facts():
    data, leaf = issued_data()
    verdict, facts = evaluate(make_input(secret=secret(data=data)))
    assert verdict is None
    assert facts.serial == leaf.serial_number
    assert facts.not_after == leaf.not_valid_after_utc
    # default renewal point: two thirds of the 30-day lifetime after notBefore
    assert facts.renewal_time == leaf.not_valid_before_utc + timedelta(days=20)


def test_a_foreign_secret_wins_over_its_other_faults():
    inp = make_input(secret=secret(controller_uid="x", annotations={}), spec_hash="other")
    assert evaluate(inp)[0].reason == renewal.SECRET_NOT_OWNED


def test_renew_before_close_to_the_lifetime_renews_seconds_after_issuance():
    # The CA backdates notBefore by 5 minutes; renewal must not fall into the past.
    issued_at = NOW
    data, leaf = issued_data(
        not_before=NOW - timedelta(minutes=5), not_after=NOW + timedelta(days=1)
    )
    point = RenewalPoint(before_expiry=timedelta(days=1) - timedelta(seconds=10))
    at = renew_at(leaf, point, jitter=0.1, issued_at=issued_at)
    assert NOW + timedelta(seconds=9) <= at <= NOW + timedelta(seconds=10)


@pytest.mark.parametrize(
    "jitter, earliest_fraction",
    [(0.0, 1.0), (0.1, 0.9), (0.5, 0.5)],
    ids=[
        "no jitter renews exactly at the point",
        "10% jitter stays within the last tenth",
        "50% jitter stays within half",
    ],
)
def test_jitter_moves_renewal_earlier_within_its_bound_and_is_stable(jitter, earliest_fraction):
    _, leaf = issued_data(not_before=NOW, days=30)
    base = leaf.not_valid_before_utc + timedelta(days=20)
    first = renew_at(leaf, RenewalPoint(), jitter, None)
    assert first == renew_at(leaf, RenewalPoint(), jitter, None)  # same serial, same time
    assert (
        leaf.not_valid_before_utc + timedelta(days=20 * earliest_fraction) - timedelta(seconds=1)
        <= first
        <= base
    )


def test_facts_use_the_issued_at_annotation_for_jitter():
    data, leaf = issued_data(not_before=NOW, days=30)
    view = secret(
        data=data, annotations={ANNOTATION_SPEC_HASH: HASH, ANNOTATION_ISSUED_AT: format_time(NOW)}
    )
    _, facts = evaluate(make_input(secret=view, now=NOW, jitter=0.2))
    assert facts.renewal_time <= NOW + timedelta(days=20)


FAIL = FailedAttempts(
    attempts=1, last_failure=NOW, reason=renewal.FAILED, message="x", spec_hash=HASH, transient=True
)
POLICY = RetryPolicy(base=2, cap=60, refused_base=3600, refused_cap=86400)


@pytest.mark.parametrize(
    "failure, now, expected_wait",
    [
        (None, NOW, None),
        (FAIL, NOW, NOW + timedelta(seconds=2)),
        (FAIL, NOW + timedelta(seconds=2), None),
        (replace(FAIL, attempts=4), NOW, NOW + timedelta(seconds=16)),
        (replace(FAIL, attempts=30), NOW, NOW + timedelta(seconds=60)),
        (
            replace(FAIL, transient=False, reason=renewal.REFUSED),
            NOW + timedelta(minutes=59),
            NOW + timedelta(hours=1),
        ),
        (replace(FAIL, transient=False, spec_hash="old"), NOW, None),
    ],
    ids=[
        "issue at once when nothing failed",
        "wait the base delay after one transient failure",
        "issue again once the base delay has passed",
        "double the delay per failure",
        "never wait longer than the cap",
        "wait an hour after a refusal",
        "a spec change lifts the backoff of a refusal",
    ],
)
def test_retry_backoff(failure, now, expected_wait):
    # rand=1.0 takes the top of the "equal jitter" band, so expectations are exact
    assert may_issue(failure, HASH, now, POLICY, rand=1.0) == expected_wait


def test_retry_at_grows_from_seconds_to_minutes():
    delays = [
        (retry_at(replace(FAIL, attempts=n), RetryPolicy(), 1.0) - NOW).total_seconds()
        for n in range(1, 12)
    ]
    assert delays[0] == 2 and delays[-1] == 300 and delays == sorted(delays)


@pytest.mark.parametrize(
    "labels, annotations, drift",
    [({}, {}, False), ({"team": "a"}, {}, True), ({}, {ANNOTATION_SPEC_HASH: HASH}, False)],
    ids=[
        "no template, no drift",
        "a template label missing from the Secret is drift",
        "an annotation already present is no drift",
    ],
)
def test_template_drift(labels, annotations, drift):
    assert template_drift(secret(), labels, annotations) is drift
