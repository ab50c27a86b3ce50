"""One reconciliation pass for one ClientCertificate: gather, decide, act, report.

The only module that combines the pure parts with the API and the CA. It returns when to look
again; the kopf daemon in ``handlers`` owns the loop and the waiting.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import kopf

from cacore import renewal
from cacore.config import CAConfig
from cacore.credentials import credential_files
from cacore.edge.client import Issuance
from cacore.errors import CAError, CARefused, ConfigurationError, InvalidRequest
from cacore.keys import private_key_pem
from cacore.renewal import stable_fraction
from certoperator import status
from certoperator.api import (
    ANNOTATION_CERTIFICATE,
    ANNOTATION_ISSUED_AT,
    ANNOTATION_ISSUER,
    ANNOTATION_SERIAL,
    ANNOTATION_SPEC_HASH,
    API_VERSION,
    CERT_KIND,
    LABEL_CERTIFICATE,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    SECRET_TYPE,
)
from certoperator.capool import CAPool
from certoperator.conditions import format_time, parse_time
from certoperator.kube import KubeApi, secret_view
from certoperator.metrics import Metrics
from certoperator.policy import (
    Facts,
    FailedAttempts,
    Input,
    Verdict,
    evaluate,
    issued_facts,
    may_issue,
    retry_at,
    template_drift,
)
from certoperator.settings import OperatorSettings, ca_config_for
from certoperator.spec import CertificateSpec, parse_spec, spec_hash

DEFAULT_ISSUER_LABEL = "(default)"
Key = tuple[str, str]


@dataclass
class Context:
    """Operator-wide state shared by every object's daemon (kept in kopf's memo)."""

    settings: OperatorSettings
    kube: KubeApi
    ca_pool: CAPool
    metrics: Metrics
    wakers: dict[Key, asyncio.Event] = field(default_factory=dict)
    # resourceVersion of each Secret this process wrote last: its own watch event needs no pass.
    written: dict[Key, str] = field(default_factory=dict)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    rand: Callable[[], float] = random.random  # spreads retries after unexpected errors

    def wake(self, key: Key) -> None:
        event = self.wakers.get(key)
        if event is not None:
            event.set()


@dataclass
class ObjectState:
    """What one daemon remembers between passes; rebuilt from status after a restart."""

    failure: FailedAttempts | None = None
    last_status: dict[str, Any] | None = None

    @classmethod
    def from_status(cls, current: Mapping[str, Any]) -> ObjectState:
        attempts = current.get("failedIssuanceAttempts")
        last = parse_time(current.get("lastFailureTime"))
        if not attempts or last is None:
            return cls()
        issuing: Mapping[str, Any] = next(
            (c for c in current.get("conditions") or [] if c.get("type") == "Issuing"), {}
        )
        message = str(issuing.get("message") or "")
        # The spec hash of the failed attempt is unknown after a restart: assume the current
        # spec, so a restart never cuts a backoff short.
        return cls(
            failure=FailedAttempts(
                attempts=int(attempts),
                last_failure=last,
                reason=renewal.REFUSED if message.startswith(renewal.REFUSED) else renewal.FAILED,
                message=message,
                spec_hash="",
                transient=not message.startswith(renewal.REFUSED),
            )
        )


def resolve_issuer(
    cert: CertificateSpec, settings: OperatorSettings, lambdacas: Mapping[str, Any]
) -> tuple[str, CAConfig]:
    """The issuer's name and CA settings; ``InvalidRequest`` naming the field when none fits."""
    name = cert.issuer or settings.default_issuer
    if name is None:
        if settings.default_ca is None:
            raise InvalidRequest(
                "spec.issuerRef.name",
                "is empty and the operator has no default issuer; name a LambdaCA",
            )
        return DEFAULT_ISSUER_LABEL, settings.default_ca
    found = lambdacas.get(name)
    if not found:
        raise InvalidRequest("spec.issuerRef.name", f"no LambdaCA named {name!r} exists")
    # A kopf index holds a store of values per key; a plain mapping (unit tests) the spec itself.
    spec = found if isinstance(found, Mapping) else next(iter(found))
    return name, ca_config_for(name, spec)


def check_lifetime(cert: CertificateSpec, issuer: str, config: CAConfig) -> None:
    """The spec's lifetime against its issuer's cap (the CA's MAX_CERT_LIFETIME)."""
    cap = config.max_lifetime_days
    if cert.request.lifetime_days > cap:
        raise InvalidRequest(
            "spec.lifetimeDays",
            f"is {cert.request.lifetime_days} days; the issuer {issuer} allows 1 to {cap} "
            "(its maxLifetimeDays, the CA's MAX_CERT_LIFETIME)",
        )


def secret_body(
    body: Mapping[str, Any],
    cert: CertificateSpec,
    issuance: Issuance,
    digest: str,
    issuer: str,
    issued_at: datetime,
) -> dict[str, Any]:
    meta = body["metadata"]
    files = credential_files(private_key_pem(issuance.key), issuance.certificate)
    labels = {**cert.labels, LABEL_CERTIFICATE: meta["name"], LABEL_MANAGED_BY: MANAGED_BY}
    annotations = {
        **cert.annotations,
        ANNOTATION_CERTIFICATE: meta["name"],
        ANNOTATION_SPEC_HASH: digest,
        ANNOTATION_ISSUER: issuer,
        ANNOTATION_SERIAL: str(issuance.certificate.serial),
        ANNOTATION_ISSUED_AT: format_time(issued_at),
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SECRET_TYPE,
        "metadata": {
            "name": cert.secret_name,
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": CERT_KIND,
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                }
            ],
        },
        "data": {name: base64.b64encode(content).decode() for name, content in files.items()},
    }


def _retry_rand(failure: FailedAttempts | None) -> float:
    """The jitter of a failure's retry, fixed by the failure itself, so every pass computes the
    same retry time (and a restart as well)."""
    if failure is None:
        return 0.0
    return stable_fraction(failure.attempts, format_time(failure.last_failure))


class Reconciler:
    """Reconciles one object; one instance per daemon, so passes never overlap."""

    def __init__(
        self, ctx: Context, body: kopf.Body, logger: logging.Logger | logging.LoggerAdapter
    ) -> None:
        self.ctx, self.body, self.logger = ctx, body, logger
        self.state = ObjectState.from_status(body.get("status") or {})
        meta = body["metadata"]
        self.namespace, self.name = meta["namespace"], meta["name"]
        self.secret_name: str | None = None

    def _log(self, level: int, message: str, **fields: object) -> None:
        fields = {"namespace": self.namespace, "name": self.name, **fields}
        self.logger.log(level, message, extra={"fields": fields})

    async def _report(self, desired: Mapping[str, Any]) -> None:
        current = self.state.last_status
        if current is None:
            current = dict(self.body.get("status") or {})
        patch = status.merge_patch(current, desired)
        if patch is None:
            return
        await self.ctx.kube.patch_status(self.namespace, self.name, patch)
        merged = {**current, **patch}
        self.state.last_status = {k: v for k, v in merged.items() if v is not None}

    def _metrics(self, ready: str, facts: Facts | None) -> None:
        if self.secret_name is None:
            return
        self.ctx.metrics.certificate(
            self.namespace,
            self.name,
            self.secret_name,
            ready,
            facts.not_after.timestamp() if facts else None,
            facts.renewal_time.timestamp() if facts else None,
        )

    def forget(self) -> None:
        if self.secret_name is not None:
            self.ctx.metrics.forget(self.namespace, self.name, self.secret_name)

    async def run(self, lambdacas: Mapping[str, Any]) -> float:
        """One pass; returns seconds until the next one is due without any event."""
        settings, now = self.ctx.settings, self.ctx.clock()
        generation = self.body["metadata"].get("generation")
        # What this daemon last wrote is newer than the live body until the watch catches up.
        current = self.state.last_status
        if current is None:
            current = dict(self.body.get("status") or {})
        try:
            cert = parse_spec(self.body.get("spec") or {})
            self.secret_name = cert.secret_name
            issuer, config = resolve_issuer(cert, settings, lambdacas)
            check_lifetime(cert, issuer, config)
        except (InvalidRequest, ConfigurationError) as error:
            reason = (
                renewal.ISSUER_NOT_FOUND
                if isinstance(error, InvalidRequest) and error.field == "spec.issuerRef.name"
                else renewal.INVALID_SPEC
            )
            self._log(logging.WARNING, "cannot issue", reason=reason, error=error.message)
            await self._report(status.not_issuable(current, reason, error.message, generation, now))
            self._metrics("False", None)
            # An issuer may appear later; a spec fix arrives as an event and wakes us at once.
            return (
                settings.retry.cap
                if reason == renewal.ISSUER_NOT_FOUND
                else settings.resync_seconds
            )

        digest = spec_hash(cert, issuer)
        secret = secret_view(await self.ctx.kube.get_secret(self.namespace, cert.secret_name))
        inp = Input(
            owner_uid=self.body["metadata"]["uid"],
            spec_hash=digest,
            renewal=cert.renewal,
            secret=secret,
            previously_issued=bool(current.get("serialNumber")),
            now=now,
            jitter=settings.jitter,
        )
        verdict, facts = evaluate(inp)
        if verdict is None:
            assert facts is not None and secret is not None
            self.state.failure = None
            if template_drift(secret, cert.labels, cert.annotations):
                await self.ctx.kube.patch_secret_metadata(
                    self.namespace, cert.secret_name, cert.labels, cert.annotations
                )
            await self._report(status.ready(current, facts, generation, now))
            self._metrics("True", facts)
            return self._until(facts.renewal_time, now)

        # A renewal that fails leaves a certificate that is still good: Ready stays True.
        still_valid = evaluate(inp, chain=())[1] if verdict.reason == renewal.RENEWING else None
        failure = self.state.failure
        if failure is not None and not failure.spec_hash:
            # Restored from status after a restart: the spec it failed for is the current one.
            failure = self.state.failure = replace(failure, spec_hash=digest)
        wait_until = may_issue(failure, digest, now, settings.retry, _retry_rand(failure))
        if wait_until is not None:
            return self._until(wait_until, now)
        if await self.ctx.kube.namespace_terminating(self.namespace):
            # Namespace deletion removes Secrets before this resource: not a reason to issue.
            self._log(logging.INFO, "namespace terminating; not issuing", reason=verdict.reason)
            return settings.retry.cap
        return await asyncio.shield(
            self._issue(cert, issuer, config, digest, verdict, still_valid, current, generation)
        )

    def _until(self, moment: datetime, now: datetime) -> float:
        seconds = (moment - now).total_seconds()
        return min(max(seconds, 0.0) + 0.05, self.ctx.settings.resync_seconds)

    async def _issue(
        self,
        cert: CertificateSpec,
        issuer: str,
        config: CAConfig,
        digest: str,
        verdict: Verdict,
        still_valid: Facts | None,
        current: Mapping[str, Any],
        generation: int | None,
    ) -> float:
        """Issue, write the Secret, report. Shielded: once the CA is called, the result is
        written even if the daemon is being stopped, or the invocation would be wasted."""
        settings = self.ctx.settings
        self._log(logging.INFO, "issuing", reason=verdict.reason, detail=verdict.message)
        try:
            issuance = await self.ctx.ca_pool.issue(issuer, config, cert.request, cert.key)
        except CAError as error:
            now = self.ctx.clock()
            previous = self.state.failure
            same_spec = previous is not None and previous.spec_hash in (digest, "")
            refused = isinstance(error, CARefused)
            failure = FailedAttempts(
                attempts=(previous.attempts + 1) if previous is not None and same_spec else 1,
                last_failure=now,
                reason=renewal.REFUSED if refused else renewal.FAILED,
                message=error.message if refused else f"{error.reason}: {error.message}",
                spec_hash=digest,
                transient=error.retryable and not refused,
            )
            self.state.failure = failure
            again = retry_at(failure, settings.retry, _retry_rand(failure))
            self._log(
                logging.WARNING,
                "issuance failed",
                reason=failure.reason,
                error_reason=error.reason,
                error=error.message,
                attempts=failure.attempts,
                retry_at=format_time(again),
            )
            kopf.warn(self.body, reason=failure.reason, message=failure.message)
            await self._report(
                status.failed(current, failure, still_valid, verdict.reason, again, generation, now)
            )
            self._metrics("True" if still_valid else "False", still_valid)
            return self._until(again, now)

        now = self.ctx.clock()
        body = secret_body(self.body, cert, issuance, digest, issuer, now)
        written = await self.ctx.kube.put_secret(self.namespace, body)
        key = (self.namespace, cert.secret_name)
        self.ctx.written[key] = str(written.get("metadata", {}).get("resourceVersion", ""))
        self.state.failure = None
        outcome = renewal.success_reason(verdict.reason)
        # cacore verified key and chain already: the facts come straight from the certificate.
        facts = issued_facts(issuance.certificate.certificate, cert.renewal, settings.jitter, now)
        serial = issuance.certificate.serial
        message = (
            f"Certificate {serial} issued into Secret {cert.secret_name} "
            f"({verdict.reason}), valid until {format_time(facts.not_after)}"
        )
        self._log(
            logging.INFO, "issued", reason=outcome, serial=str(serial), trigger=verdict.reason
        )
        kopf.info(self.body, reason=outcome, message=message)
        await self._report(status.ready(current, facts, generation, now, reason=outcome))
        self._metrics("True", facts)
        if facts.renewal_time <= now:
            # renewBefore as long as the lifetime: renewing at once would loop on the CA.
            self._log(
                logging.WARNING,
                "certificate due for renewal as soon as issued; check renewBefore",
                renewal_time=format_time(facts.renewal_time),
            )
            return self.ctx.settings.retry.cap
        return self._until(facts.renewal_time, now)
