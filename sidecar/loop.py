"""The renewal loop: the imperative shell around ``policy.evaluate``. It reads the directory,
asks the policy, and when told to, issues with a new key, publishes the whole set at once and
tells the app. Clock, sleep, issuer and notifier are injected; nothing here decides alone."""

from __future__ import annotations

import errno
import gc
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from cacore.backoff import backoff_delay
from cacore.credentials import credential_files
from cacore.edge.files import (
    AtomicDirectoryWriter,
    UnreadableSet,
    fingerprint,
    probe_writable,
    read_credential_set,
    visible_name_problems,
)
from cacore.errors import CAError, CARefused, ConfigurationError, InvalidRequest, Throttled
from cacore.keys import KeySpec, private_key_pem
from cacore.renewal import RenewalPolicy
from cacore.request import CertificateRequest
from cacore.response import Issuance
from sidecar.observe import Observed, observe, unreadable
from sidecar.policy import Decision, evaluate, readiness_problem
from sidecar.settings import Settings, setting_message
from sidecar.state import State

log = logging.getLogger("sidecar.loop")

WRITE_FAILED = "WriteFailed"
INTERNAL_ERROR = "InternalError"
# Errors of the output directory that waiting does not cure (a setting or a volume to fix):
# ``once`` ends at once with the usage code; ``run`` keeps trying, slowly.
_PERMANENT_WRITE_ERRORS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOTDIR,
    errno.EEXIST,
    errno.EISDIR,
    errno.ELOOP,
    errno.ENAMETOOLONG,
}
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
    """One failed attempt, already classified: ``reason`` for metrics, ``retryable`` for once,
    ``usage`` when a setting or the environment must change (``once`` exits 2)."""

    def __init__(
        self,
        reason: str,
        message: str,
        retryable: bool,
        retry_after: float | None,
        usage: bool = False,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.usage = usage


@dataclass(frozen=True)
class Pending:
    """A certificate the CA issued that is not on disk yet: kept in memory and written again
    until the write works. A write failure is never a reason to ask the CA again."""

    issuance: Issuance
    reason: str  # why it was issued
    files: Mapping[str, bytes]


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
        self.outcome = "none"  # of the last step: waiting, issued or failed
        self.last_failure: AttemptFailed | None = None
        self.pending: Pending | None = None
        self._observed: Observed | None = None
        self._fingerprint: tuple[object, ...] | None = None

    # --- reading ---------------------------------------------------------------------------

    def observe(self) -> Observed:
        """The directory's facts, re-read only when something on disk moved (a swap, a deleted
        version folder or file, a visible name removed). A set that cannot be read is a fact
        like any other (``Unreadable``), never an exception."""
        directory = self.settings.output_dir
        mark = fingerprint(directory)
        if self._observed is not None and mark == self._fingerprint:
            return self._observed
        try:
            observed = observe(read_credential_set(directory), self.settings.names)
        except UnreadableSet as error:
            observed = unreadable(str(error))
            log.warning("credential set unreadable", extra={"fields": {"error": str(error)}})
        self._observed, self._fingerprint = observed, mark
        if observed.published and not observed.unreadable:
            self._restore_visible_names()
        return observed

    def _restore_visible_names(self) -> None:
        """An application opens ``/certs/tls.crt``, not the version folder: a visible name that
        was deleted or replaced by hand is put back (no CA call: the set itself is fine)."""
        names = self.settings.names.all()
        problems = visible_name_problems(self.settings.output_dir, names)
        if not problems:
            return
        try:
            self.writer.relink(names)
        except OSError as error:
            log.warning(
                "cannot restore the visible file names",
                extra={"fields": {"problems": problems, "error": str(error)}},
            )
            return
        log.warning("visible file names restored", extra={"fields": {"problems": problems}})

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
        if self.pending is not None:
            return self._write_pending()
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
        self._check_writable()
        self.state.busy_since = self.monotonic()
        try:
            issuance = self._ask_ca()
        finally:
            self.state.busy_since = None
        names = self.settings.names
        files = credential_files(private_key_pem(issuance.key), issuance.certificate, names)
        self.pending = Pending(issuance, decision.reason, files)
        self._write(self.pending)

    def _check_writable(self) -> None:
        """The output must be writable before the CA is asked: a certificate that cannot be
        saved would be lost, and with it the CA's record of a key never used."""
        try:
            probe_writable(self.settings.output_dir)
        except OSError as error:
            permanent = error.errno in _PERMANENT_WRITE_ERRORS
            raise AttemptFailed(
                WRITE_FAILED,
                f"cannot write the credential set to {self.settings.output_dir}: "
                f"{error.strerror or error} ({type(error).__name__} errno {error.errno}); the "
                "previous set is unchanged and the CA was not asked"
                + ("; fix the volume or CERT_SIDECAR_OUTPUT_DIR" if permanent else ""),
                not permanent,
                None,
                usage=permanent,
            ) from error

    def _ask_ca(self) -> Issuance:
        try:
            return self.issuer(self.request, self.settings.key_spec)
        except Throttled as error:
            raise AttemptFailed(error.reason, error.message, True, error.retry_after) from error
        except CARefused as error:
            # The CA's own words (control characters escaped): they say what to change.
            raise AttemptFailed(error.reason, error.message, False, None) from error
        except ConfigurationError as error:
            raise AttemptFailed(
                error.reason, setting_message(error), False, None, usage=True
            ) from error
        except InvalidRequest as error:
            raise AttemptFailed(error.reason, error.message, False, None, usage=True) from error
        except CAError as error:
            raise AttemptFailed(error.reason, error.message, error.retryable, None) from error
        except Exception as error:  # a bug must not end renewals while the old set is valid
            log.exception("unexpected error while issuing")
            raise AttemptFailed(
                INTERNAL_ERROR, f"{type(error).__name__}: {error}", True, None
            ) from error

    def _write(self, pending: Pending) -> None:
        """Write the pending set; on success it is no longer pending and the app is told."""
        self.state.writing = True
        try:
            self.writer.write(pending.files, self.settings.names.private())
        except OSError as error:
            serial = pending.issuance.certificate.serial
            raise AttemptFailed(
                WRITE_FAILED,
                f"cannot write the credential set to {self.settings.output_dir}: "
                f"{error.strerror or error} ({type(error).__name__} errno {error.errno}); the "
                f"previous set is unchanged; the new certificate (serial {serial}) is kept in "
                "memory and written again, the CA is not asked again",
                True,
                None,
            ) from error
        finally:
            self.state.writing = False
        self.pending = None
        self._stale_versions = 1
        self._issued(pending)

    def _write_pending(self) -> float:
        """Retry the write of a set already issued. One that stopped being valid meanwhile is
        dropped (the next step issues a new one)."""
        assert self.pending is not None
        certificate = self.pending.issuance.certificate
        if self.clock() >= certificate.not_after:
            log.warning(
                "dropping an issued certificate that expired before it could be written",
                extra={"fields": {"serial": str(certificate.serial)}},
            )
            self.pending = None
            return 0.0
        try:
            self._write(self.pending)
        except AttemptFailed as failure:
            self.outcome = "failed"
            return self._failed(failure, self._observed)
        self.outcome = "issued"
        return 0.0

    def _issued(self, pending: Pending) -> None:
        issuance = pending.issuance
        issued = issuance.certificate
        self.failures, self.retry_at = 0, None
        self.last_issued_at = self.clock()
        with self.state.lock:
            self.state.issuances[pending.reason] += 1
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
                    "reason": pending.reason,
                    "seconds": round(issuance.seconds, 3),
                }
            },
        )
        self.notifier(facts)

    def _failed(self, failure: AttemptFailed, observed: Observed | None) -> float:
        self.failures += 1
        delay = backoff_delay(
            self.failures, self.rand(), self.settings.backoff_base, self.settings.backoff_cap
        )
        if failure.retry_after:
            delay = max(delay, failure.retry_after)
        self.retry_at = self.monotonic() + delay
        with self.state.lock:
            self.state.failures[failure.reason] += 1
        certificate = observed.certificate if observed else None
        valid_until = certificate.not_valid_after_utc if certificate else None
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
        a replaced or deleted directory is noticed; otherwise sleeps until the next deadline.
        An unexpected error in a step is logged and retried with backoff: a bug or an odd state
        on disk must not turn into a crash loop while the old set is still valid."""
        while not stop.is_set():
            try:
                delay = self.step()
            except Exception as error:
                log.exception("unexpected error in the renewal loop; trying again")
                delay = self._failed(
                    AttemptFailed(INTERNAL_ERROR, f"{type(error).__name__}: {error}", True, None),
                    self._observed,
                )
                self._observed = None  # read everything again next time
            else:
                if self.outcome == "issued":
                    release_memory()  # the process idles now (``once`` ends instead)
            gc.enable()  # off while the process started (sidecar/start.py)
            if delay > 0:
                stop.wait(min(delay, self.heartbeat))

    def once(self, timeout: float, stop: threading.Event | None = None) -> tuple[bool, str]:
        """Issue if needed. Returns (ok, message). Retries transient failures until ``timeout``;
        a permanent one (refused, access denied, bad settings) ends at once: it needs a human.
        ``last_failure`` says which it was."""
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
            gc.enable()  # retrying may take long; off while the process started (sidecar/start.py)
            stop.wait(delay)
        return False, "stopped before a certificate was in place"
