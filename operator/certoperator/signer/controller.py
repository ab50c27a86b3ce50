"""One CSR at a time: gather, decide (``approval``), approve or deny, sign through the CA, publish
the trust bundle, report. The only signer module that combines the pure parts with the API and
the CA; the kopf handlers only hand CSRs in.

Exactly once. Every CA call is preceded by a marker, the ``clientcerts.dev/Signing`` condition
with the attempt number, written at the resourceVersion the decision was made on (for a CSR the
operator approves, in the same write as the approval). Only the writer whose marker lands may call
the CA, so two operators never both sign one CSR; a restarted operator finds the marker and knows
a call may have reached the CA. It then sends the same CSR once more: if the earlier call never
arrived the CA signs now, and if it did, the CA's key-reuse guard refuses ("Private key has
already been used for a certificate") and the CSR fails with that text, so one key is never
certified twice. A certificate the CA returned is kept in memory until it is recorded, and is
never asked for again. ``status.certificate`` itself can be set only once (the API server refuses
to change it).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from cacore.backoff import backoff_delay
from cacore.csr import load_csr
from cacore.errors import (
    CAError,
    CARefused,
    ConfigurationError,
    InvalidRequest,
    InvalidResponse,
    Throttled,
)
from cacore.kubecsr import lifetime_days
from certoperator.capool import CAPool
from certoperator.conditions import parse_time
from certoperator.policy import RetryPolicy
from certoperator.signer.approval import APPROVE, DENY, ApprovalInput, Decision, evaluate
from certoperator.signer.csrview import CsrView, view
from certoperator.signer.kubeapi import KubeApiError, SignerApi
from certoperator.signer.names import (
    APPROVED,
    AWAITING_APPROVAL,
    CA_INVOKED,
    CA_REFUSED,
    DENIED,
    INVALID_REQUEST,
    INVALID_RESPONSE,
    ISSUED,
    SIGNING,
)
from certoperator.signer.outbox import Outbox
from certoperator.signer.policyspec import Policy, policies_for
from certoperator.signer.publisher import TrustPublisher
from certoperator.signer.settings import SignerCA
from certoperator.signer.signing import (
    ca_request,
    condition,
    failed,
    marker,
    marker_issued,
    marker_unavailable,
    replace_conditions,
    signed_status,
)

log = logging.getLogger("certoperator.signer")

RECORD_ATTEMPTS = 5
CONFLICT_ATTEMPTS = 3
FINISHED_MEMORY = 10000
STOP_FLUSH_SECONDS = 2.0


def _remember(memory: dict[str, Any], uid: str, value: Any) -> None:
    """Set ``memory[uid]``, forgetting the oldest entries past ``FINISHED_MEMORY``."""
    memory[uid] = value
    while len(memory) > FINISHED_MEMORY:
        del memory[next(iter(memory))]


class Conflict(Exception):
    """The CSR changed since it was read: decide again from a fresh read."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Signer:
    def __init__(
        self,
        api: SignerApi,
        ca_pool: CAPool,
        retry: RetryPolicy,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], datetime] = _utc_now,
        rand: Callable[[], float] = random.random,
        claim_seconds: float | None = None,
    ) -> None:
        self.api, self.ca_pool, self.retry = api, ca_pool, retry
        self.claim_seconds = claim_seconds
        self.clock, self.rand = clock, rand
        self.ca: Callable[[str], SignerCA | None] = lambda _name: None
        self.policies: Callable[[], Sequence[Policy]] = tuple
        self._locks: dict[str, list[Any]] = {}  # uid -> [lock, users]: one CSR at a time
        self._failures: dict[str, int] = {}
        self._not_before: dict[str, float] = {}
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._unwritten: dict[str, tuple[bytes, dict[str, str]]] = {}
        self._finished: dict[str, None] = {}  # recent uids this process completed (bounded)
        self._written: dict[str, str] = {}  # uid -> resourceVersion of our last write (bounded)
        self._background: set[asyncio.Task[None]] = set()
        # Whether more CSRs wait (the feed says): events wait for a quiet moment meanwhile.
        self.busy: Callable[[], bool] = lambda: False
        self.outbox = Outbox(lambda: self.busy())
        self.trust = TrustPublisher(api, self._spawn)
        self.decisions = Counter(
            "clientcert_csr_decisions",
            "CertificateSigningRequests approved, denied or left pending, by signer and reason",
            ["signer", "outcome", "reason"],
            registry=registry,
        )
        self.signed = Counter(
            "clientcert_csr_signed",
            "CertificateSigningRequests signed, or failed, by signer and outcome",
            ["signer", "outcome"],
            registry=registry,
        )

    # --- entry points --------------------------------------------------------------------------

    async def handle(self, body: Mapping[str, Any]) -> None:
        await self.handle_view(view(body))

    def wants(self, csr: CsrView) -> bool:
        """False for news the signer already has: the answer to its own last write of this CSR
        (the watch shows each write again), or a CSR it finished."""
        return self._written.get(csr.uid) != csr.resource_version and csr.uid not in self._finished

    async def handle_view(self, csr: CsrView) -> None:
        """Bring one CSR forward as far as it can go now. Never raises: unexpected errors are
        logged and retried with backoff."""
        entry = self._locks.setdefault(csr.uid, [asyncio.Lock(), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                await self._handle_locked(csr)
        finally:
            entry[1] -= 1
            if entry[1] == 0 and self._locks.get(csr.uid) is entry:
                del self._locks[csr.uid]

    async def _handle_locked(self, csr: CsrView) -> None:
        try:
            for _ in range(CONFLICT_ATTEMPTS):
                try:
                    await self._step(csr)
                    return
                except Conflict:
                    fresh = await self.api.get_csr(csr.name)
                    if fresh is None:
                        return
                    csr = view(fresh)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the API server or a bug: try again later
            delay = self._backoff(csr.uid)
            log.warning(
                "CSR handling failed",
                exc_info=error,
                extra={"fields": {"csr": csr.name, "retry_in": delay}},
            )
            self._schedule(csr, delay)

    async def rescan(self, signers: Sequence[str]) -> None:
        """Handle every CSR of these signers again (a LambdaCA or a policy changed)."""
        for signer in signers:
            for body in await self.api.list_csrs(signer):
                if not view(body).done:
                    await self.handle(body)

    async def prepare(self, lambdaca: str) -> None:
        """Make the CA client of an opted-in LambdaCA ready before CSRs arrive."""
        ca = self.ca(lambdaca)
        if ca is None:
            return
        try:
            await self.ca_pool.prepare(ca.name, ca.config())
        except Exception as error:  # reported again, with the CSR, at the first real call
            log.info(
                "CA client not prepared",
                extra={"fields": {"lambdaca": lambdaca, "error": str(error)}},
            )

    def close(self) -> None:
        for task in [*self._timers.values(), *self._background]:
            task.cancel()

    async def aclose(self) -> None:
        """Stop, posting the events still waiting (briefly: the operator is stopping)."""
        self.close()
        await self.outbox.flush(STOP_FLUSH_SECONDS)

    # --- one step ------------------------------------------------------------------------------

    async def _step(self, csr: CsrView) -> None:
        if csr.done or csr.uid in self._finished:
            return
        ca = self.ca(csr.lambdaca or "")
        if ca is None:
            return  # another signer's, not opted in (any more), or finished (a late event)
        if csr.uid in self._unwritten:
            await self._record(csr, *self._unwritten[csr.uid])
            return
        claimed = False
        if not csr.decided:
            decision = evaluate(await self._gather(csr, ca))
            self.decisions.labels(csr.signer_name, decision.outcome, decision.reason).inc()
            if decision.outcome == DENY:
                await self._deny(csr, decision)
                return
            if decision.outcome != APPROVE:
                await self._await_approval(csr, decision)
                return
            csr = await self._approve(csr, decision, ca)
            claimed = True
        if csr.approved:
            await self._sign(csr, ca, claimed)

    async def _gather(self, csr: CsrView, ca: SignerCA) -> ApprovalInput:
        policies = policies_for(csr.signer_name, self.policies())
        who = csr.requester
        ns_labels = sa_labels = None
        if who.namespace and who.service_account:
            if any(p.requesters.namespace_selector is not None for p in policies):
                ns_labels = await self.api.namespace_labels(who.namespace)
            if any(p.requesters.service_account_selector is not None for p in policies):
                sa_labels = await self.api.service_account_labels(
                    who.namespace, who.service_account
                )
        return ApprovalInput(
            csr=csr,
            policies=policies,
            default_lifetime_days=ca.default_lifetime_days,
            ca_max_lifetime_days=ca.max_lifetime_days,
            namespace_labels=ns_labels,
            service_account_labels=sa_labels,
        )

    # --- approval ------------------------------------------------------------------------------

    def _body(self, csr: CsrView, conditions: list[dict[str, Any]]) -> dict[str, Any]:
        """The CSR to write back with new conditions (a shallow copy: only status changes)."""
        return {**csr.raw, "status": {**(csr.raw.get("status") or {}), "conditions": conditions}}

    async def _write(self, csr: CsrView, body: Mapping[str, Any], approval: bool) -> CsrView:
        try:
            if approval:
                return self._wrote(await self.api.update_approval(body))
            return self._wrote(await self.api.update_status(body))
        except KubeApiError as error:
            if error.status == 409:
                raise Conflict() from error
            raise

    async def _approve(self, csr: CsrView, decision: Decision, ca: SignerCA) -> CsrView:
        """Approve and claim the first CA call in one write."""
        conditions = replace_conditions(
            csr.conditions,
            condition(APPROVED, "True", decision.reason, decision.message),
            marker(csr.attempts + 1, ca.name, self.clock()),
            drop=(AWAITING_APPROVAL,),
        )
        written = await self._write(csr, self._body(csr, conditions), approval=True)
        log.info(
            "CSR approved",
            extra={
                "fields": {"csr": csr.name, "policy": decision.policy, "reason": decision.reason}
            },
        )
        self._event(csr.raw, decision.reason, decision.message)
        return written

    async def _deny(self, csr: CsrView, decision: Decision) -> None:
        conditions = replace_conditions(
            csr.conditions,
            condition(DENIED, "True", decision.reason, decision.message),
            drop=(AWAITING_APPROVAL,),
        )
        await self._write(csr, self._body(csr, conditions), approval=True)
        log.warning(
            "CSR denied",
            extra={
                "fields": {
                    "csr": csr.name,
                    "requester": csr.requester.username,
                    "reason": decision.reason,
                    "detail": decision.message,
                }
            },
        )
        self._event(csr.raw, decision.reason, decision.message, warning=True)
        self._pod_event(csr, "CertificateDenied", f"CSR {csr.name} denied: {decision.message}")

    async def _await_approval(self, csr: CsrView, decision: Decision) -> None:
        """Leave it pending, and say why, once."""
        current = csr.awaiting_approval
        if current is not None and current.get("message") == decision.message:
            return
        note = condition(AWAITING_APPROVAL, "True", decision.reason, decision.message)
        await self._write(csr, self._body(csr, replace_conditions(csr.conditions, note)), False)
        log.info("CSR awaits manual approval", extra={"fields": {"csr": csr.name}})
        self._event(csr.raw, decision.reason, decision.message)
        self._pod_event(csr, "CertificatePending", f"CSR {csr.name}: {decision.message}")

    # --- signing -------------------------------------------------------------------------------

    async def _sign(self, csr: CsrView, ca: SignerCA, claimed: bool) -> None:
        if not claimed and (
            csr.uid in self._timers or self._not_before.get(csr.uid, 0.0) > time.monotonic()
        ):
            # Backing off: the timer brings it back, with a fresh read. An event that arrives
            # late (the answer to our own marker write) or a rescan must not start it early.
            return
        try:
            config = ca.config()
        except ConfigurationError as error:
            log.warning(
                "LambdaCA unusable", extra={"fields": {"csr": csr.name, "error": str(error)}}
            )
            self._schedule(csr, self.retry.cap)
            return
        attempt = csr.attempts if claimed else csr.attempts + 1
        if not claimed:
            wait = self._claim_wait(csr, config.read_timeout + config.connect_timeout + 30)
            if wait > 0:
                log.info(
                    "CSR claimed by an earlier CA call; waiting for it to time out",
                    extra={"fields": {"csr": csr.name, "seconds": round(wait, 1)}},
                )
                self._schedule(csr, wait)
                return
            conditions = replace_conditions(
                csr.conditions, marker(attempt, ca.name, self.clock()), drop=(AWAITING_APPROVAL,)
            )
            csr = await self._write(csr, self._body(csr, conditions), approval=False)
        try:
            # Judged at approval already (``load_csr`` remembers it: no second parse or
            # signature check here, nor in the CA client); a CSR approved by hand is judged now.
            parsed = load_csr(csr.request_pem, "spec.request")
            days = lifetime_days(csr.expiration_seconds, ca.default_lifetime_days)
            request = ca_request(parsed, csr.usages, min(days, ca.max_lifetime_days))
            issued = await self.ca_pool.issue_csr(ca.name, config, request, csr.request_pem)
        except InvalidRequest as error:
            await self._fail(csr, attempt, INVALID_REQUEST, error.message)
        except CARefused as error:
            await self._fail(csr, attempt, CA_REFUSED, error.message)
        except InvalidResponse as error:
            await self._fail(csr, attempt, INVALID_RESPONSE, error.message)
        except CAError as error:
            await self._unavailable(csr, attempt, error)
        else:
            done = marker_issued(attempt, issued.serial, issued.not_after)
            self._unwritten[csr.uid] = (issued.chain_pem, done)
            # The bundle first: a Pod that sees its certificate finds the CA certificates too.
            await self.trust.publish(ca.name, issued, csr.requester.namespace)
            await self._record(csr, issued.chain_pem, done)

    async def _record(self, csr: CsrView, chain_pem: bytes, done: dict[str, str]) -> None:
        """Write the certificate. A conflict re-reads and writes again; anything else keeps the
        certificate in memory and retries later, never asking the CA again."""
        for _ in range(RECORD_ATTEMPTS):
            status = {
                **(csr.raw.get("status") or {}),
                **signed_status(csr.conditions, chain_pem, done),
            }
            body = {**csr.raw, "status": status}
            try:
                self._wrote(await self.api.update_status(body))
                break
            except KubeApiError as error:
                if error.status != 409:
                    delay = self._backoff(csr.uid)
                    log.warning(
                        "certificate not recorded yet",
                        extra={"fields": {"csr": csr.name, "error": str(error), "retry_in": delay}},
                    )
                    self._schedule(csr, delay)
                    return
            fresh = await self.api.get_csr(csr.name)
            if fresh is None or view(fresh).done:
                break
            csr = view(fresh)
        else:
            self._schedule(csr, self._backoff(csr.uid))
            return
        self._unwritten.pop(csr.uid, None)
        self.signed.labels(csr.signer_name, ISSUED).inc()
        message = done["message"].split(": ", 1)[-1]
        log.info("CSR signed", extra={"fields": {"csr": csr.name, "detail": message}})
        self._event(csr.raw, ISSUED, f"{message} (signer {csr.signer_name})")
        self._forget(csr.uid)

    async def _fail(self, csr: CsrView, attempt: int, reason: str, message: str) -> None:
        """A final answer: the Failed condition, with the CA's own words when it refused."""
        closed = condition(SIGNING, "False", reason, f"attempt {attempt}: failed, see Failed")
        for _ in range(CONFLICT_ATTEMPTS):
            conditions = replace_conditions(csr.conditions, failed(reason, message), closed)
            try:
                await self._write(csr, self._body(csr, conditions), approval=False)
                break
            except Conflict:
                fresh = await self.api.get_csr(csr.name)
                if fresh is None or view(fresh).done:
                    return
                csr = view(fresh)
        self.signed.labels(csr.signer_name, reason).inc()
        note = ""
        if reason == CA_REFUSED and attempt > 1:
            note = (
                f" (attempt {attempt}: an earlier attempt may have been signed before the operator "
                "could record it; the CA certifies a key once, so ask again with a new key and CSR)"
            )
        log.warning(
            "CSR failed", extra={"fields": {"csr": csr.name, "reason": reason, "error": message}}
        )
        self._event(csr.raw, reason, message + note, warning=True)
        self._pod_event(csr, "CertificateFailed", f"CSR {csr.name} failed: {message}{note}")
        self._forget(csr.uid)

    async def _unavailable(self, csr: CsrView, attempt: int, error: CAError) -> None:
        delay = self._backoff(csr.uid)
        if isinstance(error, Throttled) and error.retry_after:
            delay = max(delay, error.retry_after)
        retry_at = self.clock() + timedelta(seconds=delay)
        text = f"{error.reason}: {error.message}"
        note = marker_unavailable(attempt, text, retry_at)
        try:
            await self._write(csr, self._body(csr, replace_conditions(csr.conditions, note)), False)
        except (Conflict, KubeApiError) as write_error:
            log.info(
                "marker not updated", extra={"fields": {"csr": csr.name, "error": str(write_error)}}
            )
        log.warning(
            "CA call failed; will retry",
            extra={"fields": {"csr": csr.name, "error": text, "retry_in": round(delay, 3)}},
        )
        self._event(csr.raw, error.reason, f"{text}; trying again in {delay:.0f} s", warning=True)
        self._schedule(csr, delay)

    def _claim_wait(self, csr: CsrView, call_seconds: float) -> float:
        """Seconds until a CA call announced by the marker can no longer be running. A marker of
        another process (or of this one before a restart) is a lease on the CSR: nobody calls the
        CA again while that call may still be waiting for its answer."""
        marker_now = csr.condition(SIGNING)
        if not marker_now or marker_now.get("status") != "True":
            return 0.0
        if marker_now.get("reason") != CA_INVOKED:
            return 0.0  # the attempt ended (CAUnavailable): nothing is in flight
        updated = parse_time(marker_now.get("lastUpdateTime"))
        if updated is None:
            return 0.0
        lease = self.claim_seconds if self.claim_seconds is not None else call_seconds
        return max(0.0, (updated + timedelta(seconds=lease) - self.clock()).total_seconds())

    # --- bookkeeping ---------------------------------------------------------------------------

    def _backoff(self, uid: str) -> float:
        self._failures[uid] = self._failures.get(uid, 0) + 1
        return backoff_delay(self._failures[uid], self.rand(), self.retry.base, self.retry.cap)

    def _schedule(self, csr: CsrView, delay: float) -> None:
        self._not_before[csr.uid] = time.monotonic() + delay
        previous = self._timers.pop(csr.uid, None)
        if previous is not None:
            previous.cancel()

        async def later() -> None:
            await asyncio.sleep(delay)
            # This timer stays registered until the retry itself runs: meanwhile events and
            # rescans leave the CSR alone (``_sign``), so a retry never starts twice or early.
            try:
                fresh = await self.api.get_csr(csr.name)
            except Exception as error:  # the API server, or RBAC: the retry is kept, later
                retry = self._backoff(csr.uid)
                log.warning(
                    "CSR not read for its retry",
                    extra={"fields": {"csr": csr.name, "error": str(error), "retry_in": retry}},
                )
                self._timers.pop(csr.uid, None)
                self._schedule(csr, retry)
                return
            self._timers.pop(csr.uid, None)
            self._not_before.pop(csr.uid, None)
            if fresh is not None and view(fresh).uid == csr.uid:
                await self.handle(fresh)

        self._timers[csr.uid] = asyncio.create_task(later())

    def _wrote(self, written: Mapping[str, Any]) -> CsrView:
        csr = view(written)
        _remember(self._written, csr.uid, csr.resource_version)
        return csr

    def _forget(self, uid: str) -> None:
        _remember(self._finished, uid, None)
        self._failures.pop(uid, None)
        self._not_before.pop(uid, None)
        timer = self._timers.pop(uid, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _event(
        self, involved: Mapping[str, Any], reason: str, message: str, warning: bool = False
    ) -> None:
        """Posted later (``outbox``): an event must never slow or fail a decision."""

        async def post() -> None:
            await self.api.post_object_event(
                involved, "CertificateSigningRequest", reason, message, warning
            )

        self.outbox.add(post)

    def _pod_event(self, csr: CsrView, reason: str, message: str) -> None:
        """The same news on the requesting Pod, where its team looks (``kubectl describe pod``)."""
        who = csr.requester
        if not (who.pod_name and who.pod_uid and who.namespace):
            return
        pod = {
            "apiVersion": "v1",
            "metadata": {"name": who.pod_name, "namespace": who.namespace, "uid": who.pod_uid},
        }

        async def post() -> None:
            await self.api.post_object_event(pod, "Pod", reason, message, warning=True)

        self.outbox.add(post)
