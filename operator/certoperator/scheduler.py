"""When each ClientCertificate is looked at next, and who calls the CA: two queues, each served by
a fixed pool of workers, instead of one sleeping task per object.

- ``DueQueue``: one heap of due times. ``schedule(key, at)`` asks for a pass at ``at`` (the
  earliest request wins); a pass for a key never overlaps another pass for the same key: asked
  for while it runs, the key runs again right after. Idle, it costs one timer for the earliest due
  time, however many objects there are.
- ``IssueQueue``: the issuances waiting for the CA, in priority order (then first come, first
  served), at most one per key (a newer job replaces the queued one), served by as many workers
  as CA calls may run at once. A queued job can be withdrawn (its object was deleted); its
  position is known when it is queued, so the status can say how long the wait is.

Both take their work as a coroutine function, so they know nothing of Kubernetes or the CA.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
log = logging.getLogger("certoperator")
ERROR_DELAY = 5.0  # seconds before a key whose pass raised is tried again


class DueQueue(Generic[K]):
    def __init__(
        self,
        process: Callable[[K], Awaitable[float | None]],
        workers: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``process(key)`` runs one pass and returns seconds until the next one (None: only an
        event brings the key back)."""
        self._process, self._workers, self._clock = process, workers, clock
        self._due: dict[K, float] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._seq = itertools.count()
        self._running: set[K] = set()
        self._again: dict[K, float] = {}  # asked for while running
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def __len__(self) -> int:
        return len(self._due) + len(self._running)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._work(), name=f"pass worker {n}") for n in range(self._workers)
        ]

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        return self._tasks

    def schedule(self, key: K, delay: float = 0.0) -> None:
        at = self._clock() + max(delay, 0.0)
        if key in self._running:
            self._again[key] = min(at, self._again.get(key, at))
            return
        if at < self._due.get(key, float("inf")):
            self._due[key] = at
            heapq.heappush(self._heap, (at, next(self._seq), key))
            self._changed.set()

    def forget(self, key: K) -> None:
        """No more passes for ``key`` (a pass running now finishes)."""
        self._due.pop(key, None)
        self._again.pop(key, None)

    def due_in(self, key: K) -> float | None:
        at = self._due.get(key)
        return None if at is None else at - self._clock()

    async def _next(self) -> K:
        while True:
            heap, now = self._heap, self._clock()
            while heap and self._due.get(heap[0][2]) != heap[0][0]:
                heapq.heappop(heap)  # superseded by an earlier request, or forgotten
            if heap and heap[0][0] <= now:
                _, _, key = heapq.heappop(heap)
                del self._due[key]
                return key
            self._changed.clear()
            timeout = heap[0][0] - now if heap else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

    async def _work(self) -> None:
        while True:
            key = await self._next()
            self._running.add(key)
            delay: float | None
            try:
                delay = await self._process(key)
            except Exception:  # a bug: say so, try again later, keep the worker
                log.exception("pass failed", extra={"fields": {"key": str(key)}})
                delay = ERROR_DELAY
            finally:
                self._running.discard(key)
            again = self._again.pop(key, None)
            if again is not None:
                self.schedule(key, again - self._clock())
            if delay is not None:
                self.schedule(key, delay)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


HIGH, LOW = 0, 1  # LOW: a renewal while the current certificate is still valid


@dataclass(eq=False)
class Job(Generic[K]):
    """One issuance waiting for the CA; ``detail`` is whatever the worker needs."""

    key: K
    priority: int
    detail: object
    seq: int = field(default=0)
    queued_at: float = field(default=0.0)


class IssueQueue(Generic[K]):
    def __init__(
        self,
        run: Callable[[Job[K]], Awaitable[None]],
        workers: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._run, self._workers, self._clock = run, workers, clock
        self._queued: dict[K, Job[K]] = {}
        # (priority, place in line, unique entry number, job): a replacement keeps its place.
        self._heap: list[tuple[int, int, int, Job[K]]] = []
        self._seq = itertools.count()
        self._entry = itertools.count()
        self._waiting = Counter[int]()  # queued jobs by priority
        self._flight: dict[K, Job[K]] = {}
        self._held: dict[K, Job[K]] = {}  # queued while a job of the same key runs
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._open = True

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._work(), name=f"issuance worker {n}")
            for n in range(self._workers)
        ]

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        return self._tasks

    def __len__(self) -> int:
        return len(self._queued)

    @property
    def in_flight(self) -> int:
        return len(self._flight)

    def queued(self, key: K) -> Job[K] | None:
        return self._queued.get(key)

    def running(self, key: K) -> Job[K] | None:
        return self._flight.get(key)

    def submit(self, key: K, priority: int, detail: object) -> tuple[Job[K], int]:
        """Queue (or replace) the job of ``key``; returns it and how many jobs are ahead."""
        previous = self._queued.pop(key, None)
        if previous is not None:
            self._waiting[previous.priority] -= 1
            # A replacement keeps its place in line unless it has a better priority now.
            if previous.priority <= priority:
                priority, seq = previous.priority, previous.seq
            else:
                seq = next(self._seq)
        else:
            seq = next(self._seq)
        job = Job(key, priority, detail, seq, self._clock())
        ahead = sum(n for p, n in self._waiting.items() if p <= priority) + len(self._flight)
        self._queued[key] = job
        self._waiting[priority] += 1
        heapq.heappush(self._heap, (priority, seq, next(self._entry), job))
        self._changed.set()
        return job, ahead

    def withdraw(self, key: K) -> bool:
        """Take the queued job of ``key`` out of line; True if there was one."""
        job = self._queued.pop(key, None)
        if job is None:
            return False
        self._waiting[job.priority] -= 1
        return True

    def withdraw_where(self, predicate: Callable[[K], bool]) -> int:
        """Withdraw every queued job whose key matches; how many were."""
        keys = [key for key in self._queued if predicate(key)]
        for key in keys:
            self.withdraw(key)
        return len(keys)

    async def _next(self) -> Job[K]:
        while True:
            while self._heap and self._queued.get(self._heap[0][3].key) is not self._heap[0][3]:
                heapq.heappop(self._heap)  # withdrawn or replaced
            if self._heap and self._open:
                *_, job = heapq.heappop(self._heap)
                if job.key in self._flight:
                    # Submitted while its previous job runs: it goes back in line after that.
                    self._held[job.key] = job
                    continue
                del self._queued[job.key]
                self._waiting[job.priority] -= 1
                return job
            self._changed.clear()
            await self._changed.wait()

    async def _work(self) -> None:
        while True:
            job = await self._next()
            self._flight[job.key] = job

            try:
                await self._run(job)
            except Exception:
                log.exception("issuance failed", extra={"fields": {"key": str(job.key)}})
            finally:
                del self._flight[job.key]
                held = self._held.pop(job.key, None)
                if held is not None and self._queued.get(job.key) is held:
                    heapq.heappush(self._heap, (held.priority, held.seq, next(self._entry), held))
                    self._changed.set()

    def close(self) -> None:
        """Start no more jobs (those in flight finish); the queued ones are left to whoever
        runs next."""
        self._open = False

    async def drain(self, timeout: float) -> bool:
        """Wait until no job is in flight; False when ``timeout`` ran out first."""
        deadline = self._clock() + timeout
        while self._flight and self._clock() < deadline:
            await asyncio.sleep(0.05)
        return not self._flight

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
