"""Calls to the CA from the event loop: cacore's blocking client on worker threads, with a bound
on concurrent invocations and one client per CA configuration.

Each call is awaited for at most its CA's ``read_timeout``, here on the event loop, instead of by
a thread of its own inside the transport (``deadline_thread=False``): a call that outlives it
fails with the transport's ``Timeout`` and gives its slot back; its thread stays with the stuck
socket (Python cannot stop a thread) but holds up no other call (``Workers`` starts another)
and, being a daemon, not the operator's exit.

The bound is operator-wide: everything that invokes the CA (ClientCertificates, and any other
handler module given the same pool) shares ``max_concurrent`` slots. ``issue`` takes an optional
``precheck``, run once a slot is granted and right before the call: whether the work is still
wanted after the wait (the object may have been deleted meanwhile)."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from cacore.config import CAConfig
from cacore.edge.client import CAClient, Invoker, Issuance, LambdaTransport, timeout_of
from cacore.errors import CAError, Timeout
from cacore.keys import KeySpec
from cacore.request import CertificateRequest
from cacore.response import IssuedCertificate
from certoperator.metrics import Metrics

T = TypeVar("T")


class CountingInvoker:
    """Counts every invocation that reaches the wire, so the metric is exactly the CA's load."""

    def __init__(self, inner: Invoker, metrics: Metrics, issuer: str) -> None:
        self.inner, self.metrics, self.issuer = inner, metrics, issuer

    def invoke(self, event: dict) -> tuple[object, str | None]:
        self.metrics.invocations.labels(self.issuer).inc()
        return self.inner.invoke(event)


class Workers:
    """Blocking calls on daemon threads that are reused; one more is started whenever none is
    idle (so as many as calls run at once, plus any still stuck past their deadline)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._idle = threading.Semaphore(0)  # one release per thread waiting for a job
        self._threads = 0

    def submit(self, call: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self._jobs.put((future, call))
        if not self._idle.acquire(blocking=False):
            self._threads += 1
            name = f"{self._name}-{self._threads}"
            threading.Thread(target=self._work, name=name, daemon=True).start()
        return future

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, call = job
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(call())
                except BaseException as error:  # handed to the awaiting coroutine
                    future.set_exception(error)
            self._idle.release()

    def close(self) -> None:
        """Idle threads end now, busy ones after their call."""
        for _ in range(self._threads):
            self._jobs.put(None)


class CAPool:
    def __init__(self, metrics: Metrics, max_concurrent: int = 8) -> None:
        self.metrics = metrics
        self._limit = asyncio.Semaphore(max_concurrent)
        self._workers = Workers("ca")
        self._clients: dict[tuple[str, CAConfig], CAClient] = {}
        self._lock = threading.Lock()

    def _client(self, issuer: str, config: CAConfig) -> CAClient:
        with self._lock:
            client = self._clients.get((issuer, config))
            if client is None:
                transport = LambdaTransport(config, deadline_thread=False)  # see ``_submit``
                _ = transport.client  # build the boto3 client once, not in every thread
                client = CAClient(
                    CountingInvoker(transport, self.metrics, issuer),
                    max_lifetime_days=config.max_lifetime_days,
                )
                self._clients[(issuer, config)] = client
            return client

    def _issue(
        self, issuer: str, config: CAConfig, request: CertificateRequest, key: KeySpec
    ) -> Issuance:
        return self._client(issuer, config).issue_with_new_key(request, key)

    def _issue_csr(
        self, issuer: str, config: CAConfig, request: CertificateRequest, csr_pem: bytes
    ) -> IssuedCertificate:
        return self._client(issuer, config).issue_csr(request, csr_pem)

    async def _submit(
        self,
        blocking: Callable[..., T],
        issuer: str,
        config: CAConfig,
        *args: object,
        precheck: Callable[[], Awaitable[bool]] | None = None,
    ) -> T | None:
        """One blocking call: exactly one CA invocation, at most ``max_concurrent`` running at
        once across the operator, each awaited for at most ``config.read_timeout``. None, with no
        invocation, when ``precheck`` (run after the wait for a slot) says the work is no longer
        wanted."""
        async with self._limit:
            if precheck is not None and not await precheck():
                return None
            self.metrics.in_flight.inc()
            try:
                with self.metrics.duration.time():
                    call = asyncio.wrap_future(
                        self._workers.submit(lambda: blocking(issuer, config, *args))
                    )
                    try:
                        return await asyncio.wait_for(call, config.read_timeout)
                    except TimeoutError:
                        # Counted here, once: the abandoned call's own end is never looked at.
                        self.metrics.failures.labels(issuer, Timeout.reason).inc()
                        raise timeout_of(config) from None
                    except CAError as error:
                        self.metrics.failures.labels(issuer, error.reason).inc()
                        raise
            finally:
                self.metrics.in_flight.dec()

    async def issue(
        self,
        issuer: str,
        config: CAConfig,
        request: CertificateRequest,
        key: KeySpec,
        precheck: Callable[[], Awaitable[bool]] | None = None,
    ) -> Issuance | None:
        """One issuance with a new key (None: ``precheck`` said no, nothing was invoked)."""
        return await self._submit(self._issue, issuer, config, request, key, precheck=precheck)

    async def issue_csr(
        self, issuer: str, config: CAConfig, request: CertificateRequest, csr_pem: bytes
    ) -> IssuedCertificate:
        """Certify a CSR made elsewhere (the CSR signer's), exactly as made."""
        issued = await self._submit(self._issue_csr, issuer, config, request, csr_pem)
        if issued is None:  # only a precheck skips the call, and there is none here
            raise CAError("the CA call was skipped")
        return issued

    async def prepare(self, issuer: str, config: CAConfig) -> None:
        """Build a CA's client before its first call: importing boto3 and making a client take
        ~0.5 s of CPU that would otherwise hold up the first issuances (and, through the GIL,
        the event loop)."""
        await asyncio.wrap_future(self._workers.submit(lambda: self._client(issuer, config)))

    def close(self) -> None:
        self._workers.close()
