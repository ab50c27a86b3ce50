"""``ca-cert``: issue a certificate from the serverless CA to a folder; test mutual TLS with it.

Exit codes: ``cacore.exitcodes`` (the README's "Exit codes" table).
"""

from __future__ import annotations

import argparse
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cacli import issue
from cacli.tls import MutualTLSServer, handshake
from cacore import exitcodes
from cacore.edge import cli
from cacore.edge.cli import Terminated
from cacore.edge.cliopts import (
    OneLineParser,
    add_ca_arguments,
    as_flags,
    bounded,
    config_from_args,
)
from cacore.errors import CAError, ConfigurationError, InvalidRequest, Timeout
from cacore.text import for_terminal

PROG = "ca-cert"


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not HOST:PORT with a port from 0 to 65535 (e.g. 127.0.0.1:8443)"
        )
    return host.strip("[]") or "127.0.0.1", int(port)


def parser() -> argparse.ArgumentParser:
    root = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    commands = root.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

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
    serve.add_argument(
        "--seconds",
        type=bounded(float, 0, 999_999, "a number of seconds"),
        default=0,
        help="stop after this long (0: never)",
    )
    return root


def say(message: str) -> None:
    cli.say(PROG, message)


def _waiting(target: str) -> Callable[[float], None]:
    def on_slow(seconds_left: float) -> None:
        say(f"waiting for {target} to answer (up to {seconds_left:.0f} s more; --timeout)")

    return on_slow


def _issue(args: argparse.Namespace) -> int:
    from cacore.edge.client import LambdaTransport, ca_client

    config = config_from_args(args)
    target = LambdaTransport(config).target
    lines = issue.run(
        args, lambda: ca_client(config, on_slow=_waiting(target), refuse_not_valid_now=False)
    )
    print(for_terminal("\n".join(lines)))
    return exitcodes.OK


def _handshake(args: argparse.Namespace) -> int:
    host, port = args.address
    result = handshake(host, port, args.certs, args.server_name, not args.no_client_cert)
    lines = [("ok: " if result.ok else "failed: ") + result.message]
    if result.peer_subject:
        lines.append(f"server:  {result.peer_subject}")
    if result.greeting:
        lines.append(f"server said: {result.greeting}")
    print(for_terminal("\n".join(lines)))
    return exitcodes.OK if result.ok else exitcodes.FAILED


def _serve(args: argparse.Namespace) -> int:
    try:
        server = MutualTLSServer(args.address, args.certs)
    except ssl.SSLError as error:
        raise InvalidRequest(
            "--certs", f"{args.certs} does not hold a usable certificate and key: {error.reason}"
        ) from error
    except OSError as error:
        host, port = args.address
        if isinstance(error, FileNotFoundError) and error.filename is None:
            raise  # a missing file of the set: its message says what to run
        raise InvalidRequest(
            "HOST:PORT",
            f"cannot listen on {host}:{port}: {error.strerror or error}; choose a free port "
            "(or 0 for any)",
        ) from error
    host, port = server.server_address[:2]
    host = host.decode() if isinstance(host, bytes) else host
    # A long-running server: SIGTERM ends it cleanly, 0. As a container's PID 1 (the example
    # app's Pod) SIGTERM has no default action: without a handler every Pod deletion would wait
    # out the grace period.
    serving = False
    try:
        print(f"listening on {host}:{port}", flush=True)
        server.serve_in_thread()
        serving = True
        deadline = time.monotonic() + args.seconds if args.seconds else None
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except Terminated:
        pass
    finally:
        if serving:
            server.shutdown()
        server.server_close()
    return exitcodes.OK


def _main(argv: list[str] | None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "issue":
            return _issue(args)
        if args.command == "handshake":
            return _handshake(args)
        return _serve(args)
    except ConfigurationError as error:
        say(f"error: {as_flags(error)}")
        return exitcodes.USAGE
    except InvalidRequest as error:
        say(f"error: {error}")
        return exitcodes.USAGE
    except Timeout as error:
        again = (
            "the CA may still certify this CSR, so a second try with it may be refused as key reuse"
            if args.command == "issue" and args.csr
            else "the CA may still issue, for a key nobody kept: run again (a new key each time)"
        )
        say(f"error: {error} (--timeout); {again}")
        return exitcodes.FAILED
    except CAError as error:
        say(f"error: the CA did not issue ({error.reason}): {error}")
        return exitcodes.for_error(error)
    except issue.NotSaved as error:
        say(f"error: {error}")
        return exitcodes.FAILED
    except FileNotFoundError as error:
        say(f"error: {error}")
        return exitcodes.USAGE


def main(argv: list[str] | None = None) -> int:
    return cli.run(PROG, lambda: _main(argv))


if __name__ == "__main__":
    sys.exit(main())
