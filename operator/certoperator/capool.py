"""Calls to the CA from the event loop: cacore's blocking client in a thread pool, with a bound
on concurrent invocations and one client per CA configuration.

The bound is operator-wide: everything that invokes the CA (ClientCertificates, and any other
handler module given the same pool) shares ``max_concurrent`` slots. ``issue`` takes an optional
``precheck``, run once a slot is granted and right before the call: whether the work is still
wanted after the wait (the object may have been deleted meanwhile)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from cacore.config import CAConfig
from cacore.edge.client import CAClient, Invoker, Issuance, LambdaTransport
from cacore.errors import CAError
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


class CAPool:
    def __init__(self, metrics: Metrics, max_concurrent: int = 8) -> None:
        self.metrics = metrics
        self._limit = asyncio.Semaphore(max_concurrent)
        self._executor = ThreadPoolExecutor(max_concurrent, thread_name_prefix="ca")
        self._clients: dict[tuple[str, CAConfig], CAClient] = {}
        self._lock = threading.Lock()

    def _client(self, issuer: str, config: CAConfig) -> CAClient:
        with self._lock:
            client = self._clients.get((issuer, config))
            if client is None:
                transport = LambdaTransport(config)
                _ = transport.client  # build the boto3 client once, not in every thread
                client = CAClient(
                    CountingInvoker(transport, self.metrics, issuer),
                    max_lifetime_days=config.max_lifetime_days,
                )
                self._clients[(issuer, config)] = client
            return client

    def _call(self, issuer: str, config: CAConfig, call: Callable[[CAClient], T]) -> T:
        try:
            return call(self._client(issuer, config))
        except CAError as error:
            self.metrics.failures.labels(issuer, error.reason).inc()
            raise

    def _issue(
        self, issuer: str, config: CAConfig, request: CertificateRequest, key: KeySpec
    ) -> Issuance:
        return self._call(issuer, config, lambda c: c.issue_with_new_key(request, key))

    def _issue_csr(
        self, issuer: str, config: CAConfig, request: CertificateRequest, csr_pem: bytes
    ) -> IssuedCertificate:
        return self._call(issuer, config, lambda c: c.issue_csr(request, csr_pem))

    async def _submit(
        self,
        blocking: Callable[..., T],
        *args: object,
        precheck: Callable[[], Awaitable[bool]] | None = None,
    ) -> T | None:
        """One blocking call: exactly one CA invocation, at most ``max_concurrent`` running at
        once across the operator. None, with no invocation, when ``precheck`` (run after the
        wait for a slot) says the work is no longer wanted."""
        async with self._limit:
            if precheck is not None and not await precheck():
                return None
            self.metrics.in_flight.inc()
            try:
                with self.metrics.duration.time():
                    loop = asyncio.get_running_loop()
                    return await loop.run_in_executor(self._executor, blocking, *args)
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
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._client, issuer, config)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
