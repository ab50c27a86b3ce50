"""Events about CSRs, posted when the signer is not busy: during a burst every API request and
CPU second goes to approving and signing, and the events (two per signed CSR) follow as soon as
the burst is through. None is dropped for being late: one that waited ``max_hold`` seconds goes
out even while CSRs keep arriving, and ``flush`` posts what is left when the operator stops."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

log = logging.getLogger("certoperator.signer")

Post = Callable[[], Awaitable[None]]
MAX_HOLD = 5.0  # seconds an event may wait for a quiet moment
QUIET = 0.2  # seconds between looks whether the signer is idle
CONCURRENCY = 4  # events posted at once, so they never crowd out decisions either


class Outbox:
    def __init__(
        self,
        busy: Callable[[], bool] = lambda: False,
        max_hold: float = MAX_HOLD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.busy, self.max_hold, self.clock = busy, max_hold, clock
        self._posts: deque[tuple[float, Post]] = deque()
        self._added = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._posts)

    def add(self, post: Post) -> None:
        self._posts.append((self.clock(), post))
        self._added.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="CSR events")

    def _due(self) -> bool:
        return bool(self._posts) and (
            not self.busy() or self.clock() - self._posts[0][0] >= self.max_hold
        )

    async def _run(self) -> None:
        while True:
            if not self._posts:
                self._added.clear()
                await self._added.wait()
            if self._due():
                await self._post_some()  # and the next few at once, unless the signer got busy
            else:
                await asyncio.sleep(QUIET)

    async def _post_some(self) -> None:
        """Up to CONCURRENCY events at once, then look again whether the signer got busy."""
        batch = [self._posts.popleft()[1] for _ in range(min(CONCURRENCY, len(self._posts)))]
        await asyncio.gather(*(_post_safely(post) for post in batch))

    async def flush(self, timeout: float) -> None:
        """Post what is waiting (the operator stops), for at most ``timeout`` seconds."""
        if self._task is not None:
            self._task.cancel()
        try:
            async with asyncio.timeout(timeout):
                while self._posts:
                    await self._post_some()
        except TimeoutError:
            log.info("events not posted at stop", extra={"fields": {"count": len(self._posts)}})


async def _post_safely(post: Post) -> None:
    try:
        await post()
    except Exception as error:  # an event must never fail a decision
        log.info("event not posted", extra={"fields": {"error": str(error)}})
