"""`local-ca serve ...`: run the local CA until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
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
    DEFAULT_INTERNAL_BUCKET,
    DEFAULT_MAX_LIFETIME_DAYS,
    DEFAULT_REGION,
    DEFAULT_SECRET_ACCESS_KEY,
    Config,
    ConfigError,
)
from localca.logs import JsonLog
from localca.server import LocalCAServer, default_state_dir


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
        sts_endpoint=args.sts_endpoint,
    )


def _write_ready(path: Path, line: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(line + "\n")
    os.replace(tmp, path)


def serve(args: argparse.Namespace, log: JsonLog) -> int:
    config = config_from(args)
    initial = [fault_rules.parse(json.loads(raw)) for raw in args.fault]
    server = LocalCAServer(config, log=log)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server.start()
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
    try:
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    log = JsonLog()
    args = parser().parse_args(argv)
    try:
        return serve(args, log)
    except (
        ConfigError,
        fault_rules.FaultError,
        json.JSONDecodeError,
        FileNotFoundError,
        OSError,
    ) as exc:
        print(f"local-ca: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
