"""One kind of object kept in memory from a LIST and a WATCH, the way client-go's informers do it:
a small summary per object, a callback per change, and a relist after the watch was lost that also
notices what was deleted meanwhile. ``synced`` is set once the first list is in.

It stands in for kopf where kopf's per-object machinery costs too much for what is needed: the
operator's Secrets (one per ClientCertificate, thousands) and namespaces. kopf keeps a memory
record and a worker task per object it sees, computes a diff of every event, and its index
readiness gate wakes every waiting event worker for every indexed object (docs/operator.md,
"kopf versions"); here an event costs one summary.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from certoperator.kube import KubeApi, KubeApiError

V = TypeVar("V")
Key = tuple[str, str]  # (namespace, or "" for cluster-scoped objects; name)
log = logging.getLogger("certoperator")
PAGE = 500
WATCH_SECONDS = 300  # the server ends each watch after this; it is started again from there
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 5.0)
YIELD_EVERY = 50  # summarising a page of Secrets yields to the loop this often


def key_of(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name")))


class Gone(Exception):
    """The resourceVersion is too old (HTTP 410): list again."""


class Informer(Generic[V]):
    def __init__(
        self,
        kube: KubeApi,
        path: str,
        summarize: Callable[[Mapping[str, Any]], V],
        changed: Callable[[Key, V | None, V | None], None],
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> None:
        self._kube, self._path, self._summarize = kube, path, summarize
        self._changed, self._selector, self._fields = changed, label_selector, field_selector
        self.items: dict[Key, V] = {}
        self._versions: dict[Key, str] = {}
        self.synced = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"informer {self._path}")

    def _query(self, **params: object) -> str:
        if self._selector:
            params["labelSelector"] = self._selector
        if self._fields:
            params["fieldSelector"] = self._fields
        return f"{self._path}?{urlencode(params)}"

    async def run(self) -> None:
        await self._kube.connected()
        failures = 0
        version: str | None = None
        while True:
            try:
                if version is None:
                    version = await self._list()
                    failures = 0
                version = await self._watch(version)
                failures = 0
            except Gone:
                version = None
            except KubeApiError as error:
                if error.status == 410:
                    version = None
                    continue
                failures += 1
                if failures == 1:
                    fields = {"path": self._path, "error": str(error)}
                    log.warning("watch interrupted; resuming", extra={"fields": fields})
                await asyncio.sleep(RETRY_DELAYS[min(failures, len(RETRY_DELAYS)) - 1])
            except Exception:  # a garbled answer or a bug: list again rather than die
                log.exception("watch failed; listing again", extra={"fields": {"path": self._path}})
                version = None
                failures += 1
                await asyncio.sleep(RETRY_DELAYS[min(failures, len(RETRY_DELAYS)) - 1])

    async def _list(self) -> str:
        """One consistent list (in pages, each applied as it comes: thousands of Secrets are
        never all in memory at once), then whatever was not listed is gone: changed, new and
        deleted objects are all reported."""
        listed: set[Key] = set()
        token: str | None = None
        while True:
            params: dict[str, object] = {"limit": PAGE}
            if token:
                params["continue"] = token
            page = await self._kube.request_json("GET", self._query(**params))
            if page is None:
                raise KubeApiError(404, "GET", self._path, "not found")
            for n, obj in enumerate(page.get("items") or []):
                key = key_of(obj)
                listed.add(key)
                self._apply(key, obj)
                if n % YIELD_EVERY == YIELD_EVERY - 1:
                    await asyncio.sleep(0)
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                break
        for key in [k for k in self.items if k not in listed]:
            self._remove(key)
        self.synced.set()
        return str(meta.get("resourceVersion", ""))

    async def _watch(self, version: str) -> str:
        query = self._query(
            watch="true", resourceVersion=version, allowWatchBookmarks="true",
            timeoutSeconds=WATCH_SECONDS,
        )  # fmt: skip
        async for event in self._kube.stream_json(query, WATCH_SECONDS + 30):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise Gone()
                raise KubeApiError(int(obj.get("code") or 0), "WATCH", self._path,
                                   str(obj.get("message")))  # fmt: skip
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            if kind == "BOOKMARK":
                continue
            if kind == "DELETED":
                self._remove(key_of(obj))
            else:
                self._apply(key_of(obj), obj)
        return version

    def _apply(self, key: Key, obj: Mapping[str, Any]) -> None:
        version = str((obj.get("metadata") or {}).get("resourceVersion", ""))
        if self._versions.get(key) == version:
            return  # relisted unchanged
        summary, old = self._summarize(obj), self.items.get(key)
        self.items[key], self._versions[key] = summary, version
        self._changed(key, old, summary)

    def _remove(self, key: Key) -> None:
        if key in self.items:
            old = self.items.pop(key)
            self._versions.pop(key, None)
            self._changed(key, old, None)

    def version(self, key: Key) -> str | None:
        return self._versions.get(key)
