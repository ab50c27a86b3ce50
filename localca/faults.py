"""Faults injected on demand: the next invocations misbehave the way AWS or the Lambda can."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any

KINDS = ("delay", "throttle", "crash", "refuse", "unavailable")
DEFAULT_REFUSAL = "Private key has already been used for a certificate"
UNTIL_CLEARED = -1


class FaultError(ValueError):
    """A fault description is unusable; the message names the field and the fix."""


@dataclass(frozen=True)
class Fault:
    kind: str
    count: int = 1
    seconds: float = 0.0
    message: str = DEFAULT_REFUSAL


def parse(raw: Any) -> Fault:
    if not isinstance(raw, dict):
        raise FaultError('fault must be a JSON object such as {"kind": "throttle"}')
    kind = raw.get("kind")
    if kind not in KINDS:
        raise FaultError(f"kind {kind!r} is unknown: use one of {', '.join(KINDS)}")
    count = raw.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or (count < 1 and count != -1):
        raise FaultError(f"count {count!r} is invalid: use a positive integer, or -1 until cleared")
    seconds = raw.get("seconds", 0.0)
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 0 <= seconds <= 600:
        raise FaultError(f"seconds {seconds!r} is invalid: use a number from 0 to 600")
    if kind == "delay" and "seconds" not in raw:
        raise FaultError('seconds is required for a delay fault: give e.g. {"seconds": 2}')
    message = raw.get("message", DEFAULT_REFUSAL)
    if not isinstance(message, str) or not message:
        raise FaultError("message must be a non-empty string")
    return Fault(kind=kind, count=count, seconds=float(seconds), message=message)


class FaultPlan:
    """Queued faults, consumed in order, one per invocation; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[Fault] = []
        self._cleared = threading.Condition(self._lock)
        self._clearings = 0

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._queue.append(fault)

    def clear(self) -> None:
        """Drop the queue and end the delays being slept now: a test that clears its faults
        must not leave an invocation that answers (and issues) during the next test."""
        with self._lock:
            self._queue.clear()
            self._clearings += 1
            self._cleared.notify_all()

    def sleep(self, seconds: float) -> None:
        """A delay fault's sleep, cut short by ``clear()``."""
        with self._lock:
            clearings = self._clearings
            self._cleared.wait_for(lambda: self._clearings != clearings, timeout=seconds)

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [vars(f).copy() for f in self._queue]

    def take(self) -> Fault | None:
        with self._lock:
            if not self._queue:
                return None
            head = self._queue[0]
            if head.count == UNTIL_CLEARED:
                return head
            if head.count <= 1:
                self._queue.pop(0)
            else:
                self._queue[0] = replace(head, count=head.count - 1)
            return head
