"""Settings of one local CA instance, with the documented defaults."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_FUNCTION_NAME = "serverless-tls-cert-dev"
DEFAULT_REGION = "us-east-1"
# Loopback-only example credentials; documented in docs/local-ca.md.
DEFAULT_ACCESS_KEY_ID = "LOCALCAEXAMPLEKEY000"
DEFAULT_SECRET_ACCESS_KEY = "local-ca-example-secret"  # noqa: S105 - public example value
DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_MAX_LIFETIME_DAYS = 365
DEFAULT_DYNAMODB_TABLE = "ServerlessCADev"
DEFAULT_INTERNAL_BUCKET = "serverless-ca-internal-dev"
DEFAULT_MAX_CONNECTIONS = 64
DEFAULT_IDLE_TIMEOUT = 60.0
DEFAULT_REQUEST_TIMEOUT = 30.0
MAX_LIFETIME_CAP_DAYS = 36500  # a longer validity overflows date arithmetic before year 9999


class ConfigError(ValueError):
    """A setting is unusable; the message names the field and the fix."""


@dataclass(frozen=True)
class Config:
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    function_name: str = DEFAULT_FUNCTION_NAME
    region: str = DEFAULT_REGION
    account_id: str = DEFAULT_ACCOUNT_ID
    # access key id -> secret; every pair is authorised to invoke.
    credentials: dict[str, str] = field(
        default_factory=lambda: {DEFAULT_ACCESS_KEY_ID: DEFAULT_SECRET_ACCESS_KEY}
    )
    # access key id -> secret; authenticated but answered with AccessDeniedException.
    denied_credentials: dict[str, str] = field(default_factory=dict)
    max_lifetime_days: int = DEFAULT_MAX_LIFETIME_DAYS
    extension_allowlist: tuple[str, ...] = ()
    dynamodb_endpoint: str | None = None
    dynamodb_table: str = DEFAULT_DYNAMODB_TABLE
    csr_dir: Path | None = None
    internal_bucket: str = DEFAULT_INTERNAL_BUCKET
    allow_remote: bool = False
    # Connections served at once; more wait in the listen backlog.
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    # Seconds a kept-alive connection may wait for its next request.
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    # Seconds from a request's first byte to its last (slow senders are cut off).
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    # moto's server playing STS: temporary credentials it issued are accepted (localca.sts).
    sts_endpoint: str | None = None

    def validate(self) -> None:
        if not _FUNCTION_NAME.match(self.function_name):
            raise ConfigError(
                f"function_name {self.function_name!r} is invalid: give a plain name such as "
                f"{DEFAULT_FUNCTION_NAME}"
            )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is out of range: use 0 (any free port) to 65535")
        if not 1 <= self.max_lifetime_days <= MAX_LIFETIME_CAP_DAYS:
            raise ConfigError(
                f"max_lifetime_days {self.max_lifetime_days} is out of range: use 1 to "
                f"{MAX_LIFETIME_CAP_DAYS} days"
            )
        if not 1 <= self.max_connections <= 10000:
            raise ConfigError(
                f"max_connections {self.max_connections} is out of range: use 1 to 10000"
            )
        for name in ("idle_timeout", "request_timeout"):
            seconds = getattr(self, name)
            if not 0.1 <= seconds <= 3600:
                raise ConfigError(f"{name} {seconds} is out of range: use 0.1 to 3600 seconds")
        if not self.credentials:
            raise ConfigError("credentials is empty: give at least one access key id and secret")
        if not _REGION.match(self.region):
            raise ConfigError(f"region {self.region!r} is invalid: give one such as us-east-1")
        for name in ("dynamodb_endpoint", "sts_endpoint"):
            url = getattr(self, name)
            if url is not None and not _usable_url(url):
                raise ConfigError(
                    f"{name} {url!r} is not an http(s) URL with a port from 1 to 65535: give "
                    "one such as http://127.0.0.1:5000"
                )
        if self.csr_dir is not None and self.csr_dir.exists() and not self.csr_dir.is_dir():
            raise ConfigError(f"csr_dir {self.csr_dir} is not a directory: give the CSR folder")
        if not self.allow_remote and not is_loopback(self.host):
            raise ConfigError(
                f"host {self.host!r} is not a loopback address: use 127.0.0.1 or pass "
                "--allow-remote"
            )


# Lambda's own rules for a function name, and the shape of AWS region names.
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


def _usable_url(url: str) -> bool:
    """An http(s) URL whose host and port parse: a bad one would fail every request later, as
    an internal error, instead of the start."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port that is no number or out of range
    except ValueError:  # also an unclosed IPv6 bracket
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port != 0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
