"""``clientcert-operator``: the operator's command line. Flags become the CLIENTCERT_* settings
the handlers read, logs become JSON lines, and kopf runs the handlers of ``HANDLER_MODULES``.

The process owns its lifecycle: the liveness endpoint and the watchdog (``health``) run in their
own threads; SIGTERM first lets the CA calls in flight finish and their Secrets be written, then
stops kopf; whatever hangs, the process is gone within the shutdown budget.
Exit codes: ``cacore.exitcodes`` (the README's "Exit codes" table): 0 after SIGTERM or Ctrl-C,
1 when part of the operator died or a stop overran its budget, 2 for a bad setting.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import secrets
import signal
import socket
import sys
from datetime import UTC, datetime
from typing import Any

from cacore import exitcodes
from cacore.edge import jsonlog
from cacore.errors import CAError
from certoperator.peering import identity
from certoperator.settings import PREFIX, OperatorSettings, from_env

# Each module registers its kopf handlers when imported; they share ``memo.ctx``.
HANDLER_MODULES = ("certoperator.handlers",)

_FLAG_ENV = {
    "default_issuer": "DEFAULT_ISSUER",
    "ca_function": "CA_FUNCTION",
    "ca_region": "CA_REGION",
    "ca_endpoint_url": "CA_ENDPOINT_URL",
    "ca_max_lifetime_days": "CA_MAX_LIFETIME_DAYS",
    "max_concurrent_issuances": "MAX_CONCURRENT_ISSUANCES",
    "metrics_address": "METRICS_ADDRESS",
    "metrics_port": "METRICS_PORT",
    "renewal_jitter": "RENEWAL_JITTER",
    "retry_base_seconds": "RETRY_BASE_SECONDS",
    "retry_cap_seconds": "RETRY_CAP_SECONDS",
    "refused_retry_seconds": "REFUSED_RETRY_SECONDS",
    "stash_dir": "STASH_DIR",
    "shutdown_seconds": "SHUTDOWN_SECONDS",
}


class KopfJsonFormatter(jsonlog.JsonFormatter):
    """cacore's JSON lines, plus the object kopf's per-object loggers name (``k8s_ref``: kind,
    namespace, name), so every line about an object says which."""

    def format(self, record: logging.LogRecord) -> str:
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict) and not hasattr(record, "fields"):
            record.fields = {
                "kind": ref.get("kind"),
                "namespace": ref.get("namespace"),
                "name": ref.get("name"),
            }
        return super().format(record)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="clientcert-operator",
        description="Reconcile ClientCertificate resources with certificates from the "
        "serverless CA's Lambda. Every flag has a CLIENTCERT_* environment variable.",
    )
    p.add_argument("--default-issuer", help="LambdaCA used when issuerRef is empty")
    p.add_argument("--ca-function", help="default CA function name or ARN (no LambdaCA needed)")
    p.add_argument("--ca-region", help="region of --ca-function")
    p.add_argument("--ca-endpoint-url", help="endpoint of --ca-function (local CA, VPC endpoint)")
    p.add_argument(
        "--ca-max-lifetime-days", type=int, help="the default CA's MAX_CERT_LIFETIME (365)"
    )
    p.add_argument("--max-concurrent-issuances", type=int, help="bound on CA calls (default 8)")
    p.add_argument("--metrics-address", help="metrics listen address (default 0.0.0.0)")
    p.add_argument("--metrics-port", type=int, help="metrics port; 0 turns it off (default 9090)")
    p.add_argument("--renewal-jitter", type=float, help="renew up to this fraction early (0.1)")
    p.add_argument("--retry-base-seconds", type=float, help="first retry after a CA fault (2)")
    p.add_argument("--retry-cap-seconds", type=float, help="longest retry delay (300)")
    p.add_argument("--refused-retry-seconds", type=float, help="wait after a refusal (3600)")
    p.add_argument(
        "--stash-dir",
        help="keep issued certificates whose Secret could not be written here, across restarts "
        "(a memory-backed volume; none: memory only)",
    )
    p.add_argument(
        "--shutdown-seconds", type=float, help="SIGTERM to exit, at most (25; below the grace)"
    )
    p.add_argument(
        "--liveness",
        default="http://0.0.0.0:8080/healthz",
        help="liveness endpoint URL (503 when a part died or the loop stalled); empty: off",
    )
    p.add_argument(
        "--namespace", action="append", default=[], help="watch only this namespace (repeatable)"
    )
    p.add_argument("--standalone", action="store_true", help="no peering with other replicas")
    p.add_argument("--peering", default="clientcert-operator", help="ClusterKopfPeering name")
    p.add_argument("--priority", type=int, default=0, help="peering priority; highest acts")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    return p


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread that allocates its own malloc arena (up to 8 per core); with the
    API and CA thread pools that fragments into tens of MB of RSS for nothing. Two arenas cost
    nothing measurable here. Must run before the pools start; a no-op off glibc."""
    import ctypes
    import ctypes.util

    m_arena_max = -8  # from malloc.h
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(m_arena_max, arenas)
    except (OSError, AttributeError):
        pass


def block_unused_modules() -> None:
    """kopf imports the official kubernetes client whenever it is installed (for its login
    helper); the operator never uses it, and loading its model classes costs ~43 MB of RSS.
    A None entry in sys.modules makes that optional import fail cleanly, so kopf uses its own
    ServiceAccount/kubeconfig login instead."""
    sys.modules.setdefault("kubernetes", None)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    limit_malloc_arenas()
    block_unused_modules()
    for attribute, name in _FLAG_ENV.items():
        value = getattr(args, attribute)
        if value is not None:
            os.environ[PREFIX + name] = str(value)
    if args.namespace:
        os.environ[PREFIX + "NAMESPACES"] = ",".join(args.namespace)
    try:
        from_env(os.environ)  # refuse a bad setting now, in one line, before kopf starts
    except CAError as error:
        print(f"clientcert-operator: {error}", file=sys.stderr)
        return exitcodes.for_error(error)
    if args.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        print(
            f"clientcert-operator: --log-level: {args.log_level!r} is not a level", file=sys.stderr
        )
        return exitcodes.USAGE

    jsonlog.configure(args.log_level)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(KopfJsonFormatter())
    if args.log_level.upper() != "DEBUG":
        logging.getLogger("kopf").setLevel(logging.WARNING)  # its per-event chatter

    for module in HANDLER_MODULES:
        importlib.import_module(module)
    settings = from_env(os.environ)
    return asyncio.run(run(args, settings))


async def run(args: argparse.Namespace, settings: OperatorSettings) -> int:
    import kopf

    from certoperator.health import Watchdog

    watchdog = Watchdog(settings.stall_seconds, settings.shutdown_seconds)
    if args.liveness:
        try:
            watchdog.serve(args.liveness)
        except (ValueError, OSError) as error:
            print(f"clientcert-operator: --liveness: {error}", file=sys.stderr)
            return exitcodes.USAGE
    watchdog.start()
    me = identity(socket.gethostname(), datetime.now(UTC), os.getpid(), secrets.token_hex(3))
    memo = kopf.Memo(watchdog=watchdog, identity=me)
    stop = asyncio.Event()
    existing = set(asyncio.all_tasks())
    tasks = await kopf.spawn_tasks(
        # kopf types this as its peering.Identity NewType of str, which it does not export.
        identity=me,  # type: ignore[arg-type]
        standalone=args.standalone,
        peering_name=None if args.standalone else args.peering,
        priority=args.priority,
        namespaces=args.namespace,
        clusterwide=not args.namespace,
        memo=memo,
        stop_flag=stop,
    )
    watchdog.watch("kopf", tasks)
    signalled: list[int] = []
    stopping: list[asyncio.Task[None]] = []

    async def graceful() -> None:
        controller: Any = memo.get("controller")
        if controller is not None:
            await controller.shutdown(max(1.0, settings.shutdown_seconds - 5.0))
        stop.set()

    def on_signal(signum: int) -> None:
        signalled.append(signum)
        watchdog.stopping(signal.Signals(signum).name)
        if not stopping:
            stopping.append(asyncio.create_task(graceful(), name="graceful stop"))

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # Replaces kopf's own handlers: in-flight CA calls finish before kopf stops.
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await kopf.run_tasks(tasks, ignored=existing)
    except Exception:
        logging.getLogger("certoperator").exception("the operator stopped on an error")
        return exitcodes.FAILED
    finally:
        watchdog.close()
    return exitcodes.OK if signalled else exitcodes.FAILED


if __name__ == "__main__":
    sys.exit(main())
