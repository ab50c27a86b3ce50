"""The AWS and CA connection flags, the same in every command-line tool of the project."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import NoReturn

from cacore import exitcodes
from cacore.config import DEFAULT_FUNCTION, AWSAccess, CAConfig, validate_access, validate_config
from cacore.errors import ConfigurationError
from cacore.request import DEFAULT_MAX_LIFETIME_DAYS
from cacore.text import printable

# The longest a command waits for the CA to answer one request, unless --timeout says otherwise:
# upstream's own client waits 300 s (a slow Lambda must not be invoked twice).
DEFAULT_TIMEOUT_SECONDS = 300.0


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the problem and where help is (exit 2),
    not the whole usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(
            exitcodes.USAGE,
            f"{self.prog}: error: {printable(message)} (see {self.prog} --help)\n",
        )


def bounded(
    kind: Callable[[str], float], low: float, high: float, what: str, env: str = ""
) -> Callable[[str], float]:
    """An argparse ``type``: a number from ``low`` to ``high``, with a message naming the
    variable when the value came from the environment (``env``)."""

    def parse(text: str) -> float:
        source = f" (from {env})" if env and os.environ.get(env) == text else ""
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}{source} is not {what}") from None
        if not low <= value <= high or value != value:
            raise argparse.ArgumentTypeError(
                f"{text!r}{source} is out of range; use {low:g} to {high:g}"
            )
        return value

    parse.__name__ = what  # argparse names the type in some messages
    return parse


def env_default(name: str, default: str) -> str:
    """A flag's default from the environment: the text, parsed by the flag's type like a value
    typed on the command line (so a bad variable is a one-line usage error, not a crash)."""
    return os.environ.get(name) or default


# A core configuration field -> the flag that sets it, for messages.
CONFIG_FLAGS = {
    "function": "--function",
    # The environment sets these too: a bad AWS_REGION must be recognisable as such.
    "region": "--region (or AWS_REGION)",
    "profile": "--profile (or AWS_PROFILE)",
    "role_arn": "--role-arn",
    "endpoint_url": "--endpoint-url (or AWS_ENDPOINT_URL_LAMBDA)",
    "dynamodb_endpoint_url": "--dynamodb-endpoint-url (or AWS_ENDPOINT_URL_DYNAMODB)",
    "max_lifetime_days": "--max-lifetime-days",
    "timeouts": "--timeout",
    "credentials": "AWS credentials",
}


def as_flags(error: ConfigurationError) -> str:
    """The error's message with the core's field name replaced by the flag a user types."""
    field, sep, rest = error.message.partition(": ")
    field = field.removeprefix("--").replace("-", "_")
    if sep and field in CONFIG_FLAGS:
        return f"{CONFIG_FLAGS[field]}: {rest}"
    return error.message


def add_aws_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """``--region``, ``--profile``, ``--role-arn``: who we are in AWS, for every AWS call."""
    group = parser.add_argument_group("AWS identity (every AWS call of this command)")
    group.add_argument(
        "--region",
        default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        help="AWS region (env AWS_REGION)",
    )
    group.add_argument("--profile", default=os.environ.get("AWS_PROFILE"), help="AWS profile")
    group.add_argument(
        "--role-arn",
        default=os.environ.get("CA_ROLE_ARN"),
        help="IAM role to assume first, refreshed before expiry (env CA_ROLE_ARN)",
    )
    return group


def add_ca_arguments(parser: argparse.ArgumentParser) -> None:
    add_aws_arguments(parser)
    group = parser.add_argument_group("certificate authority (the serverless CA's TLS Lambda)")
    group.add_argument(
        "--function",
        default=os.environ.get("CA_FUNCTION", DEFAULT_FUNCTION),
        help="function name or ARN, e.g. serverless-tls-cert-prod (env CA_FUNCTION)",
    )
    add_max_lifetime_argument(
        group,
        "the CA's maximum lifetime (its MAX_CERT_LIFETIME; default 365, env "
        "CA_MAX_LIFETIME_DAYS): longer requests are refused, as the CA would cap them",
    )
    group.add_argument(
        "--timeout",
        type=bounded(float, 1, 3600, "a number of seconds", "CA_TIMEOUT"),
        default=env_default("CA_TIMEOUT", f"{DEFAULT_TIMEOUT_SECONDS:g}"),
        metavar="SECONDS",
        help="longest wait for the CA to answer one request (default 300, env CA_TIMEOUT); "
        "the CA may still issue after it",
    )
    group.add_argument(
        "--endpoint-url",
        # Read here rather than left to boto3, so a bad value is refused before anything else.
        default=os.environ.get("AWS_ENDPOINT_URL_LAMBDA") or os.environ.get("AWS_ENDPOINT_URL"),
        help="Lambda endpoint, e.g. http://127.0.0.1:9000 for the local CA "
        "(env AWS_ENDPOINT_URL_LAMBDA)",
    )


def add_max_lifetime_argument(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, help_text: str
) -> None:
    parser.add_argument(
        "--max-lifetime-days",
        type=bounded(int, 1, 36500, "a whole number of days", "CA_MAX_LIFETIME_DAYS"),
        default=env_default("CA_MAX_LIFETIME_DAYS", str(DEFAULT_MAX_LIFETIME_DAYS)),
        metavar="DAYS",
        help=help_text,
    )


def access_from_args(args: argparse.Namespace) -> AWSAccess:
    return validate_access(
        AWSAccess(region=args.region, profile=args.profile, role_arn=args.role_arn)
    )


def config_from_args(args: argparse.Namespace, prefix: str = "") -> CAConfig:
    return validate_config(
        CAConfig(
            function=args.function,
            region=args.region,
            profile=args.profile,
            role_arn=args.role_arn,
            endpoint_url=args.endpoint_url,
            max_lifetime_days=int(args.max_lifetime_days),
            read_timeout=float(getattr(args, "timeout", DEFAULT_TIMEOUT_SECONDS)),
        ),
        prefix,
    )
