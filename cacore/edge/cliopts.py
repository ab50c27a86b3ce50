"""The CA connection flags, the same in every command-line tool of the project."""

from __future__ import annotations

import argparse
import os

from cacore.config import DEFAULT_FUNCTION, CAConfig, validate_config


def add_ca_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("certificate authority (the serverless CA's TLS Lambda)")
    group.add_argument(
        "--function",
        default=os.environ.get("CA_FUNCTION", DEFAULT_FUNCTION),
        help="function name or ARN, e.g. serverless-tls-cert-prod (env CA_FUNCTION)",
    )
    group.add_argument(
        "--region",
        default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        help="AWS region of the function (env AWS_REGION)",
    )
    group.add_argument("--profile", default=os.environ.get("AWS_PROFILE"), help="AWS profile")
    group.add_argument(
        "--role-arn",
        default=os.environ.get("CA_ROLE_ARN"),
        help="IAM role to assume before invoking (env CA_ROLE_ARN)",
    )
    group.add_argument(
        "--endpoint-url",
        default=None,
        help="Lambda endpoint, e.g. http://127.0.0.1:9000 for the local CA "
        "(boto3 also reads AWS_ENDPOINT_URL_LAMBDA)",
    )


def config_from_args(args: argparse.Namespace) -> CAConfig:
    return validate_config(
        CAConfig(
            function=args.function,
            region=args.region,
            profile=args.profile,
            role_arn=args.role_arn,
            endpoint_url=args.endpoint_url,
        )
    )
