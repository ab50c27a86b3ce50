"""The controller: what the watches tell it, one pass per ClientCertificate, and the issuances.

The only module that combines the pure parts with the API and the CA. Two queues drive it
(``scheduler``): passes (gather, decide, report; never a CA call, so they are never held up by a
slow CA) and issuances (wait for a CA slot, check right before the call that the object still
wants it, call, write the Secret, report). A certificate the CA issued is never thrown away: if
its Secret cannot be written it waits in ``pending`` and a later pass writes it. API outages are
waited out by ``outage``, not by every pass on its own.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from cacore import renewal
from cacore.config import CAConfig
from cacore.errors import CAError, CARefused, ConfigurationError, InvalidRequest
from cacore.renewal import Verdict
from certoperator import status
from certoperator.api import LABEL_CERTIFICATE
from certoperator.capool import CAPool
from certoperator.conditions import format_time
from certoperator.informer import Informer
from certoperator.issuers import check_lifetime, resolve_issuer
from certoperator.kube import KubeApi, KubeApiError
from certoperator.metrics import Metrics
from certoperator.outage import Outage
from certoperator.pending import PendingSecret, PendingSecrets
from certoperator.policy import (
    Facts,
    FailedAttempts,
    Input,
    SecretFacts,
    evaluate,
    facts_for,
    may_issue,
    retry_at,
    retry_rand,
    template_drift,
)
from certoperator.scheduler import HIGH, LOW, DueQueue, IssueQueue, Job
from certoperator.secrets import Written, not_older, secret_body, secret_facts
from certoperator.settings import OperatorSettings
from certoperator.spec import CertificateSpec, parse_spec, spec_hash

PASS_WORKERS = 16
# After a CA call, writing the Secret, the status and the event overlaps the next calls: more
# workers than CA slots, while the pool's slots still bound the calls themselves.
ISSUE_WORKERS_PER_SLOT = 2
# What we wrote stands for the Secret until its watch event arrives (the index still shows the
# Secret as it was), for at most this long (after a relist that event may never come).
WRITE_ECHO_SECONDS = 60.0
DISCARDED = "deleted while its certificate was being issued; the certificate is discarded"
KEPT = "the Secret could not be written; the certificate is kept and the write retried"
Key = tuple[str, str]
log = logging.getLogger("certoperator")


@dataclass
class Context:
    """Operator-wide state and clients, kept in kopf's memo (``memo.ctx``). Other handler
    modules may use ``settings``, ``kube``, ``ca_pool`` (the one bound on CA calls) and
    ``metrics``; the rest belongs to the ClientCertificate controller."""

    settings: OperatorSettings
    kube: KubeApi
    ca_pool: CAPool
    metrics: Metrics
    pending: PendingSecrets = field(default_factory=PendingSecrets)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    rand: Callable[[], float] = random.random
    paused: Callable[[], bool] = lambda: False  # kopf's peering pause (kopfcompat)
    resumed: Callable[[], Awaitable[None]] = field(default=lambda: _never())  # after a pause


async def _never() -> None:
    await asyncio.Event().wait()


@dataclass
class CertObject:
    """What the controller keeps of one ClientCertificate from the watch."""

    uid: str
    generation: int | None
    spec: Mapping[str, Any]
    status: dict[str, Any]
    deleting: bool = False


@dataclass(frozen=True)
class IssueWork:
    """What an issuance job carries from the pass that queued it."""

    uid: str
    generation: int | None
    cert: CertificateSpec
    issuer: str
    config: CAConfig
    digest: str
    verdict: Verdict
    still_valid: Facts | None


class Controller:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.objects: dict[Key, CertObject] = {}
        self.failures: dict[Key, FailedAttempts] = {}
        self.secret_names: dict[Key, str] = {}  # for the metrics series of each object
        self.lambdacas: Mapping[str, Any] = {}  # kopf's index, given by the handlers
        # Our Secrets (label-selected), inspected once per version; and the namespaces' phases.
        # Cluster-wide, or per namespace when the operator serves named namespaces only.
        named = [ns for ns in ctx.settings.namespaces if not any(c in ns for c in "*?[!")]
        exact = bool(named) and len(named) == len(ctx.settings.namespaces)
        scope: list[str | None] = list(named) if exact else [None]
        self.secrets: dict[str | None, Informer[SecretFacts]] = {
            ns: Informer(
                ctx.kube, f"/api/v1/namespaces/{ns}/secrets" if ns else "/api/v1/secrets",
                secret_facts, self.secret_changed, label_selector=LABEL_CERTIFICATE,
            )
            for ns in scope
        }  # fmt: skip
        self.namespaces: list[Informer[str | None]] = [
            Informer(
                ctx.kube, "/api/v1/namespaces", namespace_phase, self.namespace_changed,
                field_selector=f"metadata.name={ns}" if ns else None,
            )
            for ns in scope
        ]  # fmt: skip
        # Each Secret this process wrote, until the watch shows that write.
        self.written: dict[tuple[str, str], Written] = {}
        self.passes: DueQueue[Key] = DueQueue(self.reconcile, PASS_WORKERS)
        self.issuing: IssueQueue[Key] = IssueQueue(
            self.issue, ctx.settings.max_concurrent * ISSUE_WORKERS_PER_SLOT
        )
        self.outage: Outage[Key] = Outage(ctx.kube.ready, self.passes.schedule)
        self.stopping = False
        self._resumer: asyncio.Task[None] | None = None

    # --- what the watches say ---------------------------------------------------------------

    def start(self) -> None:
        for informer in self._informers:
            informer.start()
        self.passes.start()
        self.issuing.start()
        self.outage.start()
        self._resumer = asyncio.create_task(self._after_pauses(), name="resume after a pause")

    async def _after_pauses(self) -> None:
        """Passes that came due while kopf had the operator paused were skipped: after each
        pause, every object is looked at again."""
        while True:
            await self.ctx.resumed()
            for key in list(self.objects):
                self.passes.schedule(key)

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        tasks = [*self.passes.tasks, *self.issuing.tasks]
        optional = [
            self.outage.task,
            self._resumer,
            *(informer.task for informer in self._informers),
        ]
        return tasks + [task for task in optional if task is not None]

    @property
    def _informers(self) -> list[Informer[Any]]:
        return [*self.secrets.values(), *self.namespaces]

    def _secrets_of(self, namespace: str) -> Informer[SecretFacts]:
        return self.secrets.get(namespace) or self.secrets[None]

    async def synced(self) -> None:
        """Until our Secrets and the namespaces are listed: before that, a Secret not yet seen
        could pass for a missing one."""
        for informer in self._informers:
            await informer.synced.wait()

    def observe(self, body: Mapping[str, Any], deleted: bool) -> None:
        """A watch event of a ClientCertificate. A new object or a new generation (a spec
        change) needs a pass; status writes (ours) do not."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        if deleted or meta.get("deletionTimestamp"):
            self.forget(key)
            return
        known = self.objects.get(key)
        uid, generation = meta["uid"], meta.get("generation")
        spec, current = dict(body.get("spec") or {}), dict(body.get("status") or {})
        if known is not None and known.uid == uid:
            # Updated in place: an issuance under way holds this object.
            changed = known.generation != generation
            known.generation, known.spec, known.status = generation, spec, current
            if changed:
                self.passes.schedule(key)
            return
        if known is not None:  # deleted and created again under the same name
            self.forget(key)
        self.objects[key] = CertObject(uid=uid, generation=generation, spec=spec, status=current)
        self.passes.schedule(key)

    def forget(self, key: Key) -> None:
        """The object is gone or going: no pass, no CA call, no event, no metric series."""
        obj = self.objects.pop(key, None)
        if obj is not None:
            obj.deleting = True
        self.passes.forget(key)
        self.issuing.withdraw(key)
        self.failures.pop(key, None)
        self.ctx.pending.drop(key)
        secret_name = self.secret_names.pop(key, None)
        if secret_name is not None:
            self.ctx.metrics.forget(key[0], key[1], secret_name)

    def secret_changed(
        self, key: tuple[str, str], old: SecretFacts | None, new: SecretFacts | None
    ) -> None:
        """A Secret of ours was created, changed or deleted: unless this is the echo of our own
        write, the ClientCertificate it belongs to looks."""
        ours = self.written.get(key)
        if ours is not None and new is not None:
            seen = self._secrets_of(key[0]).version(key)
            if seen == ours.version:
                del self.written[key]
                return  # the echo of our own write
            if not_older(seen, ours.version):
                del self.written[key]  # someone else wrote after us: the watch knows best
        for facts in (old, new):
            owner = (facts.labels if facts is not None else {}).get(LABEL_CERTIFICATE)
            if owner and (key[0], owner) in self.objects:
                self.passes.schedule((key[0], owner))

    def terminating(self, namespace: str) -> bool:
        """The namespace is being deleted: its Secrets go first and new ones are refused, so a
        certificate issued now would be wasted."""
        return any(i.items.get(("", namespace)) == "Terminating" for i in self.namespaces)

    def namespace_changed(self, key: tuple[str, str], old: str | None, new: str | None) -> None:
        """A namespace began terminating: withdraw its queued issuances at once (what is in
        flight finishes; nothing more starts)."""
        namespace = key[1]
        if new != "Terminating" or old == "Terminating":
            return
        withdrawn = self.issuing.withdraw_where(lambda key: key[0] == namespace)
        if withdrawn:
            fields = {"namespace": namespace, "withdrawn": withdrawn}
            log.info("namespace terminating; its queued issuances are withdrawn",
                     extra={"fields": fields})  # fmt: skip

    def issuer_changed(self) -> None:
        """A LambdaCA appeared or changed: objects that could not be issued try again now."""
        for key, obj in self.objects.items():
            ready = status.get_condition(obj.status.get("conditions") or [], "Ready") or {}
            if ready.get("status") != "True":
                self.passes.schedule(key)

    # --- one pass ---------------------------------------------------------------------------

    def _log(self, key: Key, level: int, message: str, **fields: object) -> None:
        log.log(level, message, extra={"fields": {"namespace": key[0], "name": key[1], **fields}})

    async def reconcile(self, key: Key) -> float | None:
        """One pass; seconds until the next one is due without an event (None: not before an
        event, a finished issuance or the end of an outage)."""
        obj = self.objects.get(key)
        if obj is None or self.stopping or self.ctx.paused():
            return None  # paused: every object is looked at again when it resumes
        await self.synced()
        try:
            delay = await self._pass(key, obj)
        except KubeApiError as error:
            if error.status == 404:
                self.forget(key)
                return None
            if error.transient:
                self.outage.park(key, error)
                return None
            self._log(key, logging.WARNING, "reconciliation failed", error=str(error))
            return self.ctx.settings.retry.cap
        self.outage.succeeded()
        return delay

    async def _report(self, key: Key, obj: CertObject, desired: Mapping[str, Any]) -> bool:
        """Patch status towards ``desired``; False when the object turned out to be gone."""
        patch = status.merge_patch(obj.status, desired)
        if patch is None:
            return True
        found = await self.ctx.kube.patch_status(key[0], key[1], patch)
        if found is None:
            self.forget(key)
            return False
        merged = {**obj.status, **patch}
        obj.status = {k: v for k, v in merged.items() if v is not None}
        return True

    def _metrics(self, key: Key, secret_name: str, ready: str, facts: Facts | None) -> None:
        if key not in self.objects:
            return  # never a series for an object that is gone
        previous = self.secret_names.get(key)
        if previous is not None and previous != secret_name:
            self.ctx.metrics.forget(key[0], key[1], previous)  # secretName changed
        self.secret_names[key] = secret_name
        self.ctx.metrics.certificate(
            key[0],
            key[1],
            secret_name,
            ready,
            facts.not_after.timestamp() if facts else None,
            facts.renewal_time.timestamp() if facts else None,
        )

    async def _event(
        self, key: Key, obj: CertObject, reason: str, message: str, warning: bool
    ) -> None:
        if self.objects.get(key) is not obj or obj.deleting:
            return  # never an event for an object that is gone
        try:
            await self.ctx.kube.post_event(key[0], key[1], obj.uid, warning, reason, message)
        except KubeApiError as error:  # an event is worth a try, never a retry
            self._log(key, logging.DEBUG, "event not posted", reason=reason, error=str(error))

    def _until(self, moment: datetime, now: datetime) -> float:
        seconds = (moment - now).total_seconds()
        return min(max(seconds, 0.0) + 0.05, self.ctx.settings.resync_seconds)

    def _secret(self, namespace: str, name: str) -> SecretFacts | None:
        """The Secret as the watch last showed it, or as we wrote it while the watch has not
        shown that write yet. Never a read of its own."""
        ours = self.written.get((namespace, name))
        if ours is not None and time.monotonic() - ours.at < WRITE_ECHO_SECONDS:
            return ours.facts
        self.written.pop((namespace, name), None)
        return self._secrets_of(namespace).items.get((namespace, name))

    async def _pass(self, key: Key, obj: CertObject) -> float | None:
        settings, now = self.ctx.settings, self.ctx.clock()
        try:
            cert = parse_spec(obj.spec)
            issuer, config = resolve_issuer(cert, settings, self.lambdacas)
            check_lifetime(cert, issuer, config)
        except (InvalidRequest, ConfigurationError) as error:
            return await self._not_issuable(key, obj, error, now)

        digest = spec_hash(cert, issuer)
        running = self.issuing.running(key) or self.issuing.queued(key)
        if running is not None:
            work = running.detail
            assert isinstance(work, IssueWork)
            if work.digest == digest and work.uid == obj.uid:
                return None  # the issuance under way reports, and schedules the next pass
            self.issuing.withdraw(key)  # queued for a spec that is no longer current

        secret = self._secret(key[0], cert.secret_name)
        inp = Input(
            owner_uid=obj.uid,
            spec_hash=digest,
            renewal=cert.renewal,
            secret=secret,
            previously_issued=bool(obj.status.get("serialNumber")),
            now=now,
            jitter=settings.jitter,
        )
        verdict, facts = evaluate(inp)
        if verdict is None:
            assert facts is not None and secret is not None
            self.failures.pop(key, None)
            self.ctx.pending.drop(key)  # the Secret is good: whatever waited is superseded
            if template_drift(secret, cert.labels, cert.annotations):
                await self.ctx.kube.patch_secret_metadata(
                    key[0], cert.secret_name, cert.labels, cert.annotations
                )
            desired = status.ready(obj.status, facts, obj.generation, now)
            if not await self._report(key, obj, desired):
                return None
            self._metrics(key, cert.secret_name, "True", facts)
            return self._until(facts.renewal_time, now)

        pending = self.ctx.pending.get(key)
        if pending is not None:
            if pending.usable_for(obj.uid, digest, now):
                return await self._deliver(key, obj, cert, pending)
            self.ctx.pending.drop(key)

        # A renewal that fails leaves a certificate that is still good: Ready stays True.
        still_valid = evaluate(inp, chain=())[1] if verdict.reason == renewal.RENEWING else None
        failure = self.failures.get(key) or status.failure_from_status(obj.status)
        if failure is not None and not failure.spec_hash:
            failure = replace(failure, spec_hash=digest)  # from status: the current spec's
        if failure is not None:
            self.failures[key] = failure
        wait_until = may_issue(failure, digest, now, settings.retry, retry_rand(failure))
        if wait_until is not None:
            return self._until(wait_until, now)
        if self.terminating(key[0]):
            # Namespace deletion removes Secrets before this resource: not a reason to issue.
            return None

        work = IssueWork(
            obj.uid, obj.generation, cert, issuer, config, digest, verdict, still_valid
        )
        priority = LOW if still_valid is not None else HIGH
        _, ahead = self.issuing.submit(key, priority, work)
        # Said in status where the status would otherwise mislead: an object already Ready whose
        # spec changed (or whose Secret broke) waits behind a queue it cannot start from. A new
        # object's empty status says "not yet" by itself; a renewal's Ready=True stays true.
        if priority == HIGH and obj.status.get("conditions") and ahead >= settings.max_concurrent:
            message = (
                f"Waiting for the CA: {ahead} issuances ahead, at most "
                f"{settings.max_concurrent} at once ({verdict.message})"
            )
            desired = status.queued(obj.status, verdict.reason, message, obj.generation, now)
            await self._report(key, obj, desired)
        return None

    async def _not_issuable(
        self, key: Key, obj: CertObject, error: InvalidRequest | ConfigurationError, now: datetime
    ) -> float | None:
        reason = (
            renewal.ISSUER_NOT_FOUND
            if isinstance(error, InvalidRequest) and error.field == "spec.issuerRef.name"
            else renewal.INVALID_SPEC
        )
        self._log(key, logging.WARNING, "cannot issue", reason=reason, error=error.message)
        desired = status.not_issuable(obj.status, reason, error.message, obj.generation, now)
        if not await self._report(key, obj, desired):
            return None
        secret_name = obj.spec.get("secretName")
        if isinstance(secret_name, str):
            self._metrics(key, secret_name, "False", None)
        # A LambdaCA appearing or a spec fix arrives as an event and wakes the object at once.
        settings = self.ctx.settings
        return settings.retry.cap if reason == renewal.ISSUER_NOT_FOUND else settings.resync_seconds

    # --- one issuance -----------------------------------------------------------------------

    async def _still_wanted(self, key: Key, work: IssueWork) -> bool:
        """Right before the CA call, after the wait for a slot: is the object still there, not
        being deleted, with the spec this issuance is for, in a namespace that is not going
        away? Asked of the API server itself, not of the watch, which may lag."""
        obj = self.objects.get(key)
        if obj is None or obj.deleting or obj.uid != work.uid or self.stopping:
            return False
        if self.ctx.paused():
            return False
        try:
            if self.terminating(key[0]):
                return False
            fresh = await self.ctx.kube.get_certificate(*key)
            gone = (
                fresh is None
                or fresh["metadata"].get("uid") != work.uid
                or bool(fresh["metadata"].get("deletionTimestamp"))
            )
            if gone:
                self.forget(key)
                return False
            assert fresh is not None
            if fresh["metadata"].get("generation") != work.generation:
                self.passes.schedule(key)  # the spec moved on: decide again
                return False
        except KubeApiError as error:
            if not error.transient:
                raise
            self.outage.park(key, error)  # unverifiable now: never spend a CA call blind
            return False
        self.outage.succeeded()
        return True

    async def issue(self, job: Job[Key]) -> None:
        key, work = job.key, job.detail
        assert isinstance(work, IssueWork)
        cert, settings = work.cert, self.ctx.settings
        self._log(
            key, logging.INFO, "issuing", reason=work.verdict.reason, detail=work.verdict.message
        )
        try:
            issuance = await self.ctx.ca_pool.issue(
                work.issuer,
                work.config,
                cert.request,
                cert.key,
                precheck=lambda: self._still_wanted(key, work),
            )
        except CAError as error:
            await self._failed(key, work, error)
            return
        except KubeApiError as error:  # from the precheck: not transient, so not waitable
            self._log(key, logging.WARNING, "reconciliation failed", error=str(error))
            self.passes.schedule(key, settings.retry.cap)
            return
        if issuance is None:
            return  # not wanted any more; whatever changed has scheduled what comes next

        now = self.ctx.clock()
        obj = self.objects.get(key)
        if obj is None or obj.deleting or obj.uid != work.uid:
            serial = str(issuance.certificate.serial)
            self._log(key, logging.INFO, DISCARDED, serial=serial)
            return
        meta = {"namespace": key[0], "name": key[1], "uid": work.uid}
        entry = PendingSecret(
            namespace=key[0],
            name=key[1],
            uid=work.uid,
            spec_hash=work.digest,
            trigger=work.verdict.reason,
            issuer=work.issuer,
            secret=secret_body(meta, cert, issuance, work.digest, work.issuer, now),
            serial=issuance.certificate.serial,
            not_before=issuance.certificate.not_before,
            not_after=issuance.certificate.not_after,
            issued_at=now,
        )
        # Stashed before the write (write-ahead): a process killed between the CA's answer and
        # the Secret's write leaves it to the next one instead of an issued key lost for good.
        self.ctx.pending.keep(entry)
        delay = await self._deliver(key, obj, cert, entry)
        if delay is not None:
            self.passes.schedule(key, delay)

    async def _deliver(
        self, key: Key, obj: CertObject, cert: CertificateSpec, entry: PendingSecret
    ) -> float | None:
        """Write an issued certificate's Secret and report it. If the API fails, the
        certificate stays pending (stashed too) and the next pass tries the write again."""
        try:
            written = await self.ctx.kube.put_secret(key[0], entry.secret)
        except KubeApiError as error:
            self.ctx.pending.keep(entry)
            self._log(key, logging.WARNING, KEPT, serial=str(entry.serial), error=str(error))
            if error.transient:
                self.outage.park(key, error)
                return None
            return self.ctx.settings.retry.base
        self.outage.succeeded()
        self.ctx.pending.drop(key)
        version = str(written.get("metadata", {}).get("resourceVersion", ""))
        seen = self._secrets_of(key[0]).version((key[0], cert.secret_name))
        if not not_older(seen, version):
            # The watch has not shown this write yet: until it does, it stands for the Secret.
            self.written[(key[0], cert.secret_name)] = Written(
                version, secret_facts(written), time.monotonic()
            )
        self.failures.pop(key, None)
        now = self.ctx.clock()
        facts = facts_for(
            entry.serial,
            entry.not_before,
            entry.not_after,
            cert.renewal,
            self.ctx.settings.jitter,
            entry.issued_at,
        )
        outcome = renewal.success_reason(entry.trigger)
        self._log(
            key,
            logging.INFO,
            "issued",
            reason=outcome,
            serial=str(entry.serial),
            trigger=entry.trigger,
        )
        desired = status.ready(obj.status, facts, obj.generation, now, reason=outcome)
        try:
            if not await self._report(key, obj, desired):
                return None
        except KubeApiError as error:
            if error.transient:
                self.outage.park(key, error)  # the Secret is in place; status follows
                return None
            raise
        message = (
            f"Certificate {entry.serial} issued into Secret {cert.secret_name} "
            f"({entry.trigger}), valid until {format_time(facts.not_after)}"
        )
        await self._event(key, obj, outcome, message, warning=False)
        self._metrics(key, cert.secret_name, "True", facts)
        if facts.renewal_time <= now:
            # renewBefore as long as the lifetime: renewing at once would loop on the CA.
            self._log(
                key,
                logging.WARNING,
                "certificate due for renewal as soon as issued; check renewBefore",
                renewal_time=format_time(facts.renewal_time),
            )
            return self.ctx.settings.retry.cap
        return self._until(facts.renewal_time, now)

    async def _failed(self, key: Key, work: IssueWork, error: CAError) -> None:
        obj = self.objects.get(key)
        if obj is None or obj.deleting or obj.uid != work.uid:
            return
        now, settings = self.ctx.clock(), self.ctx.settings
        previous = self.failures.get(key)
        same_spec = previous is not None and previous.spec_hash in (work.digest, "")
        refused = isinstance(error, CARefused)
        failure = FailedAttempts(
            attempts=(previous.attempts + 1) if previous is not None and same_spec else 1,
            last_failure=now,
            reason=renewal.REFUSED if refused else renewal.FAILED,
            message=error.message if refused else f"{error.reason}: {error.message}",
            spec_hash=work.digest,
            transient=error.retryable and not refused,
        )
        self.failures[key] = failure
        again = retry_at(failure, settings.retry, retry_rand(failure))
        self._log(
            key,
            logging.WARNING,
            "issuance failed",
            reason=failure.reason,
            error_reason=error.reason,
            error=error.message,
            attempts=failure.attempts,
            retry_at=format_time(again),
        )
        desired = status.failed(
            obj.status, failure, work.still_valid, work.verdict.reason, again, obj.generation, now
        )
        try:
            if not await self._report(key, obj, desired):
                return
        except KubeApiError as api_error:
            if not api_error.transient:
                raise
            self.outage.park(key, api_error)
            return
        await self._event(key, obj, failure.reason, failure.message, warning=True)
        still = work.still_valid
        self._metrics(key, work.cert.secret_name, "True" if still else "False", still)
        self.passes.schedule(key, self._until(again, now))

    # --- the end ----------------------------------------------------------------------------

    async def shutdown(self, timeout: float) -> None:
        """Stop taking work; let the CA calls in flight finish and their Secrets be written (or
        stashed), within ``timeout``. Queued issuances are left for the next process."""
        if self.stopping:
            return
        self.stopping = True
        self.issuing.close()
        finished = await self.issuing.drain(timeout)
        self.ctx.pending.stash_all()  # issued, not written yet: for the next process
        if not finished:
            log.warning("stopping with CA calls still in flight; their certificates are lost",
                        extra={"fields": {"in_flight": self.issuing.in_flight}})  # fmt: skip
        for task in self.tasks:
            task.cancel()


def namespace_phase(namespace: Mapping[str, Any]) -> str | None:
    phase = (namespace.get("status") or {}).get("phase")
    return str(phase) if phase else None
