"""The CA pool bounds concurrent CA invocations across the whole operator."""

from __future__ import annotations

import asyncio
import threading

import pytest
from certoperator.capool import CAPool
from certoperator.metrics import Metrics

from cacore.config import CAConfig
from cacore.errors import Timeout
from cacore.keys import KeySpec
from cacore.request import CertificateRequest, Subject


class BlockingPool(CAPool):
    """The real semaphore and pool, with the CA call replaced by a gate the test opens."""

    def __init__(self, limit: int) -> None:
        super().__init__(Metrics(), limit)
        self.lock = threading.Lock()
        self.running = self.peak = 0
        self.gate = threading.Event()
        self.answer_at_once = False

    def _issue(self, issuer, config, request, key):
        if self.answer_at_once:
            return request.common_name
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


def test_a_call_past_its_deadline_fails_with_timeout_and_holds_up_nothing():
    """The pool keeps each call's deadline (the transport's thread per call is not used): a CA
    that never answers costs the caller ``read_timeout``, a Timeout naming the function, and
    neither the slot nor another call's thread; the stuck thread is a daemon (no hung exit)."""
    issuer = BlockingPool(limit=1)
    request = CertificateRequest(subject=Subject("a.example.com"))
    stuck = CAConfig(function="stuck-ca", read_timeout=0.3)

    async def scenario():
        started = asyncio.get_running_loop().time()
        with pytest.raises(Timeout) as caught:
            await issuer.issue("ca", stuck, request, KeySpec("ECDSA", 256))
        waited = asyncio.get_running_loop().time() - started
        assert 0.3 <= waited < 5, waited
        assert "the CA function stuck-ca" in caught.value.message
        assert "did not answer within 0.3 s" in caught.value.message
        assert issuer.running == 1  # still inside the CA call...
        issuer.answer_at_once = True  # ...yet the only slot serves the next call
        return await issuer.issue("ca", CAConfig(), request, KeySpec("ECDSA", 256))

    try:
        assert asyncio.run(scenario()) == "a.example.com"
        assert issuer.metrics.failures.labels("ca", "Timeout")._value.get() == 1
        threads = [t for t in threading.enumerate() if t.name.startswith("ca-")]
        assert threads and all(t.daemon for t in threads)
    finally:
        issuer.gate.set()
        issuer.close()
