"""The informer: list, watch, and a relist that notices deletions, against an in-memory API that
implements the two calls it makes. The real API server is the e2e and fault tests' business."""

from __future__ import annotations

import asyncio

from certoperator.informer import Informer
from certoperator.kube import KubeApiError


def obj(name, version, namespace="ns", **extra):
    meta = {"name": name, "namespace": namespace, "resourceVersion": str(version)}
    return {"metadata": meta, **extra}


class FakeApi:
    """Each list returns the next state of ``objects`` (the last one from then on); each watch
    plays the next script of events, then ends."""

    def __init__(self, objects, watches, later=()):
        self.states, self.watches, self.lists = [objects, *later], list(watches), 0

    async def connected(self):
        return None

    async def request_json(self, method, path):
        objects = self.states[min(self.lists, len(self.states) - 1)]
        self.lists += 1
        version = max((int(o["metadata"]["resourceVersion"]) for o in objects), default=1)
        return {"items": list(objects), "metadata": {"resourceVersion": str(version)}}

    async def stream_json(self, path, read_timeout):
        if not self.watches:
            await asyncio.Event().wait()  # a quiet watch
        script = self.watches.pop(0)
        if isinstance(script, Exception):
            raise script
        for event in script:
            yield event


def run(api, until):
    """Run an informer until ``until(changes)`` holds; returns its items and the changes."""

    async def scenario():
        changes = []
        informer = Informer(api, "/api/v1/secrets", lambda o: o["metadata"]["resourceVersion"],
                            lambda key, old, new: changes.append((key[1], old, new)))  # fmt: skip
        informer.start()
        for _ in range(500):
            await asyncio.sleep(0.01)
            if until(changes):
                break
        informer.task.cancel()
        return informer, changes

    return asyncio.run(scenario())


def test_the_first_list_reports_every_object_and_marks_the_informer_synced():
    api = FakeApi([obj("a", 1), obj("b", 2)], [])
    informer, changes = run(api, lambda c: len(c) == 2)
    assert informer.synced.is_set()
    assert sorted(changes) == [("a", None, "1"), ("b", None, "2")]
    assert informer.version(("ns", "a")) == "1"


def test_watch_events_update_and_delete():
    api = FakeApi(
        [obj("a", 1)],
        [[{"type": "MODIFIED", "object": obj("a", 5)}, {"type": "ADDED", "object": obj("c", 6)},
          {"type": "DELETED", "object": obj("a", 7)}]],
    )  # fmt: skip
    informer, changes = run(api, lambda c: len(c) == 4)
    assert changes[1:] == [("a", "1", "5"), ("c", None, "6"), ("a", "5", None)]
    assert set(informer.items) == {("ns", "c")}


def test_a_lost_watch_is_followed_by_a_relist_that_reports_what_was_deleted_meanwhile():
    api = FakeApi(
        [obj("a", 1), obj("b", 2)],
        [[{"type": "ERROR", "object": {"code": 410}}]],
        later=[[obj("b", 2), obj("d", 9)]],  # a deleted, d created while nothing watched
    )
    informer, changes = run(api, lambda c: len(c) >= 4)
    assert api.lists == 2
    # b is unchanged: not reported again; a's deletion and d's creation are.
    assert sorted(changes[2:]) == [("a", "1", None), ("d", None, "9")]


def test_an_unreachable_api_is_retried_without_losing_what_is_known():
    api = FakeApi(
        [obj("a", 1)],
        [KubeApiError(0, "GET", "/api/v1/secrets", "connection refused"),
         [{"type": "MODIFIED", "object": obj("a", 3)}]],
    )  # fmt: skip
    informer, changes = run(api, lambda c: len(c) == 2)
    assert changes == [("a", None, "1"), ("a", "1", "3")]
    assert api.lists == 1, "a connection error resumes the watch; only 410 lists again"
