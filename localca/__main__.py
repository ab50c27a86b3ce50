"""`local-ca serve ...`: run the local CA until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from localca import faults as fault_rules
from localca.config import (
    DEFAULT_ACCESS_KEY_ID,
    DEFAULT_DYNAMODB_TABLE,
    DEFAULT_FUNCTION_NAME,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_INTERNAL_BUCKET,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_LIFETIME_DAYS,
    DEFAULT_REGION,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_SECRET_ACCESS_KEY,
    Config,
    ConfigError,
)
from localca.logs import JsonLog
from localca.server import LocalCAServer, default_state_dir
from localca.state import StateError


def _pairs(keys: list[str], secrets: list[str], flag: str) -> dict[str, str]:
    if len(keys) != len(secrets):
        raise ConfigError(
            f"{flag}: give one --secret-access-key per --access-key-id "
            f"({len(keys)} ids, {len(secrets)} secrets)"
        )
    return dict(zip(keys, secrets, strict=True))


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="local-ca", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the Lambda Invoke API on a loopback address")
    serve.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="CA keys, certificates and issued records (default "
        "~/.cache/lambda-client-certs/local-ca)",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--function-name", default=DEFAULT_FUNCTION_NAME)
    serve.add_argument("--region", default=DEFAULT_REGION)
    serve.add_argument(
        "--access-key-id",
        action="append",
        default=[],
        help="repeatable; pairs with --secret-access-key in order",
    )
    serve.add_argument("--secret-access-key", action="append", default=[])
    serve.add_argument(
        "--denied-access-key-id",
        action="append",
        default=[],
        help="authenticated but answered AccessDeniedException (repeatable)",
    )
    serve.add_argument("--denied-secret-access-key", action="append", default=[])
    serve.add_argument("--max-lifetime-days", type=int, default=DEFAULT_MAX_LIFETIME_DAYS)
    serve.add_argument(
        "--extension-allowlist",
        action="append",
        default=[],
        help="custom extension OID callers may set (repeatable)",
    )
    serve.add_argument("--dynamodb-endpoint", default=None)
    serve.add_argument("--dynamodb-table", default=DEFAULT_DYNAMODB_TABLE)
    serve.add_argument(
        "--csr-dir",
        type=Path,
        default=None,
        help="stands in for the internal bucket's csrs/ prefix",
    )
    serve.add_argument(
        "--internal-bucket",
        default=DEFAULT_INTERNAL_BUCKET,
        help="bucket name quoted in 'CSR file not found' refusals",
    )
    serve.add_argument(
        "--fault",
        action="append",
        default=[],
        help='a fault as JSON, e.g. \'{"kind": "throttle", "count": 2}\'',
    )
    serve.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        help="connections served at once; more wait in the listen backlog",
    )
    serve.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULT_IDLE_TIMEOUT,
        help="seconds a kept-alive connection may wait for its next request",
    )
    serve.add_argument(
        "--request-timeout",
        type=float,
        default=DEFAULT_REQUEST_TIMEOUT,
        help="seconds from a request's first byte to its last",
    )
    serve.add_argument(
        "--sts-endpoint",
        default=None,
        help="moto's server acting as STS: accept the temporary credentials it issued "
        "(assumed roles), as Lambda accepts STS's",
    )
    serve.add_argument("--ready-file", type=Path, default=None)
    serve.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (never needed for tests)",
    )
    return top


def config_from(args: argparse.Namespace) -> Config:
    creds = _pairs(args.access_key_id, args.secret_access_key, "--access-key-id")
    denied = _pairs(
        args.denied_access_key_id, args.denied_secret_access_key, "--denied-access-key-id"
    )
    return Config(
        state_dir=args.state_dir or default_state_dir(),
        host=args.host,
        port=args.port,
        function_name=args.function_name,
        region=args.region,
        credentials=creds or {DEFAULT_ACCESS_KEY_ID: DEFAULT_SECRET_ACCESS_KEY},
        denied_credentials=denied,
        max_lifetime_days=args.max_lifetime_days,
        extension_allowlist=tuple(args.extension_allowlist),
        dynamodb_endpoint=args.dynamodb_endpoint,
        dynamodb_table=args.dynamodb_table,
        csr_dir=args.csr_dir,
        internal_bucket=args.internal_bucket,
        allow_remote=args.allow_remote,
        max_connections=args.max_connections,
        idle_timeout=args.idle_timeout,
        request_timeout=args.request_timeout,
        sts_endpoint=args.sts_endpoint,
    )


# The project's exit-code table (README "Exit codes"); local-ca cannot import cacore's.
EXIT_OK = 0  # stopped by SIGTERM
EXIT_INTERNAL = 1
EXIT_CONFIG = 2  # a bad flag, a broken or busy state dir, an unusable address
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C (SIGINT)


def _write_ready(path: Path, line: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(line + "\n")
    os.replace(tmp, path)


def _faults(raw: list[str]) -> list[fault_rules.Fault]:
    parsed = []
    for text in raw:
        try:
            parsed.append(fault_rules.parse(json.loads(text)))
        except (ValueError, RecursionError) as exc:
            raise ConfigError(f"--fault {text!r} is not valid: {exc}") from exc
    return parsed


def _address_error(config: Config, exc: OSError) -> ConfigError:
    if exc.errno == errno.EADDRINUSE:
        return ConfigError(
            f"port {config.port} on {config.host} is in use: stop what holds it, or use --port 0 "
            "for any free port"
        )
    return ConfigError(
        f"cannot listen on {config.host}:{config.port} ({exc.strerror or exc}): check --host "
        "and --port"
    )


def serve(args: argparse.Namespace, log: JsonLog, stop: threading.Event) -> None:
    config = config_from(args)
    initial = _faults(args.fault)
    if args.ready_file is not None and not args.ready_file.parent.is_dir():
        raise ConfigError(
            f"--ready-file {args.ready_file}: its directory does not exist: create it first"
        )
    server = LocalCAServer(config, log=log)
    try:
        server.start()
    except OSError as exc:
        raise _address_error(config, exc) from exc
    try:
        for fault in initial:
            server.app.faults.add(fault)
        ready = json.dumps(
            {
                "endpoint_url": server.endpoint_url,
                "function_name": config.function_name,
                "region": config.region,
                "access_key_id": next(iter(config.credentials)),
                "pid": os.getpid(),
            }
        )
        print(ready, flush=True)
        if args.ready_file:
            _write_ready(args.ready_file, ready)
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    stop = threading.Event()
    received: list[int] = []

    def _on_signal(signum: int, _frame: Any) -> None:
        received.append(signum)
        stop.set()

    # Installed first, so a signal during startup stops cleanly instead of a traceback.
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    log = JsonLog()
    try:
        args = parser().parse_args(argv)  # exits 2 with argparse's one-line usage error
        serve(args, log, stop)
        return EXIT_INTERRUPTED if signal.SIGINT in received else EXIT_OK
    except (ConfigError, StateError) as exc:
        print(f"local-ca: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:
        print(f"local-ca: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        print(f"local-ca: internal error ({type(exc).__name__}: {exc})", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
