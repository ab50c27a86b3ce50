"""What the loop knows and the health server shows; the Prometheus text is rendered by hand from
it (``prometheus_client`` costs 0.17 s of start time and memory for five series)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class State:
    heartbeat: float = field(default_factory=time.monotonic)  # monotonic seconds
    busy_since: float | None = None  # set while talking to the CA
    writing: bool = False  # set while a credential set is being written
    not_after: datetime | None = None
    next_renewal: datetime | None = None
    ready: bool = False
    ready_reason: str = "DoesNotExist"
    issuances: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    last_issuance_seconds: float | None = None
    loop_done: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def beat(self) -> None:
        self.heartbeat = time.monotonic()

    def alive(self, now: float, max_silence: float, max_busy: float) -> bool:
        if self.loop_done:
            return False
        if self.busy_since is not None:
            return now - self.busy_since <= max_busy
        return now - self.heartbeat <= max_silence


_HEADER = "cert_sidecar_"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_metrics(state: State) -> str:
    """The Prometheus text exposition format, version 0.0.4."""
    lines: list[str] = []

    def series(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {_HEADER}{name} {help_text}")
        lines.append(f"# TYPE {_HEADER}{name} {kind}")
        for labels, value in samples:
            lines.append(f"{_HEADER}{name}{labels} {value!r}")

    with state.lock:
        not_after = state.not_after
        next_renewal = state.next_renewal
        issuances = dict(state.issuances)
        failures = dict(state.failures)
        last = state.last_issuance_seconds
        ready = state.ready
    if not_after is not None:
        series(
            "certificate_not_after_timestamp_seconds",
            "gauge",
            "Expiry of the certificate on disk, seconds since the epoch.",
            [("", float(not_after.timestamp()))],
        )
    if next_renewal is not None:
        series(
            "next_renewal_timestamp_seconds",
            "gauge",
            "When the next renewal is due, seconds since the epoch.",
            [("", float(next_renewal.timestamp()))],
        )
    series(
        "issuances_total",
        "counter",
        "Certificates issued and written, by the reason for issuing.",
        [(f'{{reason="{_escape(r)}"}}', float(n)) for r, n in sorted(issuances.items())],
    )
    series(
        "failures_total",
        "counter",
        "Failed issuance attempts, by error reason.",
        [(f'{{reason="{_escape(r)}"}}', float(n)) for r, n in sorted(failures.items())],
    )
    if last is not None:
        series(
            "last_issuance_duration_seconds",
            "gauge",
            "Seconds the last successful issuance took (key, CSR, CA call, verification).",
            [("", float(last))],
        )
    series(
        "ready", "gauge", "1 when a valid certificate is on disk.", [("", 1.0 if ready else 0.0)]
    )
    return "\n".join(lines) + "\n"
