"""``ca-cert``: issue a certificate from the serverless CA to a folder; test mutual TLS with it.

Exit codes: 0 success, 1 the CA or the handshake failed, 2 bad input or configuration.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from cacli import issue
from cacli.tls import MutualTLSServer, handshake
from cacore.cliopts import add_ca_arguments, config_from_args
from cacore.errors import CAError, ConfigurationError, InvalidRequest


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="ca-cert", description=__doc__.splitlines()[0])
    commands = root.add_subparsers(dest="command", required=True)

    issue_cmd = commands.add_parser("issue", help="make a key, get it certified, write the files")
    issue.add_arguments(issue_cmd)
    add_ca_arguments(issue_cmd)

    shake = commands.add_parser("handshake", help="try mutual TLS against HOST:PORT with the files")
    shake.add_argument("address", type=_host_port, metavar="HOST:PORT")
    shake.add_argument("--certs", type=Path, default=Path("certs-out"))
    shake.add_argument("--server-name", help="name to verify in the server certificate")
    shake.add_argument("--no-client-cert", action="store_true", help="connect without one")

    serve = commands.add_parser(
        "serve", help="a mutual-TLS server that requires a client certificate"
    )
    serve.add_argument("address", type=_host_port, metavar="HOST:PORT")
    serve.add_argument("--certs", type=Path, default=Path("certs-out"))
    serve.add_argument("--seconds", type=float, default=0, help="stop after this long (0: never)")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "issue":
            from cacore.client import ca_client

            for line in issue.run(args, ca_client(config_from_args(args))):
                print(line)
            return 0
        if args.command == "handshake":
            host, port = args.address
            result = handshake(host, port, args.certs, args.server_name, not args.no_client_cert)
            print(("ok: " if result.ok else "failed: ") + result.message)
            if result.peer_subject:
                print(f"server:  {result.peer_subject}")
            if result.greeting:
                print(f"server said: {result.greeting}")
            return 0 if result.ok else 1
        # As a container's PID 1 (the example app's Pod) SIGTERM has no default action: without
        # a handler every Pod deletion waits out the grace period.
        stopping: list[int] = []
        signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
        server = MutualTLSServer(args.address, args.certs)
        print(f"listening on {server.server_address[0]}:{server.server_address[1]}", flush=True)
        server.serve_in_thread()
        deadline = time.monotonic() + args.seconds if args.seconds else None
        while not stopping and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)
        server.shutdown()
        return 0
    except (InvalidRequest, ConfigurationError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except CAError as error:
        print(f"error: the CA did not issue ({error.reason}): {error}", file=sys.stderr)
        return 1
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
