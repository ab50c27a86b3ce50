"""Kubernetes API calls beyond kopf's own (Secrets, the status subresource, namespace phase),
made on kopf's aiohttp session: no second client, no threads, one bounded connection pool.

The official ``kubernetes`` client is deliberately not used: loading it costs ~43 MB of RSS
(every model class) for six REST calls.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from certoperator.api import CERT_PLURAL, GROUP, VERSION
from certoperator.policy import SecretView

NAMESPACE_CACHE_SECONDS = 5.0
_JSON = "application/json"
_MERGE_PATCH = "application/merge-patch+json"


class KubeApiError(Exception):
    """The API server refused a call; ``status`` is the HTTP status."""

    def __init__(self, status: int, method: str, path: str, message: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status


def in_cluster_server(environ: Mapping[str, str]) -> str | None:
    """The API server as client-go's rest.InClusterConfig finds it: the `kubernetes` Service's
    address from the variables the kubelet sets in every container. kopf's own ServiceAccount
    login names https://kubernetes.default.svc, which needs cluster DNS to be up."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


class Connection:
    """Where the API server is and the session to reach it; the login handler refreshes it when
    kopf logs in again (a rotated ServiceAccount token)."""

    def __init__(self) -> None:
        self.server: str | None = None
        self.session: Any = None  # aiohttp.ClientSession

    def set(self, server: str, session: Any) -> None:
        self.server, self.session = server.rstrip("/"), session


class KubeApi:
    def __init__(self, connection: Connection, clock: Callable[[], float] = time.monotonic) -> None:
        self._connection = connection
        self._clock = clock
        self._active_namespaces: dict[str, float] = {}

    async def _request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        content_type: str = _JSON,
    ) -> dict | None:
        """The response's JSON, or None for 404; ``KubeApiError`` for other failures."""
        conn = self._connection
        if conn.session is None or conn.server is None:
            raise KubeApiError(0, method, path, "not logged in to the API server yet")
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type, "Accept": _JSON}
        async with conn.session.request(
            method, conn.server + path, data=data, headers=headers
        ) as response:
            if response.status == 404:
                return None
            text = await response.text()
            if response.status >= 400:
                try:
                    message = json.loads(text).get("message", text)
                except ValueError:
                    message = text
                raise KubeApiError(response.status, method, path, message[:500])
            return json.loads(text) if text else {}

    async def get_secret(self, namespace: str, name: str) -> dict | None:
        return await self._request("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")

    async def put_secret(self, namespace: str, body: Mapping[str, Any]) -> dict:
        """Create the Secret, or overwrite it unconditionally: once a certificate is issued,
        losing the write to a conflict would cost another CA invocation."""
        name = body["metadata"]["name"]
        collection = f"/api/v1/namespaces/{namespace}/secrets"
        try:
            created = await self._request("POST", collection, body)
        except KubeApiError as error:
            if error.status != 409:
                raise
        else:
            assert created is not None
            return created
        replaced = await self._request("PUT", f"{collection}/{name}", body)
        if replaced is None:  # deleted between the two calls
            return await self.put_secret(namespace, body)
        return replaced

    async def patch_secret_metadata(
        self, namespace: str, name: str, labels: Mapping[str, str], annotations: Mapping[str, str]
    ) -> None:
        patch = {"metadata": {"labels": dict(labels), "annotations": dict(annotations)}}
        path = f"/api/v1/namespaces/{namespace}/secrets/{name}"
        await self._request("PATCH", path, patch, _MERGE_PATCH)

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """A JSON merge patch of the status subresource (``None`` values delete fields)."""
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{CERT_PLURAL}/{name}/status"
        await self._request("PATCH", path, {"status": dict(status)}, _MERGE_PATCH)

    async def namespace_terminating(self, namespace: str) -> bool:
        """Whether the namespace is going away: its Secrets are being deleted and new ones are
        refused, so a certificate issued now would be wasted. An active namespace is
        remembered for a few seconds: a burst of issuances costs one read, not one each."""
        now = self._clock()
        if self._active_namespaces.get(namespace, 0.0) > now:
            return False
        found = await self._request("GET", f"/api/v1/namespaces/{namespace}")
        terminating = found is None or (found.get("status") or {}).get("phase") == "Terminating"
        if not terminating:
            self._active_namespaces[namespace] = now + NAMESPACE_CACHE_SECONDS
        return terminating


def secret_view(secret: Mapping[str, Any] | None) -> SecretView | None:
    """What the policy needs from a Secret's JSON."""
    if secret is None:
        return None
    meta = secret.get("metadata") or {}
    controller = next(
        (ref.get("uid") for ref in meta.get("ownerReferences") or [] if ref.get("controller")),
        None,
    )
    data = {}
    for name, value in (secret.get("data") or {}).items():
        try:
            data[name] = base64.b64decode(value)
        except ValueError:
            data[name] = b""
    return SecretView(
        name=str(meta.get("name", "")),
        controller_uid=controller,
        annotations=dict(meta.get("annotations") or {}),
        labels=dict(meta.get("labels") or {}),
        data=data,
    )
