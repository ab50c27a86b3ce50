"""Where the CA is and who we are when we call it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from cacore.errors import ConfigurationError
from cacore.request import DEFAULT_MAX_LIFETIME_DAYS

_FUNCTION_ARN = re.compile(
    r"^arn:aws[a-z-]*:lambda:([a-z0-9-]+):\d{12}:function:[A-Za-z0-9_-]+(:[\w$-]+)?$"
)
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
# AWS region names: lower-case words and a number (eu-west-2, us-gov-west-1, cn-north-1).
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")

DEFAULT_FUNCTION = "serverless-tls-cert-dev"


@dataclass(frozen=True)
class AWSAccess:
    """Who we are in AWS: a profile (or the default credential chain), optionally a role to
    assume, and the region. Shared by every AWS call of every tool."""

    region: str | None = None
    profile: str | None = None
    role_arn: str | None = None
    role_session_name: str = "lambda-client-certs"


def validate_access(access: AWSAccess, prefix: str = "") -> AWSAccess:
    if access.region is not None and not _REGION.match(access.region):
        raise ConfigurationError(
            f"{prefix}region: {access.region!r} is not an AWS region name such as eu-west-2"
        )
    if access.role_arn and not _ROLE_ARN.match(access.role_arn):
        raise ConfigurationError(
            f"{prefix}role_arn: {access.role_arn!r} is not an IAM role ARN "
            "(arn:aws:iam::<account>:role/<name>)"
        )
    return access


@dataclass(frozen=True)
class CAConfig:
    function: str = DEFAULT_FUNCTION
    region: str | None = None
    profile: str | None = None
    role_arn: str | None = None
    role_session_name: str = "lambda-client-certs"
    endpoint_url: str | None = None
    # Upstream's own client waits up to 5 minutes and never retries: a re-invoked slow Lambda
    # trips the CA's key-reuse guard.
    read_timeout: float = 300.0
    connect_timeout: float = 10.0
    # The CA's MAX_CERT_LIFETIME (365 unless its deployment says otherwise).
    max_lifetime_days: int = DEFAULT_MAX_LIFETIME_DAYS

    @property
    def access(self) -> AWSAccess:
        return AWSAccess(self.region, self.profile, self.role_arn, self.role_session_name)

    @property
    def function_region(self) -> str | None:
        """The region named inside a function ARN, which wins over any configured region."""
        match = _FUNCTION_ARN.match(self.function)
        return match.group(1) if match else None


def validate_config(config: CAConfig, prefix: str = "") -> CAConfig:
    """Refuse settings that cannot work; ``prefix`` names fields as the caller's users know them."""
    if not (_FUNCTION_NAME.match(config.function) or _FUNCTION_ARN.match(config.function)):
        raise ConfigurationError(
            f"{prefix}function: {config.function!r} is neither a function name (e.g. "
            "serverless-tls-cert-dev) nor a function ARN"
        )
    validate_access(config.access, prefix)
    check_endpoint_url(config.endpoint_url, f"{prefix}endpoint_url")
    if config.max_lifetime_days < 1:
        raise ConfigurationError(
            f"{prefix}max_lifetime_days: {config.max_lifetime_days} must be at least 1 "
            "(the CA's MAX_CERT_LIFETIME, 365 by default)"
        )
    if config.read_timeout <= 0 or config.connect_timeout <= 0:
        raise ConfigurationError(f"{prefix}timeouts must be positive")
    return config


def check_endpoint_url(url: str | None, field: str) -> str | None:
    """An AWS endpoint URL (a local CA, moto, a VPC endpoint) whose host and port parse: a bad
    one would fail every call instead of the start."""
    if url and not _usable_url(url):
        raise ConfigurationError(
            f"{field}: {url!r} must be an http(s) URL with a port from 1 to 65535, such as "
            "http://127.0.0.1:9000"
        )
    return url


def _usable_url(url: str) -> bool:
    if not re.match(r"^https?://[^/\s]+", url):
        return False
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port that is no number or out of range
    except ValueError:  # also an unclosed IPv6 bracket
        return False
    return bool(parts.hostname) and port != 0
