"""Which CA a ClientCertificate's spec names, and what that CA allows: pure functions of the
spec, the operator's settings and the LambdaCAs known (a kopf index, or a plain mapping)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cacore.config import CAConfig
from cacore.errors import InvalidRequest
from certoperator.settings import OperatorSettings, ca_config_for
from certoperator.spec import CertificateSpec

DEFAULT_ISSUER_LABEL = "(default)"


def resolve_issuer(
    cert: CertificateSpec, settings: OperatorSettings, lambdacas: Mapping[str, Any]
) -> tuple[str, CAConfig]:
    """The issuer's name and CA settings; ``InvalidRequest`` naming the field when none fits."""
    name = cert.issuer or settings.default_issuer
    if name is None:
        if settings.default_ca is None:
            raise InvalidRequest(
                "spec.issuerRef.name",
                "is empty and the operator has no default issuer; name a LambdaCA",
            )
        return DEFAULT_ISSUER_LABEL, settings.default_ca
    found = lambdacas.get(name)
    if not found:
        raise InvalidRequest("spec.issuerRef.name", f"no LambdaCA named {name!r} exists")
    # A kopf index holds a store of values per key; a plain mapping (unit tests) the spec itself.
    spec = found if isinstance(found, Mapping) else next(iter(found))
    return name, ca_config_for(name, spec)


def check_lifetime(cert: CertificateSpec, issuer: str, config: CAConfig) -> None:
    """The spec's lifetime against its issuer's cap (the CA's MAX_CERT_LIFETIME)."""
    cap = config.max_lifetime_days
    if cert.request.lifetime_days > cap:
        raise InvalidRequest(
            "spec.lifetimeDays",
            f"is {cert.request.lifetime_days} days; the issuer {issuer} allows 1 to {cap} "
            "(its maxLifetimeDays, the CA's MAX_CERT_LIFETIME)",
        )
