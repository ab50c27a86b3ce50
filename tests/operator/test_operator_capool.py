"""The CA pool bounds concurrent CA invocations across the whole operator."""

from __future__ import annotations

import asyncio
import threading

from certoperator.capool import CAPool
from certoperator.metrics import Metrics

from cacore.config import CAConfig
from cacore.keys import KeySpec
from cacore.request import CertificateRequest, Subject


class BlockingPool(CAPool):
    """The real semaphore and pool, with the CA call replaced by a gate the test opens."""

    def __init__(self, limit: int) -> None:
        super().__init__(Metrics(), limit)
        self.lock = threading.Lock()
        self.running = self.peak = 0
        self.gate = threading.Event()

    def _issue(self, issuer, config, request, key):
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        self.gate.wait(30)
        with self.lock:
            self.running -= 1
        return request.common_name


def test_no_more_than_the_limit_run_at_once_and_all_complete():
    issuer = BlockingPool(limit=3)
    request = CertificateRequest(subject=Subject("a.example.com"))

    async def scenario():
        calls = [
            asyncio.create_task(issuer.issue("ca", CAConfig(), request, KeySpec("ECDSA", 256)))
            for _ in range(10)
        ]
        for _ in range(500):  # until the first three are inside the CA call
            if issuer.running == 3:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # give a fourth the chance to (wrongly) get in
        assert issuer.running == 3
        assert issuer.metrics.in_flight._value.get() == 3
        issuer.gate.set()
        return await asyncio.gather(*calls)

    try:
        results = asyncio.run(scenario())
    finally:
        issuer.gate.set()
        issuer.close()
    assert results == ["a.example.com"] * 10
    assert issuer.peak == 3
