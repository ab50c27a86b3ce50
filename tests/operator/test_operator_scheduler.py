"""The two queues that replace one task per object: passes by due time, issuances by priority.
Real asyncio, a fake clock where time matters; no wall-clock assertions."""

from __future__ import annotations

import asyncio

import pytest
from certoperator.scheduler import HIGH, LOW, DueQueue, IssueQueue


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_a_key_asked_for_many_times_runs_once():
    async def scenario():
        seen = []

        async def process(key):
            seen.append(key)
            return None

        queue = DueQueue(process, workers=4)
        for _ in range(5):
            queue.schedule("a")
        queue.schedule("b")
        queue.start()
        await settle()
        await queue.stop()
        return seen

    assert sorted(asyncio.run(scenario())) == ["a", "b"]


def test_a_pass_for_a_key_never_overlaps_itself_and_a_request_during_it_runs_after():
    async def scenario():
        running, overlaps, runs = set(), [], []
        release = asyncio.Event()

        async def process(key):
            if key in running:
                overlaps.append(key)
            running.add(key)
            runs.append(key)
            if len(runs) == 1:
                await release.wait()
            running.discard(key)
            return None

        queue = DueQueue(process, workers=4)
        queue.start()
        queue.schedule("a")
        await settle()
        queue.schedule("a")  # while the first pass runs
        await settle()
        assert runs == ["a"]
        release.set()
        await settle()
        await queue.stop()
        return overlaps, runs

    overlaps, runs = asyncio.run(scenario())
    assert overlaps == [] and runs == ["a", "a"]


def test_the_earliest_request_wins_and_nothing_runs_before_it_is_due():
    async def scenario():
        clock, seen = Clock(), []

        async def process(key):
            seen.append((key, clock.now))
            return None

        queue = DueQueue(process, workers=2, clock=clock)
        queue.start()
        queue.schedule("a", 60)
        queue.schedule("a", 30)  # earlier: replaces
        queue.schedule("a", 90)  # later: ignored
        await settle()
        assert seen == [] and queue.due_in("a") == 30
        clock.now += 30
        queue.schedule("poke", 1000)  # wakes the workers to look at the clock again
        await settle()
        await queue.stop()
        return seen

    assert asyncio.run(scenario()) == [("a", 1030.0)]


def test_a_forgotten_key_does_not_run():
    async def scenario():
        seen = []

        async def process(key):
            seen.append(key)
            return None

        queue = DueQueue(process, workers=1)
        queue.schedule("gone")
        queue.schedule("kept")
        queue.forget("gone")
        queue.start()
        await settle()
        await queue.stop()
        return seen

    assert asyncio.run(scenario()) == ["kept"]


def test_a_pass_that_raises_is_tried_again_later_and_the_worker_survives():
    async def scenario():
        clock, calls = Clock(), []

        async def process(key):
            calls.append(key)
            if key == "bad":
                raise RuntimeError("a bug")
            return None

        queue = DueQueue(process, workers=1, clock=clock)
        queue.start()
        queue.schedule("bad")
        await settle()
        queue.schedule("good")
        await settle()
        due = queue.due_in("bad")
        await queue.stop()
        return calls, due

    calls, due = asyncio.run(scenario())
    assert calls == ["bad", "good"] and due is not None and due > 0


def run_issue_queue(jobs, workers=1, hold=None, actions=None):
    """Submit ``jobs`` (key, priority) to a queue whose workers wait for ``hold`` (if given)
    before finishing; ``actions`` runs once the first job is in flight. Returns the keys in the
    order they ran."""

    async def scenario():
        order = []
        gate = asyncio.Event()
        if hold is None:
            gate.set()

        async def run(job):
            order.append(job.key)
            await gate.wait()

        queue = IssueQueue(run, workers=workers)
        queue.start()
        results = [queue.submit(key, priority, None) for key, priority in jobs]
        await settle()
        if actions:
            actions(queue)
        gate.set()
        await settle()
        await queue.stop()
        return order, results

    return asyncio.run(scenario())


def test_issuances_run_first_come_first_served_within_a_priority():
    order, _ = run_issue_queue([("a", HIGH), ("b", HIGH), ("c", HIGH)])
    assert order == ["a", "b", "c"]


def test_renewals_of_valid_certificates_wait_behind_everything_else():
    order, results = run_issue_queue([("renew-1", LOW), ("renew-2", LOW), ("new", HIGH)], hold=True)
    assert order == ["new", "renew-1", "renew-2"]
    assert [ahead for _, ahead in results] == [0, 1, 0]  # nothing is ahead of "new"


def test_a_withdrawn_issuance_never_runs():
    order, _ = run_issue_queue(
        [("first", HIGH), ("deleted", HIGH), ("third", HIGH)],
        hold=True,
        actions=lambda queue: queue.withdraw("deleted"),
    )
    assert order == ["first", "third"]


def test_a_resubmitted_issuance_keeps_its_place_and_runs_once():
    order, results = run_issue_queue(
        [("first", HIGH), ("a", HIGH), ("b", HIGH), ("a", HIGH)], hold=True
    )
    assert order == ["first", "a", "b"]
    assert results[3][1] == 2  # "first" running, "b" queued: 2 ahead (its own old entry is gone)


def test_an_issuance_submitted_while_its_key_runs_waits_for_it():
    async def scenario():
        running, overlaps, order = set(), [], []
        gate = asyncio.Event()

        async def run(job):
            if job.key in running:
                overlaps.append(job.key)
            running.add(job.key)
            order.append((job.key, job.detail))
            await gate.wait()
            running.discard(job.key)

        queue = IssueQueue(run, workers=4)
        queue.start()
        queue.submit("a", HIGH, 1)
        await settle()
        queue.submit("a", HIGH, 2)  # a spec change while the first call is in flight
        await settle()
        gate.set()
        await settle()
        await queue.stop()
        return overlaps, order

    overlaps, order = asyncio.run(scenario())
    assert overlaps == [] and order == [("a", 1), ("a", 2)]


def test_a_closed_queue_starts_nothing_and_drains_what_is_in_flight():
    async def scenario():
        order = []
        gate = asyncio.Event()

        async def run(job):
            order.append(job.key)
            await gate.wait()

        queue = IssueQueue(run, workers=1)
        queue.start()
        queue.submit("in-flight", HIGH, None)
        queue.submit("queued", HIGH, None)
        await settle()
        queue.close()
        assert not await queue.drain(0.05)  # still in flight
        gate.set()
        drained = await queue.drain(5)
        await settle()
        await queue.stop()
        return order, drained

    order, drained = asyncio.run(scenario())
    assert drained and order == ["in-flight"]


@pytest.mark.parametrize("namespace, withdrawn", [("ns-a", 2), ("ns-b", 1), ("ns-c", 0)])
def test_a_namespace_going_away_withdraws_its_queued_issuances(namespace, withdrawn):
    async def scenario():
        queue = IssueQueue(lambda job: asyncio.sleep(0), workers=1)
        for key in [("ns-a", "x"), ("ns-a", "y"), ("ns-b", "z")]:
            queue.submit(key, HIGH, None)
        return queue.withdraw_where(lambda key: key[0] == namespace), len(queue)

    count, left = asyncio.run(scenario())
    assert count == withdrawn and left == 3 - withdrawn
