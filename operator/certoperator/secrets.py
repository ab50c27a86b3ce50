"""What the operator writes into a Secret, and how it reads one back: the Secret's body for an
issuance, a Secret's inspected summary, and whether the watch has shown our own write yet."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cacore.credentials import credential_files
from cacore.edge.client import Issuance
from cacore.keys import private_key_pem
from certoperator.api import (
    ANNOTATION_CERTIFICATE,
    ANNOTATION_ISSUED_AT,
    ANNOTATION_ISSUER,
    ANNOTATION_SERIAL,
    ANNOTATION_SPEC_HASH,
    API_VERSION,
    CERT_KIND,
    LABEL_CERTIFICATE,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    SECRET_TYPE,
)
from certoperator.conditions import format_time
from certoperator.kube import secret_view
from certoperator.policy import SecretFacts, inspect_secret
from certoperator.spec import CertificateSpec


@dataclass(frozen=True)
class Written:
    """A Secret this process wrote: its version, what it holds, and when."""

    version: str
    facts: SecretFacts | None
    at: float


def secret_body(
    meta: Mapping[str, Any],
    cert: CertificateSpec,
    issuance: Issuance,
    digest: str,
    issuer: str,
    issued_at: datetime,
) -> dict[str, Any]:
    files = credential_files(private_key_pem(issuance.key), issuance.certificate)
    labels = {**cert.labels, LABEL_CERTIFICATE: meta["name"], LABEL_MANAGED_BY: MANAGED_BY}
    annotations = {
        **cert.annotations,
        ANNOTATION_CERTIFICATE: meta["name"],
        ANNOTATION_SPEC_HASH: digest,
        ANNOTATION_ISSUER: issuer,
        ANNOTATION_SERIAL: str(issuance.certificate.serial),
        ANNOTATION_ISSUED_AT: format_time(issued_at),
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SECRET_TYPE,
        "metadata": {
            "name": cert.secret_name,
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": CERT_KIND,
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                }
            ],
        },
        "data": {name: base64.b64encode(content).decode() for name, content in files.items()},
    }


def not_older(seen: str | None, version: str) -> bool:
    """Whether the watch has shown ``version`` of an object or a later one. resourceVersions
    are etcd revisions, so numbers in practice; anything else is never assumed newer."""
    if seen is None:
        return False
    if seen == version:
        return True
    return seen.isdigit() and version.isdigit() and int(seen) > int(version)


def secret_facts(secret: Mapping[str, Any]) -> SecretFacts:
    view = secret_view(secret)
    assert view is not None
    return inspect_secret(view)
