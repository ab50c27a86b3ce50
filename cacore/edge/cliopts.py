"""The AWS and CA connection flags, the same in every command-line tool of the project."""

from __future__ import annotations

import argparse
import os

from cacore.config import DEFAULT_FUNCTION, AWSAccess, CAConfig, validate_access, validate_config
from cacore.request import DEFAULT_MAX_LIFETIME_DAYS


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
    group.add_argument(
        "--max-lifetime-days",
        type=int,
        default=int(os.environ.get("CA_MAX_LIFETIME_DAYS") or DEFAULT_MAX_LIFETIME_DAYS),
        metavar="DAYS",
        help="the CA's maximum lifetime (its MAX_CERT_LIFETIME; default 365, env "
        "CA_MAX_LIFETIME_DAYS): longer requests are refused, as the CA would cap them",
    )
    group.add_argument(
        "--endpoint-url",
        default=None,
        help="Lambda endpoint, e.g. http://127.0.0.1:9000 for the local CA "
        "(boto3 also reads AWS_ENDPOINT_URL_LAMBDA)",
    )


def access_from_args(args: argparse.Namespace) -> AWSAccess:
    return validate_access(
        AWSAccess(region=args.region, profile=args.profile, role_arn=args.role_arn), "--"
    )


def config_from_args(args: argparse.Namespace, prefix: str = "") -> CAConfig:
    return validate_config(
        CAConfig(
            function=args.function,
            region=args.region,
            profile=args.profile,
            role_arn=args.role_arn,
            endpoint_url=args.endpoint_url,
            max_lifetime_days=args.max_lifetime_days,
        ),
        prefix,
    )
