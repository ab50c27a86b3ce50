"""Status conditions, Kubernetes style: one pure function decides how a list changes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Condition:
    type: str
    status: str  # "True", "False" or "Unknown"
    reason: str
    message: str
    observed_generation: int | None = None


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z and whole seconds, as Kubernetes writes times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object) -> datetime | None:
    """The inverse of ``format_time``; None for anything that is not such a time."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def set_condition(
    conditions: Sequence[Mapping[str, object]], new: Condition, now: datetime
) -> list[dict[str, object]]:
    """``conditions`` with ``new`` replacing the one of its type. ``lastTransitionTime`` moves to
    ``now`` only when the status changes, so it tells how long the current state has held."""
    previous = next((c for c in conditions if c.get("type") == new.type), None)
    transition = (
        previous.get("lastTransitionTime")
        if previous is not None and previous.get("status") == new.status
        else None
    )
    entry: dict[str, object] = {
        "type": new.type,
        "status": new.status,
        "reason": new.reason,
        "message": new.message,
        "lastTransitionTime": transition or format_time(now),
    }
    if new.observed_generation is not None:
        entry["observedGeneration"] = new.observed_generation
    others = [dict(c) for c in conditions if c.get("type") != new.type]
    return sorted([*others, entry], key=lambda c: str(c.get("type")))


def get_condition(conditions: Sequence[Mapping[str, object]], type_: str) -> Mapping | None:
    return next((c for c in conditions if c.get("type") == type_), None)
