"""Publishing the trust bundle (``trust`` says what it is): the requester's namespace before its
certificate is recorded, everywhere else in the background when the CA certificates change."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from cacore.response import IssuedCertificate
from certoperator.signer.kubeapi import KubeApiError, SignerApi
from certoperator.signer.names import cluster_trust_bundle_name, trust_key
from certoperator.signer.trust import (
    bundle_pem,
    cluster_trust_bundle_body,
    configmap_body,
    configmap_data,
)

log = logging.getLogger("certoperator.signer")

RECHECK_SECONDS = 60.0  # how long a namespace's bundle ConfigMap is trusted to be current
CONFLICT_ATTEMPTS = 3


class TrustPublisher:
    def __init__(self, api: SignerApi, spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        self.api, self.spawn = api, spawn
        self._bundles: dict[str, str] = {}  # LambdaCA -> the bundle published everywhere
        self._fresh: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = asyncio.Lock()
        self._namespace_locks: dict[str, asyncio.Lock] = {}
        self._ctb_served: bool | None = None

    async def publish(
        self, lambdaca: str, issued: IssuedCertificate, namespace: str | None
    ) -> None:
        """The requester's namespace gets the bundle before its certificate is recorded; a new
        bundle goes everywhere else (the ClusterTrustBundle, other namespaces) in the
        background, so the first signing after a start does not hold up the others. Never
        raises: a certificate is never held back for the bundle."""
        pem = bundle_pem(issued.issuing_ca_pem, issued.root_ca_pem)
        if self._bundles.get(lambdaca) != pem:
            self._bundles[lambdaca] = pem
            self.spawn(self._refresh_everywhere(lambdaca, pem))
        if not namespace:
            return
        try:
            await self._ensure_configmap(lambdaca, namespace, pem)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning(
                "trust bundle not published",
                extra={
                    "fields": {"lambdaca": lambdaca, "namespace": namespace, "error": str(error)}
                },
            )

    async def _refresh_everywhere(self, lambdaca: str, pem: str) -> None:
        """A new bundle (the first since start, or the CA changed): the ClusterTrustBundle and
        every namespace's ConfigMap that carries this LambdaCA's key. One at a time; a newer
        bundle seen meanwhile starts its own refresh after this one."""
        async with self._lock:
            if self._bundles.get(lambdaca) != pem:
                return  # superseded
            try:
                await self._refresh(lambdaca, pem)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the next new bundle, or a restart, tries again
                self._bundles.pop(lambdaca, None)
                log.warning(
                    "trust bundle not refreshed",
                    extra={"fields": {"lambdaca": lambdaca, "error": str(error)}},
                )

    async def _refresh(self, lambdaca: str, pem: str) -> None:
        if self._ctb_served is None:
            self._ctb_served = await self.api.cluster_trust_bundles_served()
        if self._ctb_served:
            name = cluster_trust_bundle_name(lambdaca)
            current = await self.api.get_cluster_trust_bundle(name)
            if current is None:
                await self.api.write_cluster_trust_bundle(cluster_trust_bundle_body(lambdaca, pem))
            elif (current.get("spec") or {}).get("trustBundle") != pem:
                version = current["metadata"]["resourceVersion"]
                body = cluster_trust_bundle_body(lambdaca, pem, version)
                await self.api.write_cluster_trust_bundle(body)
        for found in await self.api.list_trust_configmaps():
            if trust_key(lambdaca) in (found.get("data") or {}):
                namespace = found["metadata"]["namespace"]
                await self._ensure_configmap(lambdaca, namespace, pem, found)

    def _is_fresh(self, key: tuple[str, str], pem: str) -> bool:
        known = self._fresh.get(key)
        return known is not None and known[0] == pem and known[1] > time.monotonic()

    async def _ensure_configmap(
        self, lambdaca: str, namespace: str, pem: str, current: Mapping[str, Any] | None = None
    ) -> None:
        """The namespace's bundle ConfigMap holds ``pem``: read (unless ``current`` is given, as
        listed) and written when it does not; trusted for a while once known to hold it."""
        key = (lambdaca, namespace)
        if current is None and self._is_fresh(key, pem):
            return
        lock = self._namespace_locks.setdefault(namespace, asyncio.Lock())
        async with lock:
            # Checked again: a burst of CSRs from one namespace queues here behind the first,
            # which has written the bundle by now; each would otherwise read it once more.
            if current is None and self._is_fresh(key, pem):
                return
            now = time.monotonic()
            for _ in range(CONFLICT_ATTEMPTS):
                if current is None:
                    current = await self.api.get_trust_configmap(namespace)
                data = configmap_data(current, lambdaca, pem)
                if data is None:
                    break
                version = (current or {}).get("metadata", {}).get("resourceVersion")
                try:
                    await self.api.write_trust_configmap(configmap_body(namespace, data, version))
                    break
                except KubeApiError as error:
                    if error.status != 409:
                        raise
                    current = None  # changed or created meanwhile: read again
            self._fresh[key] = (pem, now + RECHECK_SECONDS)
