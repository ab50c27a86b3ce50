"""The trust bundle Pods read instead of asking AWS: the issuing then the root CA certificate (PEM)
of each LambdaCA that signs, taken from the CA's own answers (the contract's ``ca_chain_only`` is
broken in the real CA, so no call is spent on it).

Published as one ConfigMap, ``clientcert-ca-bundle``, in every namespace whose ServiceAccounts
use a signer (one key per LambdaCA, ``<LambdaCA>.crt``), and as a ClusterTrustBundle per signer
(``clientcerts.dev:<LambdaCA>:bundle``) where the API server serves that API, which kubelets
project into Pods with a ``clusterTrustBundle`` volume source."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from certoperator.api import LABEL_MANAGED_BY, MANAGED_BY
from certoperator.signer.names import (
    LABEL_TRUST_BUNDLE,
    TRUST_CONFIGMAP,
    cluster_trust_bundle_name,
    signer_name,
    trust_key,
)

CTB_API_VERSION = "certificates.k8s.io/v1beta1"
_LABELS = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_TRUST_BUNDLE: "true"}


def bundle_pem(issuing_ca_pem: bytes, root_ca_pem: bytes) -> str:
    return (issuing_ca_pem + root_ca_pem).decode("ascii")


def configmap_data(
    current: Mapping[str, Any] | None, lambdaca: str, pem: str
) -> dict[str, str] | None:
    """The ConfigMap's new data with ``lambdaca``'s bundle, or None when it already holds it.
    Other LambdaCAs' keys are kept."""
    data = dict((current or {}).get("data") or {})
    if data.get(trust_key(lambdaca)) == pem:
        return None
    data[trust_key(lambdaca)] = pem
    return data


def configmap_body(
    namespace: str, data: Mapping[str, str], resource_version: str | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": TRUST_CONFIGMAP, "namespace": namespace, "labels": _LABELS}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": dict(data)}


def cluster_trust_bundle_body(
    lambdaca: str, pem: str, resource_version: str | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": cluster_trust_bundle_name(lambdaca), "labels": _LABELS}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": CTB_API_VERSION,
        "kind": "ClusterTrustBundle",
        "metadata": metadata,
        "spec": {"signerName": signer_name(lambdaca), "trustBundle": pem},
    }
