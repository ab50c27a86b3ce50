"""The kopf handlers: registration and wiring only. The controller (``reconcile``) decides and
acts; these handlers only tell it what the watches saw. Run with
``kopf run -m certoperator.handlers`` or ``clientcert-operator``.

No handler here blocks, calls the CA or writes to the API: a ClientCertificate event updates the
controller's view and, when the spec is new or changed, schedules a pass; a LambdaCA event wakes
the objects waiting for an issuer. Passes and issuances run on the controller's own bounded
worker pools (``scheduler``). Our Secrets and the namespaces are not kopf's to watch: thousands
of them cost too much through kopf's per-object machinery (``informer``).

Other handler modules (a CSR signer, say) register their own handlers in their own module, next
to this one (``main.HANDLER_MODULES``), and share the operator-wide clients through
``memo.ctx`` (``reconcile.Context``: settings, the Kubernetes API, the CA pool and its bound on
concurrent CA calls, metrics).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import logging
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf

from cacore.errors import CAError
from certoperator import kopfcompat, peering
from certoperator.api import CA_PLURAL, CERT_PLURAL, GROUP, VERSION
from certoperator.capool import CAPool
from certoperator.health import Watchdog
from certoperator.kube import Connection, KubeApi, KubeApiError, api_resource, in_cluster_server
from certoperator.metrics import Metrics
from certoperator.pending import PendingSecrets
from certoperator.reconcile import Context, Controller
from certoperator.settings import from_env
from certoperator.signer import handlers as signer_handlers

log = logging.getLogger("certoperator")
kopfcompat.install()


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
    # No handler needs a finalizer (deletion waits for nothing); earlier versions of this
    # operator added this one, and kopf removes a finalizer of this name that nothing needs.
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    # Reconnect watches well before idle load balancers cut them.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 60
    watchdog: Watchdog | None = memo.get("watchdog")
    if watchdog is None:  # under `kopf run`; the CLI brings its own, serving liveness
        watchdog = memo.watchdog = Watchdog(config.stall_seconds, config.shutdown_seconds)
        watchdog.start()
    kopfcompat.tune(settings, config.shutdown_seconds, watchdog.is_stopping)

    metrics = Metrics()
    if config.metrics_port:
        metrics.serve(config.metrics_address, config.metrics_port)
    pending = PendingSecrets(Path(config.stash_dir) if config.stash_dir else None)
    kept = pending.load(datetime.now(UTC))
    ctx = Context(
        settings=config,
        kube=KubeApi(CONNECTION),
        ca_pool=CAPool(metrics, config.max_concurrent),
        metrics=metrics,
        pending=pending,
        paused=kopfcompat.PAUSE.paused,
        resumed=kopfcompat.PAUSE.next_resume,
    )
    controller = Controller(ctx)
    memo.ctx, memo.controller = ctx, controller
    controller.start()
    metrics.queue_gauges(lambda: len(controller.issuing), lambda: len(ctx.pending))

    memo.heartbeat = asyncio.create_task(watchdog.heartbeat(), name="heartbeat")
    watchdog.watch("the controller", [*controller.tasks, memo.heartbeat])
    if not settings.peering.standalone and settings.peering.clusterwide and memo.get("identity"):
        memo.peering_check = asyncio.create_task(
            _remove_dead_predecessors(settings, memo.identity, ctx.kube)
        )
    log.info(
        "operator configured",
        extra={
            "fields": {
                "default_issuer": config.default_issuer,
                "default_ca_function": config.default_ca.function if config.default_ca else None,
                "max_concurrent_issuances": config.max_concurrent,
                "metrics_port": config.metrics_port,
                "pending_from_stash": kept,
            }
        },
    )


async def _remove_dead_predecessors(
    settings: kopf.OperatorSettings, me: str, kube: KubeApi
) -> None:
    """Once logged in: drop the peering records this host's earlier processes left (see
    ``peering``), so kopf does not pause behind them."""
    await kube.connected()
    name = settings.peering.name
    namespace = None  # the cluster-wide peering; namespaced operators wait as kopf decides
    try:
        found = await kube.get_peering(name, namespace)
        if found is None:
            return
        dead = peering.dead_predecessors(
            found.get("status") or {}, me, socket.gethostname(), os.getpid(), _running
        )
        if dead:
            await kube.patch_peering(name, namespace, {"status": dict.fromkeys(dead)})
            log.info("removed this host's dead operators from the peering",
                     extra={"fields": {"peering": name, "removed": dead}})  # fmt: skip
    except KubeApiError as error:  # kopf waits them out as it always would
        log.warning("peering records not checked", extra={"fields": {"error": str(error)}})


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# kopf's own session opens connections without limit: a burst of 300 finalizer patches became
# hundreds of TLS connections, each with its handshake (CPU on both sides) and ~300 KB of buffers
# that stayed in RSS. One bounded pool serves kopf and the operator's own calls.
API_CONNECTIONS = 32  # includes one long-lived connection per watch stream
CONNECTION = Connection()
signer_handlers.register_if_enabled(CONNECTION)  # the CSR signer (CLIENTCERT_SIGNER=true)


def _counted(metrics: Metrics | None) -> list[Any]:
    """An aiohttp trace that counts every request of the session by verb and resource."""
    import aiohttp

    if metrics is None:
        return []

    async def done(_session: Any, _ctx: Any, params: Any) -> None:
        verb, resource = api_resource(params.method, params.url.path_qs)
        metrics.api_requests.labels(verb, resource, str(params.response.status)).inc()

    async def failed(_session: Any, _ctx: Any, params: Any) -> None:
        verb, resource = api_resource(params.method, params.url.path_qs)
        metrics.api_requests.labels(verb, resource, "error").inc()

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(done)
    trace.on_request_exception.append(failed)
    return [trace]


@kopf.on.login()
async def login(
    logger: logging.Logger | logging.LoggerAdapter[Any],
    settings: kopf.OperatorSettings,
    memo: kopf.Memo,
    **_: Any,
) -> Any:
    """kopf's usual credentials (in-cluster ServiceAccount, else kubeconfig; through the
    kubernetes client's loader when it is installed, which also knows exec plugins), in a
    session with a bounded connection pool that the operator's own calls share, and that
    counts every request (``clientcert_api_requests_total``). In a Pod the server is the
    `kubernetes` Service's address, as client-go finds it (no DNS needed)."""
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
        trace_configs=_counted(memo.ctx.metrics if "ctx" in memo else None),
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
    """kopf is stopping (SIGTERM under `kopf run`, or one of its parts ended): let the CA calls
    in flight finish and their Secrets be written, within the shutdown budget."""
    controller: Controller | None = memo.get("controller")
    watchdog: Watchdog | None = memo.get("watchdog")
    if watchdog is not None:
        watchdog.stopping("kopf is stopping")
    if controller is not None:
        budget = max(1.0, controller.ctx.settings.shutdown_seconds - 5.0)
        await controller.shutdown(budget)
        controller.ctx.ca_pool.close()
    heartbeat: asyncio.Task[None] | None = memo.get("heartbeat")
    if heartbeat is not None:
        heartbeat.cancel()  # kopf waits 5 s for tasks that do not end by themselves


@kopf.on.probe(id="alive")
async def alive(memo: kopf.Memo, **_: Any) -> str:
    """kopf's liveness endpoint (`kopf run --liveness`): the watchdog's verdict."""
    watchdog: Watchdog | None = memo.get("watchdog")
    problem = watchdog.problem() if watchdog is not None else None
    if problem is not None:
        raise kopf.PermanentError(problem)
    return "ok"


@kopf.index(GROUP, VERSION, CA_PLURAL)
def lambdacas(name: str, spec: kopf.Spec, **_: Any) -> dict[str, dict[str, Any]]:
    """LambdaCA name -> spec, kept in memory from the watch: no API call per issuance."""
    return {name: dict(spec)}


def _controller(memo: kopf.Memo, kwargs: dict[str, Any]) -> Controller:
    controller: Controller = memo.controller
    controller.lambdacas = kwargs["lambdacas"]  # kopf passes every index by its name
    return controller


@kopf.on.event(GROUP, VERSION, CERT_PLURAL)
async def certificate_event(
    body: kopf.Body, type: str | None, memo: kopf.Memo, **kwargs: Any
) -> None:
    # async: kopf runs a plain function in a thread, and the controller belongs to the loop.
    _controller(memo, kwargs).observe(body, deleted=type == "DELETED")


@kopf.on.event(GROUP, VERSION, CA_PLURAL)
async def issuer_event(memo: kopf.Memo, **kwargs: Any) -> None:
    """A LambdaCA created or changed: certificates waiting for an issuer try again now."""
    _controller(memo, kwargs).issuer_changed()
