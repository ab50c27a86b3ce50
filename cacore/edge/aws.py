"""The one AWS session of the project: every tool that talks to AWS (the Lambda client, the GitOps
tool's DynamoDB reads) gets its boto3 session here, so a profile, a role to assume and a region
mean the same everywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cacore.config import AWSAccess


def session(access: AWSAccess, base_factory: Callable[[], Any] | None = None) -> Any:
    """A boto3 session for ``access``: its profile (or the default chain), then, with a role ARN,
    credentials from STS AssumeRole that refresh themselves before they expire, so a sidecar
    running for months keeps working."""
    import boto3  # boto3 costs ~0.3 s to import; only pay it when a call is made

    base = base_factory() if base_factory else boto3.session.Session(profile_name=access.profile)
    if access.role_arn:
        return _assume_role_session(base, access)
    return base


def _assume_role_session(base: Any, access: AWSAccess) -> Any:
    import boto3
    import botocore.session
    from botocore.credentials import RefreshableCredentials

    sts = base.client("sts", region_name=access.region or base.region_name)

    def refresh() -> dict[str, str]:
        creds = sts.assume_role(RoleArn=access.role_arn, RoleSessionName=access.role_session_name)[
            "Credentials"
        ]
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": creds["Expiration"].isoformat(),
        }

    core = botocore.session.get_session()
    core._credentials = RefreshableCredentials.create_from_metadata(  # noqa: SLF001
        metadata=refresh(), refresh_using=refresh, method="sts-assume-role"
    )
    return boto3.session.Session(botocore_session=core, region_name=base.region_name)
