"""A CertificateSigningRequest object (the API's JSON) as data: what was asked, by whom (as the
API server recorded it), and where it stands (conditions, certificate)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from certoperator.signer.identity import Requester, requester_of
from certoperator.signer.names import (
    APPROVED,
    AWAITING_APPROVAL,
    DENIED,
    FAILED,
    SIGNING,
    lambdaca_of,
)

# The signing marker's message starts "attempt N:" (``signing.marker``).
_ATTEMPT = re.compile(r"^attempt (\d+):")


@dataclass(frozen=True)
class CsrView:
    name: str
    uid: str
    resource_version: str
    signer_name: str
    request_pem: bytes  # the PEM the requester made, byte for byte
    usages: tuple[str, ...]
    expiration_seconds: int | None
    requester: Requester
    conditions: tuple[Mapping[str, Any], ...] = ()
    certificate: bytes = b""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def lambdaca(self) -> str | None:
        return lambdaca_of(self.signer_name)

    def condition(self, type_: str) -> Mapping[str, Any] | None:
        return next((c for c in self.conditions if c.get("type") == type_), None)

    @property
    def approved(self) -> bool:
        return self.condition(APPROVED) is not None

    @property
    def denied(self) -> bool:
        return self.condition(DENIED) is not None

    @property
    def failed(self) -> bool:
        return self.condition(FAILED) is not None

    @property
    def decided(self) -> bool:
        """Approved or denied: the approver has nothing more to do."""
        return self.approved or self.denied

    @property
    def done(self) -> bool:
        """Nothing is left for the signer: signed, failed or denied."""
        return bool(self.certificate) or self.failed or self.denied

    @property
    def attempts(self) -> int:
        """CA calls already begun for this CSR, from the signing marker (survives restarts)."""
        marker = self.condition(SIGNING)
        if marker is None:
            return 0
        found = _ATTEMPT.match(str(marker.get("message", "")))
        return int(found.group(1)) if found else 1

    @property
    def awaiting_approval(self) -> Mapping[str, Any] | None:
        return self.condition(AWAITING_APPROVAL)


def _request_pem(spec: Mapping[str, Any]) -> bytes:
    try:
        return base64.b64decode(spec.get("request") or "", validate=True)
    except (binascii.Error, ValueError):
        return b""


def view(obj: Mapping[str, Any]) -> CsrView:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    expiration = spec.get("expirationSeconds")
    try:
        certificate = base64.b64decode(status.get("certificate") or "")
    except (binascii.Error, ValueError):
        certificate = b""
    extra = {k: tuple(v or ()) for k, v in (spec.get("extra") or {}).items()}
    return CsrView(
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        resource_version=str(meta.get("resourceVersion", "")),
        signer_name=str(spec.get("signerName", "")),
        request_pem=_request_pem(spec),
        usages=tuple(spec.get("usages") or ()),
        expiration_seconds=expiration if isinstance(expiration, int) else None,
        requester=requester_of(str(spec.get("username", "")), extra),
        conditions=tuple(status.get("conditions") or ()),
        certificate=certificate,
        raw=obj,
    )
