"""The Kubernetes CertificateSigningRequest vocabulary, shared by the operator's signer (which
reads CSRs) and the sidecar's ``kubernetes`` issuer (which makes them): how ``spec.usages`` map to
the CA's purposes and extended key usages, how ``spec.expirationSeconds`` becomes the CA's whole
days, and the CSR object itself.

The CA always sets the key usages digitalSignature and keyEncipherment, so those (and the legacy
"signing") are accepted and change nothing; ``client auth`` / ``server auth`` are its purposes;
four more usages are extended key usages the CA names. Nothing else can be issued.

Lifetime: the CA counts whole days, one at least. ``spec.expirationSeconds`` is rounded *down*,
so a certificate never outlives the request by more than the CA's one-day minimum: 600 s to
86399 s get one day, 36 h one day, 48 h two.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from cacore.request import CertificateRequest

SECONDS_PER_DAY = 86400
CSR_API_VERSION = "certificates.k8s.io/v1"
KEY_USAGES = ("digital signature", "key encipherment", "signing")
PURPOSE_USAGES = {"client auth": "client_auth", "server auth": "server_auth"}
EKU_USAGES = {
    "code signing": "CODE_SIGNING",
    "email protection": "EMAIL_PROTECTION",
    "timestamping": "TIME_STAMPING",
    "ocsp signing": "OCSP_SIGNING",
}
SUPPORTED_USAGES = (*KEY_USAGES, *PURPOSE_USAGES, *EKU_USAGES)


def lifetime_days(expiration_seconds: int | None, default_days: int) -> int:
    """Whole days for ``spec.expirationSeconds`` (rounded down, at least one), or ``default_days``
    when the CSR asks for nothing."""
    if expiration_seconds is None:
        return default_days
    return max(1, expiration_seconds // SECONDS_PER_DAY)


def unsupported_usages(usages: Sequence[str]) -> tuple[str, ...]:
    return tuple(u for u in usages if u not in SUPPORTED_USAGES)


def purposes_of(usages: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(PURPOSE_USAGES[u] for u in usages if u in PURPOSE_USAGES))


def extended_key_usages_of(usages: Sequence[str]) -> tuple[str, ...]:
    return tuple(EKU_USAGES[u] for u in usages if u in EKU_USAGES)


def usages_for(request: CertificateRequest) -> list[str]:
    """``spec.usages`` asking for exactly what ``request`` would get from the CA; ``ValueError``
    naming an extended key usage a CSR cannot express (a dotted OID)."""
    by_eku = {eku: usage for usage, eku in EKU_USAGES.items()}
    by_purpose = {purpose: usage for usage, purpose in PURPOSE_USAGES.items()}
    usages = ["digital signature", "key encipherment"]
    usages += [by_purpose[p] for p in request.purposes]
    for eku in request.extended_key_usages:
        if eku not in by_eku:
            raise ValueError(
                f"{eku} cannot be asked for in a Kubernetes CSR; use one of {', '.join(by_eku)}"
            )
        usages.append(by_eku[eku])
    return usages


def csr_object(
    csr_pem: bytes,
    signer_name: str,
    usages: Sequence[str],
    lifetime_days: int,
    generate_name: str,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A ``certificates.k8s.io/v1`` CertificateSigningRequest for ``csr_pem``."""
    metadata: dict[str, Any] = {"generateName": generate_name}
    if labels:
        metadata["labels"] = dict(labels)
    return {
        "apiVersion": CSR_API_VERSION,
        "kind": "CertificateSigningRequest",
        "metadata": metadata,
        "spec": {
            "request": base64.b64encode(csr_pem).decode("ascii"),
            "signerName": signer_name,
            "usages": list(usages),
            "expirationSeconds": lifetime_days * SECONDS_PER_DAY,
        },
    }
