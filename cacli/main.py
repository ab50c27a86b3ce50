"""``ca-cert``: issue a certificate from the serverless CA to a folder; test mutual TLS with it.

Exit codes: ``cacore.exitcodes`` (the README's "Exit codes" table).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from cacli import issue
from cacli.tls import MutualTLSServer, handshake
from cacore import exitcodes
from cacore.edge.cliopts import add_ca_arguments, config_from_args
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
            from cacore.edge.client import ca_client

            for line in issue.run(args, ca_client(config_from_args(args))):
                print(line)
            return exitcodes.OK
        if args.command == "handshake":
            host, port = args.address
            result = handshake(host, port, args.certs, args.server_name, not args.no_client_cert)
            print(("ok: " if result.ok else "failed: ") + result.message)
            if result.peer_subject:
                print(f"server:  {result.peer_subject}")
            if result.greeting:
                print(f"server said: {result.greeting}")
            return exitcodes.OK if result.ok else exitcodes.FAILED
        # As a container's PID 1 (the example app's Pod) SIGTERM has no default action: without
        # a handler every Pod deletion waits out the grace period.
        stopping: list[int] = []
        signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
        server = MutualTLSServer(args.address, args.certs)
        host, port = server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        print(f"listening on {host}:{port}", flush=True)
        server.serve_in_thread()
        deadline = time.monotonic() + args.seconds if args.seconds else None
        while not stopping and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)
        server.shutdown()
        return exitcodes.OK
    except (InvalidRequest, ConfigurationError) as error:
        print(f"error: {error}", file=sys.stderr)
        return exitcodes.for_error(error)
    except CAError as error:
        print(f"error: the CA did not issue ({error.reason}): {error}", file=sys.stderr)
        return exitcodes.for_error(error)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return exitcodes.USAGE
    except KeyboardInterrupt:
        return exitcodes.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
