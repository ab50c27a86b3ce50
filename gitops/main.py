"""``certs-gitops``: partner CSRs through pull requests into the serverless CA's certs/ tree.

Exit codes: ``cacore.exitcodes`` (the README's "Exit codes" table): 1 also when ``validate``
finds problems or an entry failed to issue.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from cacore import exitcodes
from cacore.edge import cli
from cacore.edge.cliopts import (
    OneLineParser,
    add_aws_arguments,
    add_ca_arguments,
    add_max_lifetime_argument,
    as_flags,
)
from cacore.errors import CAError, ConfigurationError, InvalidRequest
from cacore.text import for_terminal
from gitops import commands
from gitops.errors import GitopsError, UsageError
from gitops.report import FORMATS

PROG = "certs-gitops"
_Parser = OneLineParser


def _common(parser: argparse.ArgumentParser, env_required: bool = True) -> None:
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(os.environ.get("CERTS_GITOPS_ROOT", "certs")),
        help="the certs/ folder of the CA repository (default ./certs, env CERTS_GITOPS_ROOT)",
    )
    if env_required:
        parser.add_argument(
            "--env", required=True, help="environment folder, the CA's Terraform env (e.g. dev)"
        )


def _table_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("the CA's DynamoDB table of issued certificates")
    group.add_argument(
        "--project",
        default=os.environ.get("CA_PROJECT", "serverless"),
        help="the CA's Terraform project name; names the table and function (default serverless)",
    )
    group.add_argument(
        "--table", help="table name (default <Project>CA<Env>, e.g. ServerlessCADev)"
    )
    group.add_argument(
        "--dynamodb-endpoint-url",
        # Read here rather than left to boto3, so a bad value is refused before anything else.
        default=os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL"),
        help="DynamoDB endpoint (env AWS_ENDPOINT_URL_DYNAMODB)",
    )


def _max_lifetime_argument(parser: argparse.ArgumentParser) -> None:
    add_max_lifetime_argument(
        parser,
        "the CA's MAX_CERT_LIFETIME (default 365, env CA_MAX_LIFETIME_DAYS): longer "
        "lifetimes are findings, as the CA would cap them silently",
    )


def parser() -> argparse.ArgumentParser:
    root = _Parser(prog="certs-gitops", description=__doc__.splitlines()[0])
    sub = root.add_subparsers(dest="command", required=True, parser_class=_Parser)

    init = sub.add_parser("init", help="create certs/<env>/ with tls.json, csrs/, revoked.json")
    _common(init)
    init.add_argument("--ca-bundle", type=Path, help="copy the CA's published bundle into the env")

    validate = sub.add_parser("validate", help="check the tree: what a pull request runs")
    _common(validate, env_required=False)
    validate.add_argument(
        "--env", action="append", help="environment to check; repeat it (default: all)"
    )
    validate.add_argument("--format", choices=FORMATS, default="human")
    _max_lifetime_argument(validate)

    add = sub.add_parser("add", help="add a partner's CSR and its tls.json entry")
    _common(add)
    add.add_argument("csr", type=Path, help="the partner's PEM CSR file, or - for standard input")
    add.add_argument("--common-name", "--cn", dest="common_name", help="default: the CSR's CN")
    for name in ("organization", "organizational-unit", "locality", "state", "country"):
        add.add_argument(f"--{name}", help="default: the CSR's")
    add.add_argument("--email-address", help="default: the CSR's")
    add.add_argument(
        "--san",
        action="append",
        default=[],
        help="SAN; repeat it. DNS by default, or IP:, EMAIL:, URI: prefixed "
        "(default: the SANs inside the CSR, which the CA itself ignores)",
    )
    add.add_argument(
        "--purpose", action="append", dest="purposes", help="client_auth (default), server_auth"
    )
    add.add_argument("--extended-key-usage", action="append", dest="ekus", default=[])
    add.add_argument(
        "--lifetime", type=int, default=30, help="days, 1 to --max-lifetime-days (default 30)"
    )
    _max_lifetime_argument(add)
    add.add_argument("--name", help="file name in csrs/ (default: from the common name)")
    add.add_argument("--dry-run", action="store_true", help="show the entry, write nothing")

    issue = sub.add_parser("issue", help="send every entry not yet issued to the CA")
    _common(issue)
    issue.add_argument("--dry-run", action="store_true", help="decide and report, issue nothing")
    issue.add_argument(
        "--no-table",
        action="store_true",
        help="do not read DynamoDB; rely on the CA's key-reuse refusal for idempotence",
    )
    issue.add_argument("--format", choices=("human", "json"), default="human")
    add_ca_arguments(issue)
    _table_arguments(issue)
    issue.set_defaults(function=None)  # default derived from --project and --env

    fetch = sub.add_parser("fetch", help="write a name's certificate and CA bundle for a partner")
    _common(fetch)
    fetch.add_argument("common_name")
    fetch.add_argument("--serial", help="this certificate instead of the newest valid one")
    fetch.add_argument("--out", type=Path, help="output folder (default ./<common-name>)")
    fetch.add_argument(
        "--ca-bundle",
        type=Path,
        help="CA bundle file (default: certs/<env>/ca-bundle.pem, else ask the CA function)",
    )
    fetch.add_argument("--format", choices=("human", "json"), default="human")
    add_ca_arguments(fetch)
    _table_arguments(fetch)
    fetch.set_defaults(function=None)

    revoke = sub.add_parser("revoke", help="add a certificate to revoked.json")
    _common(revoke)
    revoke.add_argument("common_name")
    revoke.add_argument("serial", help="decimal, 0x-hex, or openssl's colon hex")
    add_aws_arguments(revoke)
    _table_arguments(revoke)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(PROG, lambda: _main(argv))


def _main(argv: Sequence[str] | None) -> int:
    args = parser().parse_args(argv)
    now = datetime.now(UTC)
    try:
        if args.command == "validate":
            code, text = commands.validate(
                args.root, args.env, args.format, int(args.max_lifetime_days)
            )
        elif args.command == "init":
            code, text = commands.init(args.root, args.env, args.ca_bundle)
        elif args.command == "add":
            code, text = commands.add(args)
        elif args.command == "issue":
            code, text = commands.issue(args, now)
        elif args.command == "fetch":
            code, text = commands.fetch(args, now)
        else:
            code, text = commands.revoke(args, now)
    except ConfigurationError as error:
        cli.say(PROG, f"error: {as_flags(error)}")
        return exitcodes.USAGE
    except (UsageError, InvalidRequest) as error:
        cli.say(PROG, f"error: {error}")
        return exitcodes.USAGE
    except (GitopsError, CAError) as error:
        reason = f" ({error.reason})" if isinstance(error, CAError) else ""
        cli.say(PROG, f"error{reason}: {error}")
        return exitcodes.for_error(error)
    except OSError as error:  # a file of the tree or an output that cannot be written
        where = f"{error.filename}: " if error.filename else ""
        cli.say(PROG, f"error: {where}{error.strerror or error}; nothing more was done")
        return exitcodes.FAILED
    if text:
        print(for_terminal(text))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
