"""kopf wiring for the CSR signer. ``certoperator.handlers`` calls ``register_if_enabled`` once
with its API connection; the handlers are registered only when ``CLIENTCERT_SIGNER`` is true
(the chart sets it with ``signer.enabled``, together with the RBAC it needs). kopf watches
ClientCertificatePolicies and LambdaCAs (indices); the CertificateSigningRequests are not kopf's:
``feed`` watches them and hands them to ``controller.Signer``, started once kopf's indices are
filled (at the first LambdaCA event: kopf runs no handler before its indices are complete).

The operator writes nothing onto CSRs but the approval and status subresources, which the API
server limits to the signer names it may approve and sign for.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import kopf

from certoperator.api import CA_PLURAL, GROUP, VERSION
from certoperator.kube import Connection
from certoperator.signer.controller import Signer
from certoperator.signer.feed import WORKERS_PER_CA_SLOT, CsrFeed
from certoperator.signer.kubeapi import SignerApi
from certoperator.signer.names import POLICY_PLURAL, signer_name
from certoperator.signer.policyspec import Policy, parse_policy
from certoperator.signer.settings import SignerCA, signer_ca, signer_enabled

log = logging.getLogger("certoperator.signer")
ENV_CLAIM_SECONDS = "CLIENTCERT_SIGNER_CLAIM_SECONDS"
RESCAN_DELAY = 0.5  # seconds: one rescan for a burst of policy or LambdaCA changes


def _first(index: Any) -> dict[str, Any]:
    """A kopf index (key -> store of values) as key -> its value."""
    return {key: next(iter(index[key])) for key in list(index) if key in index}


class Wiring:
    """What the handlers share: the Signer, built on the first event (the operator's own
    ``configure`` startup handler made the API session and the CA pool by then), and the live
    kopf indices it reads through."""

    def __init__(self) -> None:
        self.connection = Connection()
        self.signer: Signer | None = None
        self.feed: CsrFeed | None = None
        self.cas_index: Any = {}
        self.policy_index: Any = {}
        self._rescan: asyncio.Task[None] | None = None

    def ca(self, name: str) -> SignerCA | None:
        """One LambdaCA by name: a lookup, not a copy of the index (this runs per CSR)."""
        if name not in self.cas_index:
            return None
        return next(iter(self.cas_index[name]), None)

    def cas(self) -> Mapping[str, SignerCA]:
        return _first(self.cas_index)

    def policies(self) -> Sequence[Policy]:
        return tuple(_first(self.policy_index).values())

    def get(self, memo: kopf.Memo, indices: Mapping[str, Any]) -> Signer:
        self.cas_index = indices["signer_lambdacas"]
        self.policy_index = indices["signer_policies"]
        if self.signer is None:
            ctx = memo.ctx
            claim = os.environ.get(ENV_CLAIM_SECONDS)
            self.signer = Signer(
                SignerApi(self.connection),
                ctx.ca_pool,
                ctx.settings.retry,
                registry=ctx.metrics.registry,
                claim_seconds=float(claim) if claim else None,
            )
            self.signer.ca = self.ca
            self.signer.policies = self.policies
            self.feed = CsrFeed(
                self.signer.api,
                self.signer,
                paused=ctx.paused,
                resumed=ctx.resumed,
                workers=WORKERS_PER_CA_SLOT * ctx.settings.max_concurrent,
            )
            self.feed.start()
            watchdog = memo.get("watchdog")
            if watchdog is not None:
                watchdog.watch("the CSR signer", self.feed.tasks)
        return self.signer

    def rescan_soon(self, memo: kopf.Memo, indices: Mapping[str, Any]) -> None:
        signer = self.get(memo, indices)
        if self._rescan is not None and not self._rescan.done():
            self._rescan.cancel()

        async def later() -> None:
            await asyncio.sleep(RESCAN_DELAY)
            try:
                await signer.rescan([signer_name(name) for name in list(self.cas_index)])
            except Exception as error:  # the next change or restart tries again
                log.warning("CSR rescan failed", extra={"fields": {"error": str(error)}})

        self._rescan = asyncio.create_task(later())


WIRING = Wiring()


def register_if_enabled(connection: Connection) -> None:
    """Register the signer's handlers when ``CLIENTCERT_SIGNER`` says so, on ``connection`` (the
    operator's one API session)."""
    if signer_enabled(os.environ):
        WIRING.connection = connection
        _register()


def _register() -> None:
    # Handlers defined in a function need explicit ids: kopf names indices (the kwargs handlers
    # receive) and handlers by them.
    @kopf.index(GROUP, VERSION, CA_PLURAL, id="signer_lambdacas")
    def signer_lambdacas(name: str, spec: kopf.Spec, **_: Any) -> dict[str, SignerCA] | None:
        """LambdaCAs that serve as signers (``spec.signer.enabled``)."""
        ca = signer_ca(name, dict(spec))
        return {name: ca} if ca is not None else None

    @kopf.index(GROUP, VERSION, POLICY_PLURAL, id="signer_policies")
    def signer_policies(name: str, spec: kopf.Spec, **_: Any) -> dict[str, Policy]:
        """Every ClientCertificatePolicy, parsed once per change."""
        return {name: parse_policy(name, dict(spec))}

    @kopf.on.event(GROUP, VERSION, POLICY_PLURAL, id="signer_policy_changed")
    async def policy_changed(memo: kopf.Memo, type: str | None, **kwargs: Any) -> None:
        """A policy created or changed: pending CSRs are decided again (initial listing: no)."""
        if type is not None:
            WIRING.rescan_soon(memo, kwargs)

    @kopf.on.event(GROUP, VERSION, CA_PLURAL, id="signer_lambdaca_changed")
    async def lambdaca_changed(name: str, memo: kopf.Memo, type: str | None, **kwargs: Any) -> None:
        """A LambdaCA opted in (or its CA changed): its client is made ready, and its waiting
        CSRs are handled now (at start, the feed's first listing of CSRs does that; the first
        of these events starts the feed)."""
        if type == "DELETED":
            return
        await WIRING.get(memo, kwargs).prepare(name)
        if type is not None:
            WIRING.rescan_soon(memo, kwargs)

    @kopf.on.cleanup(id="signer_stop")
    async def stop_signer(memo: kopf.Memo, **_: Any) -> None:
        watchdog = memo.get("watchdog")
        if watchdog is not None:  # the feed's tasks end now: not a dead part
            watchdog.stopping("kopf is stopping")
        if WIRING.feed is not None:
            WIRING.feed.stop()
        if WIRING.signer is not None:
            await WIRING.signer.aclose()
