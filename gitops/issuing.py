"""``issue``: which entries still need a certificate (a pure plan per entry, ``plan_entry``),
then asking the CA for those, one at a time, carrying on past failures so one bad entry does not
block the rest.

"Already issued" is read from the CA's DynamoDB table: a certificate for the entry's common name
whose public key is the CSR's. The table is the CA's own record, so the answer holds for a fresh
CI clone, for a second pipeline, and for certificates the CA's Step Function issued itself; a
state file in the tree would need the pipeline to push commits after every merge. Without the
table the CA's key-reuse refusal still makes reruns harmless, and is reported as such.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cacore.edge.client import CAClient, Invoker
from cacore.errors import CAError, CARefused, ConfigurationError
from cacore.request import DEFAULT_MAX_LIFETIME_DAYS
from gitops.records import IssuedRecord, with_public_key
from gitops.schema import to_request
from gitops.validation import CheckedEntry

# Closed vocabulary of outcomes, shown in the summary table and the JSON output.
ISSUED = "issued"
ALREADY_ISSUED = "already-issued"
WOULD_ISSUE = "would-issue"
EXPIRED = "expired"  # issued once with this key, expired, and the CA would refuse the key again
REVOKED = "revoked"  # issued once with this key and revoked: never certified again
FAILED = "failed"
STATUSES = (ISSUED, WOULD_ISSUE, ALREADY_ISSUED, EXPIRED, REVOKED, FAILED)

SEND, SKIP = "send", "skip"
_KEY_REUSED = "Private key has already been used"


@dataclass(frozen=True)
class EntryPlan:
    action: str  # SEND or SKIP
    status: str  # the outcome when skipped
    detail: str
    record: IssuedRecord | None = None


@dataclass(frozen=True)
class Outcome:
    index: int
    common_name: str
    csr_file: str
    status: str
    serial: str | None
    not_after: str | None
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "common_name": self.common_name,
            "csr_file": self.csr_file,
            "status": self.status,
            "serial": self.serial,
            "not_after": self.not_after,
            "detail": self.detail,
        }


def plan_entry(
    entry: CheckedEntry,
    records: list[IssuedRecord] | None,
    now: datetime,
    revoked_serials: set[str],
) -> EntryPlan:
    """What to do with one checked entry given the CA's records for its name (None: no table)."""
    force = bool(entry.entry.get("force_issue"))
    if records is None:
        if force:
            return EntryPlan(
                SKIP,
                FAILED,
                "force_issue bypasses the CA's key-reuse guard, so without --table every rerun "
                "would issue again; pass --table (or --project) to issue it",
            )
        return EntryPlan(SEND, WOULD_ISSUE, "no table given: the CA's key-reuse guard decides")
    matches = with_public_key(records, entry.public_key)
    if not matches:
        return EntryPlan(SEND, WOULD_ISSUE, "no certificate for this CSR's key yet")
    latest = matches[0]
    state = latest.state(now, revoked_serials)
    if state in ("valid", "not-yet-valid"):
        return EntryPlan(SKIP, ALREADY_ISSUED, f"certificate is {state}", latest)
    if state == "revoked":
        return EntryPlan(
            SKIP,
            REVOKED,
            "a revoked key is never certified again: ask the partner for a new CSR",
            latest,
        )
    if force:
        return EntryPlan(
            SEND, WOULD_ISSUE, f"serial {latest.serial} expired; force_issue renews it"
        )
    return EntryPlan(
        SKIP,
        EXPIRED,
        "the CA refuses a key twice: ask the partner for a new CSR, or set force_issue to "
        "renew with the same key",
        latest,
    )


def _outcome(entry: CheckedEntry, status: str, detail: str, **facts: str | None) -> Outcome:
    return Outcome(
        index=entry.index,
        common_name=entry.common_name,
        csr_file=str(entry.entry["csr_file"]),
        status=status,
        serial=facts.get("serial"),
        not_after=facts.get("not_after"),
        detail=detail,
    )


def run(
    entries: list[CheckedEntry],
    records_for: Callable[[str], list[IssuedRecord]] | None,
    invoker: Invoker | None,
    now: datetime,
    revoked_serials: set[str],
    dry_run: bool,
    max_lifetime_days: int = DEFAULT_MAX_LIFETIME_DAYS,
) -> list[Outcome]:
    """Decide for every entry, then (unless ``dry_run``) issue what needs issuing."""
    outcomes = []
    cache: dict[str, list[IssuedRecord]] = {}
    for entry in entries:
        records = None
        if records_for is not None:
            if entry.common_name not in cache:
                cache[entry.common_name] = records_for(entry.common_name)
            records = cache[entry.common_name]
        decision = plan_entry(entry, records, now, revoked_serials)
        if decision.action == SKIP or dry_run or invoker is None:
            record = decision.record
            facts = {"serial": record.serial, "not_after": record.expires} if record else {}
            outcomes.append(_outcome(entry, decision.status, decision.detail, **facts))
            continue
        outcomes.append(_issue(entry, invoker, max_lifetime_days))
        cache.pop(entry.common_name, None)  # the table may have changed for this name
    return outcomes


def _issue(entry: CheckedEntry, invoker: Invoker, max_lifetime_days: int) -> Outcome:
    try:
        # The CA has recorded what it issued: shown with its dates, never refused for them.
        client = CAClient(invoker, max_lifetime_days=max_lifetime_days, now=lambda: None)
        issued = client.issue_csr(to_request(entry.entry), entry.csr_pem)
    except CARefused as error:
        if _KEY_REUSED in error.message:
            detail = f"CA refused: {error.message} (issued before; pass --table to see its serial)"
            return _outcome(entry, ALREADY_ISSUED, detail)
        return _outcome(entry, FAILED, f"CA refused: {error.message}")
    except ConfigurationError:
        raise  # no credentials, a role that cannot be assumed: every other entry would fail too
    except CAError as error:
        return _outcome(entry, FAILED, f"{error.reason}: {error}")
    not_after = issued.not_after.strftime("%Y-%m-%d %H:%M:%S")
    return _outcome(entry, ISSUED, "issued now", serial=str(issued.serial), not_after=not_after)
