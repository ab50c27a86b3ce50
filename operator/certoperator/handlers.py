"""The kopf handlers: registration and wiring only; decisions live in ``policy`` and the pass in
``reconcile``. Run with ``kopf run -m certoperator.handlers`` or ``clientcert-operator``.

Each ClientCertificate gets one daemon that reconciles, then sleeps until its renewal time, its
retry time, or an event that matters (a spec change, its Secret changed or deleted, a LambdaCA
appearing). One daemon per object means passes for an object never overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import logging
import os
import sys
from typing import Any

import kopf

from cacore.backoff import backoff_delay
from cacore.errors import CAError
from certoperator.api import CA_PLURAL, CERT_PLURAL, GROUP, LABEL_CERTIFICATE, VERSION
from certoperator.capool import CAPool
from certoperator.kube import Connection, KubeApi, in_cluster_server
from certoperator.metrics import Metrics
from certoperator.reconcile import Context, Reconciler
from certoperator.settings import from_env

log = logging.getLogger("certoperator")


def _kubernetes_client_available() -> bool:
    """False when absent, or kept out of the process by ``main.block_unused_modules``."""
    if "kubernetes" in sys.modules:
        return sys.modules["kubernetes"] is not None
    return importlib.util.find_spec("kubernetes") is not None


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    try:
        config = from_env(os.environ)
    except CAError as error:
        raise kopf.PermanentError(str(error)) from error  # stops the operator with the reason
    # Events only when we post them (issued, renewed, refused, failed), never from log lines.
    settings.posting.loggers = False
    # Serve exactly the CRDs installed before start (Helm installs crds/ first): the dynamic
    # CRD scan would need cluster-wide read on every CRD, which least privilege rules out.
    # A CRD upgrade takes effect at the next operator start (a chart upgrade rolls the pod).
    settings.scanning.disabled = True
    settings.posting.level = logging.INFO
    # Our own finalizer name, so `kubectl get -o yaml` says whose it is. Kopf adds it because
    # daemons must be stopped before their object goes.
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    # Only our Secrets are watched: the server filters, so a cluster full of Secrets costs
    # nothing in memory or CPU.
    settings.watching.label_selectors["v1", "secrets"] = LABEL_CERTIFICATE
    # Reconnect watches well before idle load balancers cut them.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 60
    settings.background.cancellation_polling = 5

    metrics = Metrics()
    if config.metrics_port:
        metrics.serve(config.metrics_address, config.metrics_port)
    memo.generations = {}  # (namespace, name) -> last generation seen, see _spec_changed
    memo.ctx = Context(
        settings=config,
        kube=KubeApi(CONNECTION),
        ca_pool=CAPool(metrics, config.max_concurrent),
        metrics=metrics,
    )
    log.info(
        "operator configured",
        extra={
            "fields": {
                "default_issuer": config.default_issuer,
                "default_ca_function": config.default_ca.function if config.default_ca else None,
                "max_concurrent_issuances": config.max_concurrent,
                "metrics_port": config.metrics_port,
            }
        },
    )


# kopf's own session opens connections without limit: a burst of 300 finalizer patches became
# hundreds of TLS connections, each with its handshake (CPU on both sides) and ~300 KB of buffers
# that stayed in RSS. One bounded pool serves kopf and the operator's own calls.
API_CONNECTIONS = 32  # includes one long-lived connection per watch stream
CONNECTION = Connection()


@kopf.on.login()
async def login(
    logger: logging.Logger | logging.LoggerAdapter[Any],
    settings: kopf.OperatorSettings,
    **_: Any,
) -> Any:
    """kopf's usual credentials (in-cluster ServiceAccount, else kubeconfig; through the
    kubernetes client's loader when it is installed, which also knows exec plugins), in a
    session with a bounded connection pool that the operator's own calls share. In a Pod the
    server is the `kubernetes` Service's address, as client-go finds it (no DNS needed)."""
    import aiohttp

    if _kubernetes_client_available():
        info = kopf.login_via_client(logger=logger, settings=settings)
    else:
        in_cluster = kopf.login_with_service_account(settings=settings)
        server = in_cluster_server(os.environ)
        if in_cluster is not None and server is not None:
            in_cluster = dataclasses.replace(in_cluster, server=server)
        info = in_cluster or kopf.login_with_kubeconfig(settings=settings)
    if info is None:
        return None
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=API_CONNECTIONS, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    CONNECTION.set(info.server, session)
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        expiration=info.expiration,
        aiohttp_session=session,
    )


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    ctx: Context | None = getattr(memo, "ctx", None)
    if ctx is not None:
        ctx.ca_pool.close()


@kopf.index(GROUP, VERSION, CA_PLURAL)
def lambdacas(name: str, spec: kopf.Spec, **_: Any) -> dict[str, dict[str, Any]]:
    """LambdaCA name -> spec, kept in memory from the watch: no API call per issuance."""
    return {name: dict(spec)}


# cancellation_timeout: kopf cancels the daemon at once when its object is deleted or the
# operator pauses or exits (without it, kopf would only raise the flag and wait for the loop).
# The issuance inside is shielded, so a cancelled daemon never wastes a CA invocation.
@kopf.daemon(GROUP, VERSION, CERT_PLURAL, id="reconcile", cancellation_timeout=10.0)
async def reconcile(
    body: kopf.Body,
    memo: kopf.Memo,
    stopped: kopf.DaemonStopped,
    **kwargs: Any,
) -> None:
    lambdacas: kopf.Index = kwargs["lambdacas"]  # kopf passes every index by its name
    ctx: Context = memo.ctx
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    wake = ctx.wakers[key] = asyncio.Event()
    reconciler = Reconciler(ctx, body, log)
    errors = 0
    try:
        while not stopped:
            wake.clear()
            try:
                delay = await reconciler.run(lambdacas)
                errors = 0
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the API server or a bug: retry, never stop for good
                errors += 1
                delay = backoff_delay(
                    errors, ctx.rand(), ctx.settings.retry.base, ctx.settings.retry.cap
                )
                log.warning(
                    "reconciliation failed",
                    exc_info=error,
                    extra={"fields": {"namespace": key[0], "name": key[1], "retry_in": delay}},
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=delay)
    finally:
        if ctx.wakers.get(key) is wake:
            del ctx.wakers[key]
        if body.get("metadata", {}).get("deletionTimestamp"):
            reconciler.forget()
            memo.generations.pop(key, None)
            if reconciler.secret_name is not None:
                ctx.written.pop((key[0], reconciler.secret_name), None)


def _spec_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> bool:
    """Only a new generation (a spec change) needs a pass: our own status writes do not."""
    seen: dict = memo.generations
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    generation = body["metadata"].get("generation")
    if seen.get(key) == generation:
        return False
    seen[key] = generation
    return True


@kopf.on.event(GROUP, VERSION, CERT_PLURAL, when=_spec_changed)
def wake_on_spec_change(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.ctx.wake((body["metadata"]["namespace"], body["metadata"]["name"]))


def _not_our_write(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> bool:
    """Skip the echo of the operator's own write; anything else (an edit, a deletion) counts."""
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    version = body["metadata"].get("resourceVersion")
    return memo.ctx.written.get(key) != version or kwargs.get("type") == "DELETED"


@kopf.on.event("v1", "secrets", labels={LABEL_CERTIFICATE: kopf.PRESENT}, when=_not_our_write)
def wake_on_secret_change(body: kopf.Body, labels: kopf.Labels, memo: kopf.Memo, **_: Any) -> None:
    """A deleted, edited or foreign-written Secret wakes the ClientCertificate it belongs to."""
    memo.ctx.wake((body["metadata"]["namespace"], labels[LABEL_CERTIFICATE]))


@kopf.on.event(GROUP, VERSION, CA_PLURAL)
def wake_on_issuer(memo: kopf.Memo, **_: Any) -> None:
    """A LambdaCA created or changed: certificates waiting for an issuer try again now."""
    for event in list(memo.ctx.wakers.values()):
        event.set()
