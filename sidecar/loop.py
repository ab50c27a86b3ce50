"""The renewal loop: the imperative shell around ``policy.evaluate``. It reads the directory,
asks the policy, and when told to, issues with a new key, publishes the whole set at once and
tells the app. Clock, sleep, issuer and notifier are injected; nothing here decides alone."""

from __future__ import annotations

import gc
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from cacore.backoff import backoff_delay
from cacore.credentials import credential_files
from cacore.edge.client import Issuance
from cacore.edge.files import DATA_LINK, AtomicDirectoryWriter, read_credential_set
from cacore.errors import CAError, CARefused, Throttled
from cacore.keys import KeySpec, private_key_pem
from cacore.renewal import RenewalPolicy
from cacore.request import CertificateRequest
from sidecar.observe import Observed, observe
from sidecar.policy import Decision, evaluate, readiness_problem
from sidecar.settings import Settings
from sidecar.state import State

log = logging.getLogger("sidecar.loop")

WRITE_FAILED = "WriteFailed"
INTERNAL_ERROR = "InternalError"
HEARTBEAT_SECONDS = 10.0
# A replaced credential set stays readable this long, so a reader that resolved ..data just
# before a swap never finds its files deleted under it.
REPLACED_VERSION_GRACE_SECONDS = 5.0

IssueWithNewKey = Callable[[CertificateRequest, KeySpec], Issuance]
Notifier = Callable[[Mapping[str, object]], object]


def release_memory() -> None:
    """Hand the heap freed after an issuance (boto3's parsing, the CA call) back to the OS:
    the process then idles for days, and RSS is what a pod is billed and limited by."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc (e.g. musl): nothing to trim


def utc_now() -> datetime:
    return datetime.now(UTC)


class AttemptFailed(Exception):
    """One failed attempt, already classified: ``reason`` for metrics, ``retryable`` for once."""

    def __init__(
        self, reason: str, message: str, retryable: bool, retry_after: float | None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


class RenewalLoop:
    def __init__(
        self,
        settings: Settings,
        issuer: IssueWithNewKey,
        notifier: Notifier,
        state: State | None = None,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        heartbeat: float = HEARTBEAT_SECONDS,
    ) -> None:
        assert settings.request is not None, "run and once need a request"
        self.settings = settings
        self.request: CertificateRequest = settings.request
        self.issuer = issuer
        self.notifier = notifier
        self.state = state or State()
        self.clock = clock
        self.monotonic = monotonic
        self.rand = rand
        self.heartbeat = heartbeat
        self.writer = AtomicDirectoryWriter(
            settings.output_dir, settings.ownership, grace_seconds=REPLACED_VERSION_GRACE_SECONDS
        )
        self._stale_versions = 0
        self.policy = RenewalPolicy(
            point=settings.renewal_point,
            jitter=settings.jitter,
            min_interval=settings.min_renewal_interval,
        )
        self.failures = 0
        self.retry_at: float | None = None
        self.last_issued_at: datetime | None = None
        self.last_reason: str | None = None
        self._seen_version: str | None = None
        self.outcome = "none"  # of the last step: waiting, issued or failed
        self.last_failure: AttemptFailed | None = None
        self._observed: Observed | None = None

    # --- reading ---------------------------------------------------------------------------

    def observe(self) -> Observed:
        """The directory's facts, re-parsed only when ``..data`` points somewhere new."""
        try:
            version = os.readlink(Path(self.settings.output_dir) / DATA_LINK)
        except OSError:
            version = None
        if self._observed is None or version is None or version != self._seen_version:
            self._observed = observe(
                read_credential_set(Path(self.settings.output_dir)), self.settings.names
            )
            self._seen_version = version
        return self._observed

    def _publish(self, observed: Observed, decision: Decision, now: datetime) -> None:
        problem = readiness_problem(observed, now)
        with self.state.lock:
            self.state.ready = problem is None
            self.state.ready_reason = problem.reason if problem else "Ready"
            self.state.not_after = (
                observed.certificate.not_valid_after_utc if observed.certificate else None
            )
            self.state.next_renewal = decision.renew_at if not decision.issue else now
        if decision.reason != self.last_reason and not decision.issue:
            log.info(
                "certificate up to date",
                extra={
                    "fields": {
                        "reason": decision.reason,
                        "detail": decision.message,
                        "renew_at": decision.renew_at,
                    }
                },
            )
        self.last_reason = decision.reason

    # --- one step --------------------------------------------------------------------------

    def step(self) -> float:
        """Look, decide, maybe act; returns how long to wait before the next step."""
        self.state.beat()
        if self._stale_versions:
            self._stale_versions = self.writer.remove_replaced_versions()
        mono = self.monotonic()
        if self.retry_at is not None and mono < self.retry_at:
            return self.retry_at - mono
        now = self.clock()
        observed = self.observe()
        decision = evaluate(
            observed, self.request, self.settings.key_spec, now, self.policy, self.last_issued_at
        )
        self._publish(observed, decision, now)
        if not decision.issue:
            self.failures, self.retry_at, self.outcome = 0, None, "waiting"
            return decision.seconds_until_due(now)
        try:
            self.issue(decision, observed)
        except AttemptFailed as failure:
            self.outcome = "failed"
            return self._failed(failure, observed)
        self.outcome = "issued"
        return 0.0

    def issue(self, decision: Decision, observed: Observed) -> None:
        log.info(
            "issuing certificate",
            extra={
                "fields": {
                    "reason": decision.reason,
                    "detail": decision.message,
                    "common_name": self.request.common_name,
                }
            },
        )
        self.state.busy_since = self.monotonic()
        try:
            issuance = self._issue_and_write()
        finally:
            self.state.busy_since = None
        issued = issuance.certificate
        self.failures, self.retry_at = 0, None
        self.last_issued_at = self.clock()
        with self.state.lock:
            self.state.issuances[decision.reason] += 1
            self.state.last_issuance_seconds = issuance.seconds
        facts = {
            "serial": str(issued.serial),
            "common_name": issued.common_name,
            "not_before": issued.not_before.isoformat(),
            "not_after": issued.not_after.isoformat(),
            "output_dir": str(self.settings.output_dir),
        }
        log.info(
            "certificate issued",
            extra={
                "fields": {
                    **facts,
                    "reason": decision.reason,
                    "seconds": round(issuance.seconds, 3),
                }
            },
        )
        self.notifier(facts)
        release_memory()

    def _issue_and_write(self) -> Issuance:
        try:
            issuance = self.issuer(self.request, self.settings.key_spec)
        except Throttled as error:
            raise AttemptFailed(error.reason, error.message, True, error.retry_after) from error
        except CARefused as error:
            # The CA's own words, verbatim: they say what to change.
            raise AttemptFailed(error.reason, error.message, False, None) from error
        except CAError as error:
            raise AttemptFailed(error.reason, error.message, error.retryable, None) from error
        except Exception as error:  # a bug must not end renewals while the old set is valid
            log.exception("unexpected error while issuing")
            raise AttemptFailed(
                INTERNAL_ERROR, f"{type(error).__name__}: {error}", True, None
            ) from error
        names = self.settings.names
        files = credential_files(private_key_pem(issuance.key), issuance.certificate, names)
        try:
            self.writer.write(files, names.private())
            self._stale_versions = 1
        except OSError as error:
            what = error.strerror or str(error)
            raise AttemptFailed(
                WRITE_FAILED,
                f"cannot write the credential set to {self.settings.output_dir}: {what}"
                f" ({type(error).__name__} errno {error.errno}); the previous set is unchanged",
                True,
                None,
            ) from error
        return issuance

    def _failed(self, failure: AttemptFailed, observed: Observed) -> float:
        self.failures += 1
        delay = backoff_delay(
            self.failures, self.rand(), self.settings.backoff_base, self.settings.backoff_cap
        )
        if failure.retry_after:
            delay = max(delay, failure.retry_after)
        self.retry_at = self.monotonic() + delay
        with self.state.lock:
            self.state.failures[failure.reason] += 1
        valid_until = observed.certificate.not_valid_after_utc if observed.certificate else None
        log.warning(
            "issuance failed",
            extra={
                "fields": {
                    "reason": failure.reason,
                    "error": failure.message,
                    "attempt": self.failures,
                    "retry_in_seconds": round(delay, 3),
                    "current_valid_until": valid_until,
                }
            },
        )
        self.last_failure = failure
        return delay

    # --- modes -----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Until ``stop`` is set. Wakes at least every heartbeat so /healthz sees it alive and
        a replaced or deleted directory is noticed; otherwise sleeps until the next deadline."""
        while not stop.is_set():
            delay = self.step()
            if delay > 0:
                stop.wait(min(delay, self.heartbeat))

    def once(self, timeout: float, stop: threading.Event | None = None) -> tuple[bool, str]:
        """Issue if needed. Returns (ok, message). Retries transient failures until ``timeout``;
        a permanent one (refused, access denied) ends at once: it needs a human."""
        stop = stop or threading.Event()
        deadline = self.monotonic() + timeout
        while not stop.is_set():
            delay = self.step()
            failure = self.last_failure
            if self.outcome != "failed" or failure is None:
                return True, self.last_reason or "UpToDate"
            if not failure.retryable:
                return False, f"{failure.reason}: {failure.message}"
            if self.monotonic() + delay > deadline:
                return False, f"gave up after {timeout:g} s: {failure.reason}: {failure.message}"
            stop.wait(delay)
        return False, "stopped before a certificate was in place"
