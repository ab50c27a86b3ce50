"""The signer's Kubernetes API calls, on the operator's one aiohttp session (``kube.KubeApi``'s
transport): CSRs and their approval and status subresources, the labels selectors need, the
trust bundle objects, and events. Writes carry the resourceVersion they were decided on, so a
decision made on stale data fails with 409 instead of overwriting someone else's."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from certoperator.conditions import format_time
from certoperator.kube import KubeApi, KubeApiError
from certoperator.signer.names import TRUST_CONFIGMAP

CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
CTB_GROUP_VERSION = "/apis/certificates.k8s.io/v1beta1"
CTBS = f"{CTB_GROUP_VERSION}/clustertrustbundles"
EVENT_MESSAGE_LIMIT = 1024
COMPONENT = "clientcert-operator"

__all__ = ["KubeApiError", "SignerApi"]


class SignerApi(KubeApi):
    async def get_csr(self, name: str) -> dict | None:
        return await self._request("GET", f"{CSRS}/{quote(name)}")

    async def list_csrs(self, signer: str) -> list[dict]:
        query = urlencode({"fieldSelector": f"spec.signerName={signer}"})
        found = await self._request("GET", f"{CSRS}?{query}")
        return list((found or {}).get("items") or [])

    async def _put(self, path: str, body: Mapping[str, Any]) -> dict:
        written = await self._request("PUT", path, body)
        if written is None:
            raise KubeApiError(404, "PUT", path, "not found")
        return written

    async def update_approval(self, csr: Mapping[str, Any]) -> dict:
        """Approve or deny (the ``approval`` subresource; needs ``approve`` on the signer)."""
        return await self._put(f"{CSRS}/{quote(csr['metadata']['name'])}/approval", csr)

    async def update_status(self, csr: Mapping[str, Any]) -> dict:
        """Conditions and the certificate (the ``status`` subresource; needs ``sign``)."""
        return await self._put(f"{CSRS}/{quote(csr['metadata']['name'])}/status", csr)

    async def labels(self, path: str) -> dict[str, str] | None:
        found = await self._request("GET", path)
        return None if found is None else dict((found.get("metadata") or {}).get("labels") or {})

    async def namespace_labels(self, namespace: str) -> dict[str, str] | None:
        return await self.labels(f"/api/v1/namespaces/{quote(namespace)}")

    async def service_account_labels(self, namespace: str, name: str) -> dict[str, str] | None:
        return await self.labels(
            f"/api/v1/namespaces/{quote(namespace)}/serviceaccounts/{quote(name)}"
        )

    # --- trust bundle ------------------------------------------------------------------------

    async def get_trust_configmap(self, namespace: str) -> dict | None:
        return await self._request(
            "GET", f"/api/v1/namespaces/{quote(namespace)}/configmaps/{TRUST_CONFIGMAP}"
        )

    async def list_trust_configmaps(self) -> list[dict]:
        """Every namespace's bundle ConfigMap: a list by name, which RBAC can restrict to it."""
        query = urlencode({"fieldSelector": f"metadata.name={TRUST_CONFIGMAP}"})
        found = await self._request("GET", f"/api/v1/configmaps?{query}")
        return list((found or {}).get("items") or [])

    async def write_trust_configmap(self, body: Mapping[str, Any]) -> dict:
        """Create, or replace at the resourceVersion the body carries."""
        namespace = body["metadata"]["namespace"]
        collection = f"/api/v1/namespaces/{quote(namespace)}/configmaps"
        if body["metadata"].get("resourceVersion"):
            return await self._put(f"{collection}/{TRUST_CONFIGMAP}", body)
        created = await self._request("POST", collection, body)
        assert created is not None
        return created

    async def cluster_trust_bundles_served(self) -> bool:
        found = await self._request("GET", CTB_GROUP_VERSION)
        resources = (found or {}).get("resources") or []
        return any(r.get("name") == "clustertrustbundles" for r in resources)

    async def get_cluster_trust_bundle(self, name: str) -> dict | None:
        return await self._request("GET", f"{CTBS}/{quote(name)}")

    async def write_cluster_trust_bundle(self, body: Mapping[str, Any]) -> dict:
        if body["metadata"].get("resourceVersion"):
            return await self._put(f"{CTBS}/{quote(body['metadata']['name'])}", body)
        created = await self._request("POST", CTBS, body)
        assert created is not None
        return created

    # --- events ------------------------------------------------------------------------------

    async def post_object_event(
        self,
        involved: Mapping[str, Any],
        kind: str,
        reason: str,
        message: str,
        warning: bool = False,
    ) -> None:
        """A core/v1 event about ``involved`` (a CSR: in ``default``, where ``kubectl describe
        csr`` finds events of cluster-scoped objects; a Pod: in its namespace)."""
        meta = involved.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        now = format_time(datetime.now(UTC))
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name', 'csr')}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion", "v1"),
                "kind": kind,
                "name": meta.get("name"),
                "namespace": meta.get("namespace") or "",
                "uid": meta.get("uid"),
            },
            "reason": reason,
            "message": message[:EVENT_MESSAGE_LIMIT],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": socket.gethostname(),
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self._request("POST", f"/api/v1/namespaces/{quote(namespace)}/events", body)
