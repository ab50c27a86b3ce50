"""Kubernetes API writes beyond kopf's own: Secrets and the status subresource, through the
official client in a bounded thread pool (the client blocks; the event loop must not).

Responses are read as raw JSON (``_preload_content=False``): the client's model classes cost
more CPU than the requests themselves at a few hundred objects.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from certoperator.api import CERT_PLURAL, GROUP, VERSION
from certoperator.policy import SecretView

_MERGE_PATCH = "application/merge-patch+json"
NAMESPACE_CACHE_SECONDS = 5.0


class KubeApi:
    def __init__(self, workers: int = 16) -> None:
        import kubernetes  # ~0.5 s to import: only in the running operator, never in unit tests

        try:
            kubernetes.config.load_incluster_config()
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config()
        configuration = kubernetes.client.Configuration.get_default_copy()
        configuration.connection_pool_maxsize = workers
        self._client = kubernetes.client.ApiClient(configuration)
        self._core = kubernetes.client.CoreV1Api(self._client)
        self._custom = kubernetes.client.CustomObjectsApi(self._client)
        self._api_exception = kubernetes.client.ApiException
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="kube")
        self._active_namespaces: dict[str, float] = {}

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict | None:
        """The call's JSON body, or None for 404."""
        loop = asyncio.get_running_loop()

        def run() -> dict | None:
            try:
                response = fn(*args, _preload_content=False, **kwargs)
            except self._api_exception as error:
                if error.status == 404:
                    return None
                raise
            return json.loads(response.data)

        return await loop.run_in_executor(self._executor, run)

    def is_conflict(self, error: Exception) -> bool:
        return isinstance(error, self._api_exception) and error.status == 409

    async def get_secret(self, namespace: str, name: str) -> dict | None:
        return await self._call(self._core.read_namespaced_secret, name, namespace)

    async def namespace_terminating(self, namespace: str) -> bool:
        """Whether the namespace is going away: its Secrets are being deleted and new ones are
        refused, so a certificate issued now would be wasted. An active namespace is
        remembered for a few seconds: a burst of issuances costs one read, not one each."""
        now = time.monotonic()
        if self._active_namespaces.get(namespace, 0.0) > now:
            return False
        found = await self._call(self._core.read_namespace, namespace)
        terminating = found is None or (found.get("status") or {}).get("phase") == "Terminating"
        if not terminating:
            self._active_namespaces[namespace] = now + NAMESPACE_CACHE_SECONDS
        return terminating

    async def put_secret(self, namespace: str, body: Mapping[str, Any]) -> dict:
        """Create the Secret, or overwrite it unconditionally: once a certificate is issued,
        losing the write to a conflict would cost another CA invocation."""
        name = body["metadata"]["name"]
        try:
            created = await self._call(self._core.create_namespaced_secret, namespace, body)
        except self._api_exception as error:
            if error.status != 409:
                raise
        else:
            assert created is not None
            return created
        replaced = await self._call(self._core.replace_namespaced_secret, name, namespace, body)
        if replaced is None:  # deleted between the two calls
            return await self.put_secret(namespace, body)
        return replaced

    async def patch_secret_metadata(
        self, namespace: str, name: str, labels: Mapping[str, str], annotations: Mapping[str, str]
    ) -> None:
        patch = {"metadata": {"labels": dict(labels), "annotations": dict(annotations)}}
        await self._call(self._core.patch_namespaced_secret, name, namespace, patch)

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """A JSON merge patch of the status subresource (``None`` values delete fields)."""
        await self._call(
            self._custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            CERT_PLURAL,
            name,
            {"status": dict(status)},
            _content_type=_MERGE_PATCH,
        )

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._client.close()


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
