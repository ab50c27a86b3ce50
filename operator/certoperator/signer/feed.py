"""CertificateSigningRequests from the API to the signer, without kopf: the operator's own
informer (``certoperator.informer``) lists and watches every CSR, keeps the pending ones of
``clientcerts.dev`` signers as ``CsrView``s, and a work queue hands them to a few workers, oldest
first, the way client-go's controllers do.

Why not kopf (docs/operator.md, "The CSR signer", Figures): each watch event through kopf costs
its full per-object machinery, and two of the three events a signed CSR makes are answers to the
operator's own writes. Here an event costs one summary; the answer to our own write is recognised
by the resourceVersion that write returned and dropped; a CSR already queued is queued once (its
latest version is what the worker reads). A few workers, not one task per CSR: a burst is taken
oldest first, so the first CSRs are signed while later ones wait, instead of all of them
advancing together and finishing together.

While kopf has the operator paused (peering), nothing is handled; after the pause every pending
CSR is looked at again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from certoperator.informer import Informer, Key
from certoperator.kube import KubeApi
from certoperator.signer.controller import Signer
from certoperator.signer.csrview import CsrView, view
from certoperator.signer.kubeapi import CSRS
from certoperator.signer.names import lambdaca_of

log = logging.getLogger("certoperator.signer")
# CSRs in hand at once, per CA call slot (``--max-concurrent-issuances``, 8 by default): while
# some wait for the CA, others are approved or recorded. More only makes every CSR of a burst
# slower (each waits behind all the others for the API server).
WORKERS_PER_CA_SLOT = 2


def pending_of_ours(obj: Mapping[str, Any]) -> CsrView | None:
    """The informer's summary: a CSR of a ``clientcerts.dev`` signer with work left, else None
    (another signer's CSRs are never handled; a finished one is only remembered by version)."""
    signer = str((obj.get("spec") or {}).get("signerName", ""))
    if lambdaca_of(signer) is None:
        return None
    csr = view(obj)
    return None if csr.done else csr


class WorkQueue:
    """Keys waiting for a worker, each at most once; a key that changes while a worker has it is
    queued again when that worker is done (client-go's workqueue)."""

    def __init__(self) -> None:
        self._queue: deque[Key] = deque()
        self._dirty: set[Key] = set()
        self._processing: set[Key] = set()
        self._waiting = asyncio.Semaphore(0)  # one release per key in ``_queue``

    def __len__(self) -> int:
        return len(self._queue) + len(self._processing)

    def add(self, key: Key) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._push(key)

    def _push(self, key: Key) -> None:
        self._queue.append(key)
        self._waiting.release()

    async def get(self) -> Key:
        await self._waiting.acquire()
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: Key) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._push(key)


class CsrFeed:
    def __init__(
        self,
        kube: KubeApi,
        signer: Signer,
        paused: Callable[[], bool] = lambda: False,
        resumed: Callable[[], Awaitable[None]] | None = None,
        workers: int = 16,
    ) -> None:
        self.signer, self._paused, self._resumed = signer, paused, resumed
        self.queue = WorkQueue()
        self.informer: Informer[CsrView | None] = Informer(
            kube, CSRS, pending_of_ours, self._changed
        )
        self._workers = workers
        self.tasks: list[asyncio.Task[None]] = []  # live as long as the operator (watchdog)
        self._listed: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.tasks:
            return
        self.informer.start()
        assert self.informer.task is not None
        self.tasks = [self.informer.task]
        self.tasks += [
            asyncio.create_task(self._work(), name=f"CSR worker {n}") for n in range(self._workers)
        ]
        self._listed = asyncio.create_task(self._report_listed(), name="CSRs listed")
        if self._resumed is not None:
            self.tasks.append(asyncio.create_task(self._after_pauses(), name="CSRs after a pause"))
        self.signer.busy = lambda: len(self.queue) > 0

    def stop(self) -> None:
        for task in [*self.tasks, self._listed]:
            if task is not None:
                task.cancel()

    def _changed(self, key: Key, _old: CsrView | None, new: CsrView | None) -> None:
        if new is not None and self.signer.wants(new):
            self.queue.add(key)

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                csr = self.informer.items.get(key)
                if csr is not None and not self._paused():
                    await self.signer.handle_view(csr)
            except Exception:  # handle() reports its own; this is a bug, not a reason to stop
                log.exception("CSR worker failed", extra={"fields": {"csr": key[1]}})
            finally:
                self.queue.done(key)

    async def _report_listed(self) -> None:
        await self.informer.synced.wait()
        pending = sum(1 for csr in self.informer.items.values() if csr is not None)
        log.info("CSRs listed", extra={"fields": {"pending": pending}})

    async def _after_pauses(self) -> None:
        """CSRs that arrived while kopf had the operator paused were skipped: look again."""
        assert self._resumed is not None
        while True:
            await self._resumed()
            for key, csr in list(self.informer.items.items()):
                if csr is not None:
                    self.queue.add(key)
