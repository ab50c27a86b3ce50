"""When to renew and how long to wait after a failure: pure functions of times and counts."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_RENEW_FRACTION = 2 / 3  # renew when two thirds of the lifetime have passed
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class RenewalPoint:
    """Either a duration before expiry or a fraction of the lifetime at which to renew."""

    before_expiry: timedelta | None = None
    fraction: float | None = None


def parse_duration(text: str, field: str = "duration") -> timedelta:
    """Go-style durations (``90m``, ``1h30m``, ``720h``) plus days (``10d``)."""
    from cacore.errors import InvalidRequest

    stripped = text.strip()
    pos, total = 0, 0.0
    for match in _DURATION.finditer(stripped):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not stripped or pos != len(stripped):
        raise InvalidRequest(field, f"{text!r} is not a duration; write e.g. 720h, 90m or 10d")
    return timedelta(seconds=total)


def parse_renewal_point(text: str, field: str = "renew_before") -> RenewalPoint:
    """``2/3`` or ``0.66`` or ``66%`` (fraction of lifetime elapsed) or a duration before expiry."""
    from cacore.errors import InvalidRequest

    stripped = text.strip()
    fraction: float | None = None
    try:
        if stripped.endswith("%"):
            fraction = float(stripped[:-1]) / 100
        elif "/" in stripped:
            top, bottom = stripped.split("/", 1)
            fraction = float(top) / float(bottom)
        elif re.fullmatch(r"\d*\.\d+|[01]", stripped):
            fraction = float(stripped)
    except (ValueError, ZeroDivisionError) as error:
        raise InvalidRequest(field, f"{text!r} is not a fraction such as 2/3 or 66%") from error
    if fraction is not None:
        if not 0 < fraction < 1:
            raise InvalidRequest(field, f"{text!r} must be a fraction strictly between 0 and 1")
        return RenewalPoint(fraction=fraction)
    duration = parse_duration(stripped, field)
    if duration <= timedelta(0):
        raise InvalidRequest(field, "must be a positive duration before expiry")
    return RenewalPoint(before_expiry=duration)


def renewal_time(
    not_before: datetime, not_after: datetime, point: RenewalPoint = RenewalPoint()
) -> datetime:
    """When to renew, cert-manager's precedence: a duration before expiry if it fits inside the
    lifetime, else a fraction of the lifetime, else the default two thirds. Truncated to whole
    seconds because status fields store seconds."""
    lifetime = not_after - not_before
    if point.before_expiry is not None and point.before_expiry < lifetime:
        at = not_after - point.before_expiry
    else:
        fraction = point.fraction if point.fraction is not None else DEFAULT_RENEW_FRACTION
        at = not_before + lifetime * fraction
    return at.replace(microsecond=0)


def with_jitter(at: datetime, not_before: datetime, spread: float, rand: float) -> datetime:
    """Move ``at`` earlier by up to ``spread`` of the time since issuance, so a fleet issued
    together renews apart. ``rand`` in [0, 1) is passed in, keeping this function pure."""
    return at - (at - not_before) * spread * rand


def backoff_delay(
    failures: int, base: float = 1.0, cap: float = 300.0, rand: float | None = None
) -> float:
    """Seconds to wait after ``failures`` consecutive failures: doubling from ``base`` to ``cap``,
    with "equal jitter" (half fixed, half random) so retries spread but never collapse to zero."""
    if failures <= 0:
        return 0.0
    delay = min(cap, base * 2 ** min(failures - 1, 62))
    r = random.random() if rand is None else rand
    return delay / 2 + delay / 2 * r


def is_due(now: datetime, renew_at: datetime) -> bool:
    return now >= renew_at
