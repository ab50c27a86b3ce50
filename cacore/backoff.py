"""How long to wait after failures: a pure function of a count and a random number."""

from __future__ import annotations


def backoff_delay(failures: int, rand: float, base: float = 1.0, cap: float = 300.0) -> float:
    """Seconds to wait after ``failures`` consecutive failures: doubling from ``base`` to ``cap``,
    with "equal jitter" (half fixed, half random) so retries spread but never collapse to zero.
    ``rand`` in [0, 1] comes from the caller (a random source at the edge, or a stable fraction),
    keeping this function pure."""
    if failures <= 0:
        return 0.0
    delay = min(cap, base * 2 ** min(failures - 1, 62))
    return delay / 2 + delay / 2 * rand
