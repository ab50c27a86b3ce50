"""When to renew and how long to back off: cert-manager's rows, ported."""

from datetime import UTC, datetime, timedelta

import pytest

from cacore import renewal
from cacore.backoff import backoff_delay
from cacore.errors import InvalidRequest
from cacore.renewal import (
    RenewalPoint,
    RenewalPolicy,
    is_due,
    parse_duration,
    parse_renewal_point,
    renew_at,
    renewal_time,
    with_jitter,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("lifetime", "point", "renew_at"),
    [
        pytest.param(3 * H, RenewalPoint(), 2 * H, id="a 3 h lifetime renews at 2 h by default"),
        pytest.param(
            24 * H,
            RenewalPoint(before_expiry=20 * H),
            4 * H,
            id="20 h before a 24 h lifetime renews at 4 h",
        ),
        pytest.param(
            24 * H,
            RenewalPoint(before_expiry=25 * H),
            16 * H,
            id="25 h before a 24 h lifetime falls back to two thirds",
        ),
        pytest.param(
            24 * H,
            RenewalPoint(before_expiry=24 * H),
            16 * H,
            id="a duration equal to the lifetime falls back too",
        ),
        pytest.param(
            10 * H, RenewalPoint(fraction=0.7), 7 * H, id="a 70 percent point renews at 70 percent"
        ),
        pytest.param(
            24 * H,
            RenewalPoint(before_expiry=25 * H, fraction=0.5),
            12 * H,
            id="a duration that does not fit uses the configured fraction",
        ),
        pytest.param(
            timedelta(days=30, seconds=1),
            RenewalPoint(),
            timedelta(days=20),
            id="the result is truncated to whole seconds",
        ),
    ],
)
def test_renewal_time(lifetime, point, renew_at):
    assert renewal_time(T0, T0 + lifetime, point) == T0 + renew_at


def test_renewal_time_equal_to_now_renews():
    at = renewal_time(T0, T0 + 3 * H)
    assert is_due(at, at)
    assert not is_due(at - timedelta(seconds=1), at)


@pytest.mark.parametrize(
    ("rand", "expected"),
    [(0.0, 2 * H), (0.5, timedelta(minutes=114)), (0.999999, timedelta(minutes=108))],
)
def test_jitter_only_moves_renewal_earlier_within_its_spread(rand, expected):
    jittered = with_jitter(T0 + 2 * H, T0, spread=0.1, rand=rand)
    assert abs(jittered - (T0 + expected)) < timedelta(seconds=1)


@pytest.mark.parametrize(
    ("failures", "rand", "delay"),
    [
        pytest.param(0, 0.5, 0.0, id="no failure, no wait"),
        pytest.param(1, 0.0, 0.5, id="the first failure waits half a base at least"),
        pytest.param(1, 1.0, 1.0, id="and one base at most"),
        pytest.param(4, 1.0, 8.0, id="the wait doubles per failure"),
        pytest.param(20, 1.0, 300.0, id="the wait is capped at five minutes"),
        pytest.param(
            10_000, 0.0, 150.0, id="a huge count neither overflows nor drops below half the cap"
        ),
    ],
)
def test_backoff(failures, rand, delay):
    assert backoff_delay(failures, rand, base=1, cap=300) == pytest.approx(delay)


@pytest.mark.parametrize(
    ("text", "point"),
    [
        ("2/3", RenewalPoint(fraction=2 / 3)),
        ("66%", RenewalPoint(fraction=0.66)),
        ("0.5", RenewalPoint(fraction=0.5)),
        ("720h", RenewalPoint(before_expiry=timedelta(hours=720))),
        ("1h30m", RenewalPoint(before_expiry=timedelta(minutes=90))),
        ("10d", RenewalPoint(before_expiry=timedelta(days=10))),
        ("86395s", RenewalPoint(before_expiry=timedelta(seconds=86395))),
    ],
)
def test_renewal_points_parse(text, point):
    assert parse_renewal_point(text) == point


@pytest.mark.parametrize("text", ["", "soon", "150%", "0", "1", "3/0", "-5m", "5 minutes"])
def test_bad_renewal_points_name_the_field(text):
    with pytest.raises(InvalidRequest) as caught:
        parse_renewal_point(text, "CERT_RENEW_BEFORE")
    assert caught.value.field == "CERT_RENEW_BEFORE"


def test_durations_compose():
    assert parse_duration("1d2h3m4s") == timedelta(days=1, hours=2, minutes=3, seconds=4)


# One renewal rule for the sidecar and the operator (cacore.renewal.renew_at).
D = timedelta(days=1)
RENEW_AT_ROWS = [
    pytest.param(RenewalPolicy(), None, T0 + 20 * D, id="no jitter renews at two thirds"),
    pytest.param(
        RenewalPolicy(min_interval=timedelta(hours=1), point=RenewalPoint(fraction=0.001)),
        T0 + timedelta(minutes=5),
        T0 + timedelta(minutes=65),
        id="min_interval keeps an always-due renewal an interval after the last issuance",
    ),
]


@pytest.mark.parametrize(("policy", "issued_at", "lower_bound"), RENEW_AT_ROWS)
def test_renew_at_never_comes_before_its_bound(policy, issued_at, lower_bound):
    at = renew_at(T0, T0 + 30 * D, 12345, policy, issued_at)
    assert at == lower_bound


def test_jitter_is_stable_per_serial_and_spreads_a_fleet():
    policy = RenewalPolicy(jitter=0.2)
    times = {renew_at(T0, T0 + 30 * D, serial, policy) for serial in range(1000, 1020)}
    assert len(times) == 20
    assert all(T0 + 16 * D - timedelta(seconds=1) <= t <= T0 + 20 * D for t in times)
    assert renew_at(T0, T0 + 30 * D, 1000, policy) == renew_at(T0, T0 + 30 * D, 1000, policy)


def test_jitter_is_measured_from_the_issue_time_not_the_backdated_not_before():
    # The CA backdates notBefore 5 minutes: a 10-minute certificate renewing 10 s before expiry,
    # with 50 % jitter from notBefore, could renew before it was even issued.
    issued = T0 + timedelta(minutes=5)
    policy = RenewalPolicy(point=RenewalPoint(before_expiry=timedelta(seconds=10)), jitter=0.5)
    for serial in range(50):
        assert renew_at(T0, issued + timedelta(minutes=10), serial, policy, issued) >= issued


def test_renewal_reasons_are_a_closed_camel_case_vocabulary():
    names = [n for n in dir(renewal) if n.isupper() and isinstance(getattr(renewal, n), str)]
    values = [getattr(renewal, n) for n in names if n not in ("DEFAULT_RENEW_FRACTION",)]
    assert len(values) == len(set(values))
    assert all(v[:1].isupper() and v.isalnum() for v in values)
    assert renewal.success_reason(renewal.DOES_NOT_EXIST) == renewal.ISSUED
    assert renewal.success_reason(renewal.EXPIRED) == renewal.RENEWED
    assert renewal.success_reason(renewal.SPEC_CHANGED) == renewal.REISSUED
