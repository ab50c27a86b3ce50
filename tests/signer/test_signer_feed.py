"""How CSRs reach the signer (``feed``) and how its events wait for a quiet moment (``outbox``),
against an in-memory API that lists and watches. The real API server is the e2e and lifecycle
tests' business, and the benchmark's (bench/csr_flow.py)."""

from __future__ import annotations

import asyncio

from certoperator.policy import RetryPolicy
from certoperator.signer.controller import Signer
from certoperator.signer.feed import CsrFeed, WorkQueue
from certoperator.signer.outbox import Outbox
from prometheus_client import CollectorRegistry
from signer_builders import csr_object

OTHER_SIGNER = "kubernetes.io/kube-apiserver-client"


def at(version: int, **kwargs):
    body = csr_object(**kwargs)
    body["metadata"]["resourceVersion"] = str(version)
    return body


class FakeApi:
    """One list of ``objects``; then the watch plays ``script``, each event after its gate (an
    asyncio.Event, or None) is set, and stays open."""

    def __init__(self, objects, script=()):
        self.objects, self.script = objects, list(script)

    async def connected(self):
        return None

    async def request_json(self, method, path):
        return {"items": list(self.objects), "metadata": {"resourceVersion": "1"}}

    async def stream_json(self, path, read_timeout):
        for gate, event in self.script:
            if gate is not None:
                await gate.wait()
            yield event
        self.script = []
        await asyncio.Event().wait()


class RecordingSigner(Signer):
    """The real signer's bookkeeping of its own writes; its work is recorded, and "writes" the
    CSR at ``writes[name]`` (the version the API server would answer with)."""

    def __init__(self, writes=None):
        super().__init__(None, None, RetryPolicy(), registry=CollectorRegistry())  # type: ignore
        self.handled, self.writes, self.wrote = [], dict(writes or {}), asyncio.Event()

    async def handle_view(self, csr):
        self.handled.append((csr.name, csr.resource_version))
        if csr.name in self.writes:
            meta = {**csr.raw["metadata"], "resourceVersion": self.writes.pop(csr.name)}
            self._wrote({**csr.raw, "metadata": meta})
            self.wrote.set()


def run(api, signer, until, paused=lambda: False, resumed=None):
    async def scenario():
        feed = CsrFeed(api, signer, paused=paused, resumed=resumed, workers=2)
        feed.start()
        for _ in range(300):
            await asyncio.sleep(0.01)
            if until(signer.handled):
                break
        feed.stop()
        return signer.handled

    return asyncio.run(scenario())


def test_pending_csrs_of_clientcerts_signers_reach_the_signer_oldest_first_and_others_never():
    api = FakeApi([
        at(2, name="first"), at(3, name="second"),
        at(4, name="kubelet", signer=OTHER_SIGNER),
        at(5, name="signed", certificate=b"-----BEGIN CERTIFICATE-----"),
        at(6, name="denied", conditions=[{"type": "Denied", "status": "True"}]),
    ])  # fmt: skip
    handled = run(api, RecordingSigner(), lambda h: len(h) >= 2)
    assert handled == [("first", "2"), ("second", "3")]


def test_the_answer_to_the_signers_own_write_is_dropped_and_a_change_by_someone_else_is_not():
    signer = RecordingSigner(writes={"csr-1": "10"})
    api = FakeApi(
        [at(2)],
        [(signer.wrote, {"type": "MODIFIED", "object": at(10)}),  # our approval, as watched
         (None, {"type": "MODIFIED", "object": at(11)})],  # then someone else's change
    )  # fmt: skip
    handled = run(api, signer, lambda h: len(h) >= 2)
    assert handled == [("csr-1", "2"), ("csr-1", "11")]


def test_nothing_is_handled_while_paused_and_every_pending_csr_after_the_pause():
    paused = [True]

    async def scenario():
        resumed = asyncio.Event()
        signer = RecordingSigner()

        async def next_resume():
            await resumed.wait()
            resumed.clear()

        feed = CsrFeed(FakeApi([at(2, name="a"), at(3, name="b")]), signer,
                       paused=lambda: paused[0], resumed=next_resume, workers=2)  # fmt: skip
        feed.start()
        await asyncio.sleep(0.1)
        before = list(signer.handled)
        paused[0] = False
        resumed.set()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(signer.handled) >= 2:
                break
        feed.stop()
        return before, sorted(signer.handled)

    before, after = asyncio.run(scenario())
    assert before == []
    assert after == [("a", "2"), ("b", "3")]


def test_a_queued_key_is_handed_out_once_and_a_key_changed_while_in_hand_again_after():
    async def scenario():
        queue = WorkQueue()
        queue.add(("", "a"))
        queue.add(("", "b"))
        queue.add(("", "a"))  # still waiting: no second entry
        first = await queue.get()
        queue.add(first)  # changed while a worker has it
        second = await queue.get()
        waiting_before_done = len(queue._queue)
        queue.done(first)
        third = await queue.get()
        return first, second, waiting_before_done, third

    assert asyncio.run(scenario()) == (("", "a"), ("", "b"), 0, ("", "a"))


def recorder():
    posted = []

    def event(name):
        async def post():
            posted.append(name)

        return post

    return posted, event


def test_events_wait_while_the_signer_is_busy_and_go_out_when_it_is_idle():
    async def scenario():
        busy, (posted, event) = [True], recorder()
        outbox = Outbox(lambda: busy[0])
        outbox.add(event("Issued"))
        await asyncio.sleep(0.5)
        while_busy = list(posted)
        busy[0] = False
        await asyncio.sleep(0.5)
        return while_busy, posted

    assert asyncio.run(scenario()) == ([], ["Issued"])


def test_an_event_that_waited_its_longest_goes_out_even_while_the_signer_stays_busy():
    async def scenario():
        now, (posted, event) = [0.0], recorder()
        outbox = Outbox(lambda: True, max_hold=5.0, clock=lambda: now[0])
        outbox.add(event("old"))
        await asyncio.sleep(0.3)
        before = list(posted)
        now[0] = 5.0
        await asyncio.sleep(0.3)
        return before, posted

    assert asyncio.run(scenario()) == ([], ["old"])


def test_events_still_waiting_are_posted_when_the_operator_stops():
    async def scenario():
        (posted, event), outbox = recorder(), Outbox(lambda: True)
        for n in range(6):
            outbox.add(event(n))
        await outbox.flush(1.0)
        return posted

    assert asyncio.run(scenario()) == [0, 1, 2, 3, 4, 5]
