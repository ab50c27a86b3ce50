"""Whether the operator serves as a signer at all (``CLIENTCERT_SIGNER``, off by default: it
needs the RBAC the chart grants with ``signer.enabled``), and which LambdaCAs opt in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cacore.config import CAConfig
from cacore.errors import ConfigurationError
from certoperator.settings import PREFIX, ca_config_for

ENV_SIGNER = PREFIX + "SIGNER"
DEFAULT_LIFETIME_DAYS = 30


def signer_enabled(env: Mapping[str, str]) -> bool:
    value = env.get(ENV_SIGNER, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ConfigurationError(f"{ENV_SIGNER}: {value!r} is not a boolean; write true or false")


@dataclass(frozen=True)
class SignerCA:
    """A LambdaCA that serves ``clientcerts.dev/<name>``."""

    name: str
    spec: Mapping[str, Any]
    default_lifetime_days: int
    max_lifetime_days: int

    def config(self) -> CAConfig:
        """The CA connection; ``ConfigurationError`` naming the LambdaCA's field."""
        return ca_config_for(self.name, self.spec)


def _whole(value: object, default: int) -> int:
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default
    )


def signer_ca(name: str, spec: Mapping[str, Any]) -> SignerCA | None:
    """The LambdaCA as a signer, or None when its ``spec.signer.enabled`` is not true."""
    signer = spec.get("signer")
    if not isinstance(signer, Mapping) or signer.get("enabled") is not True:
        return None
    cap = _whole(spec.get("maxLifetimeDays"), 365)
    default = min(_whole(signer.get("defaultLifetimeDays"), DEFAULT_LIFETIME_DAYS), cap)
    return SignerCA(
        name=name, spec=dict(spec), default_lifetime_days=default, max_lifetime_days=cap
    )
