"""Kubernetes API calls beyond kopf's own (Secrets, the status subresource, events, a fresh read
of a ClientCertificate before a CA call, the API server's readiness, the peering record), made on
kopf's aiohttp session: no second client, no threads, one bounded connection pool.

Every failure is a ``KubeApiError``; ``transient`` tells an outage (no connection, a timeout, 429,
5xx: the same call will work later) from an answer that will not change by itself.

The official ``kubernetes`` client is deliberately not used: loading it costs ~43 MB of RSS
(every model class) for six REST calls.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from certoperator.api import API_VERSION, CERT_KIND, CERT_PLURAL, GROUP, MANAGED_BY, VERSION
from certoperator.policy import SecretView

# One call never holds a worker longer than this (an API server whose etcd is gone answers late).
REQUEST_TIMEOUT_SECONDS = 20.0
CONNECT_TIMEOUT_SECONDS = 5.0
EVENT_MESSAGE_LIMIT = 1024
_JSON = "application/json"
_MERGE_PATCH = "application/merge-patch+json"


class KubeApiError(Exception):
    """A call failed; ``status`` is the HTTP status, 0 when no answer came."""

    def __init__(self, status: int, method: str, path: str, message: str) -> None:
        answer = f"HTTP {status}" if status else "no answer"
        super().__init__(f"{method} {path}: {answer}: {message}")
        self.status = status

    @property
    def transient(self) -> bool:
        return self.status == 0 or self.status == 429 or self.status >= 500


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

    async def connected(self) -> None:
        """Until the login handler has given a session (it runs after the startup handlers)."""
        while self._connection.session is None:
            await asyncio.sleep(0.05)

    async def request_json(self, method: str, path: str) -> dict | None:
        """Any call by path: its JSON answer, None for 404 (``KubeApiError`` otherwise)."""
        return await self._request(method, path)

    async def stream_json(self, path: str, read_timeout: float) -> AsyncIterator[dict]:
        """The objects of a streaming answer (a watch), one per line, however long a line is
        (a Secret can be megabytes). Ends when the server ends the stream."""
        import aiohttp

        conn = self._connection
        if conn.session is None or conn.server is None:
            raise KubeApiError(0, "GET", path, "not logged in to the API server yet")
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=CONNECT_TIMEOUT_SECONDS, sock_read=read_timeout
        )
        try:
            async with conn.session.get(
                conn.server + path, headers={"Accept": _JSON}, timeout=timeout
            ) as response:
                if response.status >= 400:
                    raise KubeApiError(response.status, "GET", path, (await response.text())[:500])
                buffer = b""
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield json.loads(line)
        except (aiohttp.ClientError, TimeoutError, RuntimeError) as error:
            raise KubeApiError(0, "GET", path, f"{type(error).__name__}: {error}") from error

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
        import aiohttp

        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type, "Accept": _JSON}
        timeout = aiohttp.ClientTimeout(
            total=REQUEST_TIMEOUT_SECONDS, sock_connect=CONNECT_TIMEOUT_SECONDS
        )
        try:
            async with conn.session.request(
                method, conn.server + path, data=data, headers=headers, timeout=timeout
            ) as response:
                if response.status == 404:
                    return None
                text = await response.text()
        except (TimeoutError, aiohttp.ClientError, RuntimeError) as error:
            # RuntimeError: the session was closed under us (kopf logging in again).
            raise KubeApiError(0, method, path, f"{type(error).__name__}: {error}") from error
        if response.status >= 400:
            try:
                message = json.loads(text).get("message", text)
            except ValueError:
                message = text
            raise KubeApiError(response.status, method, path, message[:500])
        return json.loads(text) if text else {}

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

    async def patch_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict | None:
        """A JSON merge patch of the status subresource (``None`` values delete fields); the
        object as it is now, or None when it is gone."""
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{CERT_PLURAL}/{name}/status"
        return await self._request("PATCH", path, {"status": dict(status)}, _MERGE_PATCH)

    async def post_event(
        self, namespace: str, name: str, uid: str, warning: bool, reason: str, message: str
    ) -> None:
        """A core/v1 Event about a ClientCertificate, as `kubectl describe` shows them."""
        now = datetime.now(UTC).isoformat()
        if len(message) > EVENT_MESSAGE_LIMIT:
            message = message[: EVENT_MESSAGE_LIMIT - 3] + "..."
        event = {
            "metadata": {"namespace": namespace, "generateName": f"{name}."},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": CERT_KIND,
                "namespace": namespace,
                "name": name,
                "uid": uid,
            },
            "type": "Warning" if warning else "Normal",
            "reason": reason,
            "message": message,
            "source": {"component": MANAGED_BY},
            "reportingComponent": MANAGED_BY,
            "reportingInstance": MANAGED_BY,
            "action": reason,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "eventTime": now,
        }
        await self._request("POST", f"/api/v1/namespaces/{namespace}/events", event)

    def _peering_path(self, name: str, namespace: str | None) -> str:
        if namespace is None:
            return f"/apis/kopf.dev/v1/clusterkopfpeerings/{name}"
        return f"/apis/kopf.dev/v1/namespaces/{namespace}/kopfpeerings/{name}"

    async def get_peering(self, name: str, namespace: str | None) -> dict | None:
        return await self._request("GET", self._peering_path(name, namespace))

    async def patch_peering(
        self, name: str, namespace: str | None, patch: Mapping[str, Any]
    ) -> None:
        await self._request("PATCH", self._peering_path(name, namespace), patch, _MERGE_PATCH)

    async def get_certificate(self, namespace: str, name: str) -> dict | None:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{CERT_PLURAL}/{name}"
        return await self._request("GET", path)

    async def ready(self) -> bool:
        """Whether the API server answers and is ready (its storage too): one cheap probe that
        stands for every call waiting out an outage. Readable by every user by default."""
        try:
            await self._request("GET", "/readyz")
        except KubeApiError:
            return False
        return True


def api_resource(method: str, path: str) -> tuple[str, str]:
    """(verb, resource) of a request, as the API server's own metrics name them: WATCH and LIST
    for collection reads, ``resource/subresource`` for status, the path for anything else."""
    path, _, query = path.partition("?")
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        rest = parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        rest = parts[3:]
    else:
        return method.upper(), path.strip("/")
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    elif len(rest) <= 2 and rest[:1] == ["namespaces"]:
        rest = ["namespaces", *rest[1:]]
    resource = rest[0] if rest else ""
    named = len(rest) >= 2
    if named and len(rest) >= 3:
        resource = f"{resource}/{rest[2]}"
    verb = method.upper()
    if verb == "GET" and "watch=true" in query:
        verb = "WATCH"
    elif verb == "GET" and not named:
        verb = "LIST"
    return verb, resource


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
