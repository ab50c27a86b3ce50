"""Waiting out an API server outage with one probe, instead of every pass retrying on its own.

A pass that meets a transient API failure (no connection, a timeout, 5xx, 429) parks its key
here and ends. While anything is parked, one task asks the API server whether it is ready
(``/readyz``, which also fails while etcd is down) with a growing delay; the moment it is, or
any other call succeeds, every parked key is released at once. So an outage costs one request
every few seconds however many objects there are, and recovery is not held up by per-object
backoffs that grew during it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
log = logging.getLogger("certoperator")
PROBE_DELAYS = (0.5, 1.0, 2.0)  # then the last one, for as long as the outage lasts


class Outage(Generic[K]):
    def __init__(
        self,
        probe: Callable[[], Awaitable[bool]],
        release: Callable[[K], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe, self._release, self._clock = probe, release, clock
        self._parked: set[K] = set()
        self._since: float | None = None
        self._changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def __len__(self) -> int:
        return len(self._parked)

    def start(self) -> None:
        self.task = asyncio.create_task(self._watch(), name="API outage probe")

    def park(self, key: K, error: BaseException) -> None:
        if self._since is None:
            self._since = self._clock()
            log.warning(
                "the API server is unreachable; work that needs it waits for it",
                extra={"fields": {"error": str(error)}},
            )
        self._parked.add(key)
        self._changed.set()

    def succeeded(self) -> None:
        """A call just worked: whatever waits can go."""
        if self._since is not None:
            self._recovered()

    def _recovered(self) -> None:
        assert self._since is not None
        parked, self._parked = self._parked, set()
        log.info(
            "the API server is reachable again; resuming",
            extra={"fields": {"outage_seconds": round(self._clock() - self._since, 1),
                              "resumed": len(parked)}},
        )  # fmt: skip
        self._since = None
        for key in parked:
            self._release(key)

    async def _watch(self) -> None:
        while True:
            while self._since is None:
                self._changed.clear()
                await self._changed.wait()
            attempt = 0
            while self._since is not None:
                await asyncio.sleep(PROBE_DELAYS[min(attempt, len(PROBE_DELAYS) - 1)])
                attempt += 1
                ready = False
                with contextlib.suppress(Exception):
                    ready = await self._probe()
                if ready and self._since is not None:
                    self._recovered()
