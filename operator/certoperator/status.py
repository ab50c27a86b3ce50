"""The status a ClientCertificate should show, from what reconciliation found: pure functions
that return the whole desired status, and the merge patch that gets there from the current one."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cacore import renewal
from certoperator.api import CONDITION_ISSUING, CONDITION_READY
from certoperator.conditions import (
    Condition,
    format_time,
    get_condition,
    parse_time,
    set_condition,
)
from certoperator.policy import Facts, FailedAttempts

FIELDS = (
    "conditions",
    "notBefore",
    "notAfter",
    "renewalTime",
    "serialNumber",
    "failedIssuanceAttempts",
    "lastFailureTime",
)


def _with_conditions(
    current: Mapping[str, Any], now: datetime, *new: Condition
) -> list[dict[str, object]]:
    conditions = list(current.get("conditions") or [])
    for condition in new:
        conditions = set_condition(conditions, condition, now)
    return conditions


def _certificate_fields(facts: Facts | None) -> dict[str, Any]:
    if facts is None:
        return {}
    return {
        "notBefore": format_time(facts.not_before),
        "notAfter": format_time(facts.not_after),
        "renewalTime": format_time(facts.renewal_time),
        "serialNumber": str(facts.serial),
    }


def ready(
    current: Mapping[str, Any],
    facts: Facts,
    generation: int | None,
    now: datetime,
    reason: str | None = None,
) -> dict[str, Any]:
    """Up to date. ``reason`` is the issuance that just happened; without one, an already
    Ready condition keeps its reason and message, so a restart changes nothing."""
    previous = get_condition(current.get("conditions") or [], CONDITION_READY)
    if reason is None and previous is not None and previous.get("status") == "True":
        reason, message = str(previous.get("reason")), str(previous.get("message"))
    else:
        reason = reason or renewal.READY
        message = "Certificate is up to date and has not expired"
    return {
        "conditions": _with_conditions(
            current,
            now,
            Condition(CONDITION_READY, "True", reason, message, generation),
            Condition(CONDITION_ISSUING, "False", reason, "No issuance in progress", generation),
        ),
        **_certificate_fields(facts),
    }


def failed(
    current: Mapping[str, Any],
    failure: FailedAttempts,
    facts: Facts | None,
    trigger: str,
    retry_at: datetime | None,
    generation: int | None,
    now: datetime,
) -> dict[str, Any]:
    """An issuance failed. Ready stays True only while the Secret's certificate is still valid
    for the current spec (a failed renewal); the CA's own message is shown verbatim."""
    when = f"; retrying at {format_time(retry_at)}" if retry_at is not None else ""
    issuing = Condition(
        CONDITION_ISSUING, "True", trigger, f"{failure.reason}: {failure.message}{when}", generation
    )
    ready_condition = (
        Condition(
            CONDITION_READY,
            "True",
            renewal.READY,
            "Certificate is valid; its renewal is failing",
            generation,
        )
        if facts is not None
        else Condition(CONDITION_READY, "False", failure.reason, failure.message, generation)
    )
    status = {
        "conditions": _with_conditions(current, now, ready_condition, issuing),
        "failedIssuanceAttempts": failure.attempts,
        "lastFailureTime": format_time(failure.last_failure),
    }
    status.update(_certificate_fields(facts))
    if facts is None:
        status.update({"notBefore": None, "notAfter": None, "renewalTime": None})
        status["serialNumber"] = current.get("serialNumber")
    return status


def not_issuable(
    current: Mapping[str, Any], reason: str, message: str, generation: int | None, now: datetime
) -> dict[str, Any]:
    """The spec or the issuer is wrong: nothing can be issued until someone fixes it."""
    return {
        "conditions": _with_conditions(
            current,
            now,
            Condition(CONDITION_READY, "False", reason, message, generation),
            Condition(CONDITION_ISSUING, "False", reason, message, generation),
        ),
    }


def queued(
    current: Mapping[str, Any], trigger: str, message: str, generation: int | None, now: datetime
) -> dict[str, Any]:
    """An issuance waits in line for the CA: Issuing=True says where it stands and for how long
    (a spec change behind a long queue is not silently invisible); Ready is left as it is."""
    return {
        "conditions": _with_conditions(
            current, now, Condition(CONDITION_ISSUING, "True", trigger, message, generation)
        )
    }


def failure_from_status(current: Mapping[str, Any]) -> FailedAttempts | None:
    """The failure state a previous process left in status, so a restart never cuts a backoff
    short. The spec hash it failed for is unknown: the caller assumes the current spec."""
    attempts = current.get("failedIssuanceAttempts")
    last = parse_time(current.get("lastFailureTime"))
    if not attempts or last is None:
        return None
    issuing = get_condition(current.get("conditions") or [], CONDITION_ISSUING) or {}
    message = str(issuing.get("message") or "")
    refused = message.startswith(renewal.REFUSED)
    return FailedAttempts(
        attempts=int(attempts),
        last_failure=last,
        reason=renewal.REFUSED if refused else renewal.FAILED,
        message=message,
        spec_hash="",
        transient=not refused,
    )


def merge_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON merge patch from ``current`` to ``desired`` over the fields this operator owns
    (None when nothing changes). Fields ``desired`` leaves out are kept, not deleted: a failure
    keeps the serial of the last certificate issued."""
    patch = {}
    for name in FIELDS:
        if name in desired and current.get(name) != desired[name]:
            patch[name] = desired[name]
    if "conditions" in desired and "failedIssuanceAttempts" not in desired:
        # Success or a spec problem: the failure counters describe a past that is over.
        for name in ("failedIssuanceAttempts", "lastFailureTime"):
            if current.get(name) is not None and _is_success(desired):
                patch[name] = None
    return patch or None


def _is_success(desired: Mapping[str, Any]) -> bool:
    conditions = desired.get("conditions") or []
    ready_condition = get_condition(conditions, CONDITION_READY)
    issuing = get_condition(conditions, CONDITION_ISSUING)
    return (
        ready_condition is not None
        and ready_condition.get("status") == "True"
        and (issuing is None or issuing.get("status") != "True")
    )
