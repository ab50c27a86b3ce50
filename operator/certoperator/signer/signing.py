"""What the CA is asked for when an approved CSR is signed, and the CSR status the signer writes.

The CA event carries the CSR exactly as the requester made it; the subject and SANs it names are
read from that CSR (the CA ignores SANs inside a CSR, so they must travel in the event) and were
checked against the policy before approval. Usages and lifetime follow ``cacore.kubecsr``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from cryptography import x509

from cacore.csr import requested_sans, subject_fields
from cacore.errors import InvalidRequest
from cacore.kubecsr import (
    SUPPORTED_USAGES,
    extended_key_usages_of,
    purposes_of,
    unsupported_usages,
)
from cacore.request import CertificateRequest, Subject
from certoperator.conditions import format_time
from certoperator.signer.names import (
    AWAITING_APPROVAL,
    CA_INVOKED,
    CA_UNAVAILABLE,
    FAILED,
    ISSUED,
    SIGNING,
)


def ca_request(
    csr: x509.CertificateSigningRequest, usages: Sequence[str], lifetime: int
) -> CertificateRequest:
    """The CA request for an approved CSR; ``InvalidRequest`` naming the CSR's field when the CA
    cannot issue what it asks for."""
    bad = unsupported_usages(usages)
    if bad:
        raise InvalidRequest(
            "spec.usages",
            f"{', '.join(bad)} cannot be issued by the serverless CA; it issues "
            f"{', '.join(SUPPORTED_USAGES)}",
        )
    purposes = purposes_of(usages)
    if not purposes:
        raise InvalidRequest(
            "spec.usages", "must include client auth or server auth (the CA sets one of them)"
        )
    fields = subject_fields(csr)
    if not fields.get("common_name"):
        raise InvalidRequest(
            "spec.request", "the CSR's subject has no common name (CN); the CA requires one"
        )
    return CertificateRequest(
        subject=Subject(**fields),
        sans=requested_sans(csr),
        lifetime_days=lifetime,
        purposes=purposes,
        extended_key_usages=extended_key_usages_of(usages),
    )


# --- status ----------------------------------------------------------------------------------


def condition(type_: str, status: str, reason: str, message: str) -> dict[str, str]:
    """A condition without timestamps: the API server sets lastUpdateTime, and keeps
    lastTransitionTime when a condition of that type already had that status."""
    return {"type": type_, "status": status, "reason": reason, "message": message}


def replace_conditions(
    conditions: Sequence[Mapping[str, Any]], *new: Mapping[str, Any], drop: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """``conditions`` with each of ``new`` replacing the one of its type (appended otherwise) and
    the ``drop`` types removed. Untouched conditions keep their timestamps."""
    replaced = {c["type"] for c in new}
    kept = [dict(c) for c in conditions if c.get("type") not in replaced | set(drop)]
    return [*kept, *(dict(c) for c in new)]


def marker(attempt: int, lambdaca: str, now: datetime) -> dict[str, str]:
    """Written before each CA call. After a restart it says a call may have reached the CA: the
    next attempt sends the same CSR, and the CA's key-reuse guard keeps it from being certified
    twice."""
    return condition(
        SIGNING,
        "True",
        CA_INVOKED,
        f"attempt {attempt}: asked LambdaCA {lambdaca} to sign at {format_time(now)}",
    )


def marker_unavailable(attempt: int, error: str, retry_at: datetime) -> dict[str, str]:
    return condition(
        SIGNING,
        "True",
        CA_UNAVAILABLE,
        f"attempt {attempt}: {error}; trying again at {format_time(retry_at)}",
    )


def marker_issued(attempt: int, serial: int, not_after: datetime) -> dict[str, str]:
    return condition(
        SIGNING,
        "False",
        ISSUED,
        f"attempt {attempt}: certificate {serial} issued, valid until {format_time(not_after)}",
    )


def failed(reason: str, message: str) -> dict[str, str]:
    return condition(FAILED, "True", reason, message)


def signed_status(
    conditions: Sequence[Mapping[str, Any]], chain_pem: bytes, done: Mapping[str, Any]
) -> dict[str, Any]:
    """``status`` with the certificate (leaf then issuing CA) and the marker closed."""
    return {
        "certificate": base64.b64encode(chain_pem).decode("ascii"),
        "conditions": replace_conditions(conditions, done, drop=(AWAITING_APPROVAL,)),
    }
