"""``clientcert-operator``: the operator's command line. Flags become the CLIENTCERT_* settings
the handlers read, logs become JSON lines, and kopf runs the handlers of ``certoperator.handlers``.
Exit codes: ``cacore.exitcodes`` (the README's "Exit codes" table): 2 for a bad setting.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import socket
import sys
from datetime import UTC, datetime

from cacore import exitcodes
from cacore.edge import jsonlog
from cacore.errors import CAError
from certoperator.settings import PREFIX, from_env

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
}


class KopfJsonFormatter(jsonlog.JsonFormatter):
    """cacore's JSON lines, plus the object kopf's own per-object loggers attach."""

    def format(self, record: logging.LogRecord) -> str:
        obj = getattr(record, "k8s_obj", None)
        if isinstance(obj, dict) and not hasattr(record, "fields"):
            record.fields = {"namespace": obj.get("namespace"), "name": obj.get("name")}
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
        "--liveness",
        default="http://0.0.0.0:8080/healthz",
        help="kopf liveness endpoint URL; empty turns it off",
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

    import kopf

    import certoperator.handlers  # noqa: F401  registers the handlers

    kopf.run(
        # kopf types this as its peering.Identity NewType of str, which it does not export.
        identity=peer_identity(socket.gethostname(), datetime.now(UTC), secrets.token_hex(3)),  # type: ignore[arg-type]
        standalone=args.standalone,
        peering_name=None if args.standalone else args.peering,
        priority=args.priority,
        namespaces=args.namespace,
        clusterwide=not args.namespace,
        liveness_endpoint=args.liveness or None,
    )
    return exitcodes.OK


def peer_identity(host: str, now: datetime, suffix: str) -> str:
    """This process's name among peers. kopf's default asks the password database for the
    user name, which has no entry for an arbitrary non-root uid (runAsUser 65532): it crashes."""
    return f"clientcert-operator@{host}/{now:%Y%m%d%H%M%S}/{suffix}"


if __name__ == "__main__":
    sys.exit(main())
