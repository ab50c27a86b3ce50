"""The parts that keep the operator's promises under faults, one by one: issued certificates kept
until written (and across a restart), an outage waited out by one probe, the peering records of
this host's dead processes, and the watchdog. No cluster; real files, real threads."""

from __future__ import annotations

import asyncio
import json
import stat
import threading
import urllib.request
from datetime import timedelta

import pytest
from certoperator.health import Watchdog
from certoperator.kopfcompat import MAX_RETRY_DELAY, RETRY_DELAYS, RetryForever
from certoperator.kube import api_resource
from certoperator.outage import Outage
from certoperator.peering import dead_predecessors, identity
from certoperator.pending import PendingSecret, PendingSecrets
from operator_builders import NOW
from support.operator_process import free_port

from cacore import exitcodes


def entry(name="app", uid="uid-1", spec_hash="hash-1", days=30):
    return PendingSecret(
        namespace="team",
        name=name,
        uid=uid,
        spec_hash=spec_hash,
        trigger="DoesNotExist",
        issuer="local",
        secret={"metadata": {"name": f"{name}-tls"}, "data": {"tls.key": "c2VjcmV0"}},
        serial=12345678901234567890,
        not_before=NOW,
        not_after=NOW + timedelta(days=days),
        issued_at=NOW,
    )


# --- pending certificates ----------------------------------------------------------------------


def test_a_kept_certificate_is_only_for_the_same_object_and_spec_while_valid():
    kept = entry()
    assert kept.usable_for("uid-1", "hash-1", NOW)
    assert not kept.usable_for("uid-2", "hash-1", NOW), "re-created under the same name"
    assert not kept.usable_for("uid-1", "hash-2", NOW), "the spec changed"
    assert not kept.usable_for("uid-1", "hash-1", NOW + timedelta(days=30)), "expired"


def test_without_a_stash_nothing_touches_the_disk(tmp_path):
    pending = PendingSecrets(None)
    pending.keep(entry())
    assert pending.get(("team", "app")) == entry()
    assert list(tmp_path.iterdir()) == []


def test_a_stashed_certificate_survives_a_restart_in_a_private_file(tmp_path):
    first = PendingSecrets(tmp_path)
    first.keep(entry())
    files = list((tmp_path / "pending").iterdir())
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "pending").stat().st_mode) == 0o700
    assert "app" not in files[0].name, "file names say nothing about the object"

    second = PendingSecrets(tmp_path)
    assert second.load(NOW) == 1
    assert second.get(("team", "app")) == entry()
    second.drop(("team", "app"))
    assert list((tmp_path / "pending").iterdir()) == []


def test_expired_and_unreadable_stash_entries_are_removed_at_load(tmp_path):
    pending = PendingSecrets(tmp_path)
    pending.keep(entry("old", days=1))
    (tmp_path / "pending" / "junk.json").write_text("{not json")
    later = PendingSecrets(tmp_path)
    assert later.load(NOW + timedelta(days=2)) == 0
    assert list((tmp_path / "pending").iterdir()) == []


def test_a_stash_write_that_failed_gets_a_second_chance_at_shutdown(tmp_path):
    (tmp_path / "pending").write_text("in the way")  # the stash cannot be made: writes fail
    pending = PendingSecrets(tmp_path)
    pending.keep(entry("a"))
    pending.keep(entry("b"))
    assert len(pending) == 2, "kept in memory all the same"
    (tmp_path / "pending").unlink()
    pending.stash_all()
    assert PendingSecrets(tmp_path).load(NOW) == 2


# --- waiting out an outage ---------------------------------------------------------------------


def test_an_outage_is_probed_by_one_task_and_releases_every_parked_key_when_it_ends():
    async def scenario():
        probes, released = [], []
        up = asyncio.Event()

        async def probe():
            probes.append(1)
            return up.is_set()

        outage = Outage(probe, released.append)
        outage.start()
        for key in ("a", "b", "c"):
            outage.park(key, OSError("connection refused"))
        await asyncio.sleep(1.8)  # probes at 0.5 and 1.5 s: still down
        assert released == [] and outage.ongoing
        up.set()
        while outage.ongoing:
            await asyncio.sleep(0.1)
        outage.task.cancel()
        return len(probes), sorted(released)

    probes, released = asyncio.run(scenario())
    assert released == ["a", "b", "c"]
    assert probes <= 4, "one probe for all parked keys, not one each"


def test_any_successful_call_ends_the_outage_at_once():
    released = []
    outage = Outage(lambda: asyncio.sleep(0), released.append)
    outage.park("a", OSError("reset"))
    outage.succeeded()
    assert released == ["a"] and not outage.ongoing


# --- peering -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record, dead",
    [
        (identity("pod-a", NOW, 7, "abc"), True),
        (identity("pod-a", NOW, 42, "abc"), True),
        (identity("pod-a", NOW, 99, "abc"), False),
        (identity("pod-b", NOW, 7, "abc"), False),
        ("someone@laptop/20260301120000/xyz", False),
    ],
    ids=[
        "this host, the pid this process now has: a restarted container's predecessor",
        "this host, a pid that no longer runs: a killed process's record",
        "this host, a pid still running: another live operator, left alone",
        "another host: never touched, kopf lets it expire",
        "not this operator's identity format: never touched",
    ],
)
def test_the_records_of_this_hosts_dead_operators_are_found(record, dead):
    me = identity("pod-a", NOW + timedelta(minutes=1), 7, "new")
    found = dead_predecessors({record: {}, me: {}}, me, "pod-a", 7, running={99}.__contains__)
    assert found == ([record] if dead else [])


# --- the watchdog ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def watchdog(**kwargs):
    exits = []
    clock = Clock()
    dog = Watchdog(stall_seconds=30, shutdown_seconds=25, clock=clock, exit=exits.append, **kwargs)
    return dog, clock, exits


def test_a_stalled_event_loop_ends_the_process_with_exit_code_1():
    dog, clock, exits = watchdog()
    clock.now += 29
    dog.check()
    assert exits == [] and dog.problem() is None
    clock.now += 2
    dog.check()
    assert exits == [exitcodes.FAILED]
    assert "event loop" in dog.problem()


def test_a_part_that_died_stops_the_operator_and_a_stop_past_its_budget_ends_it():
    async def scenario():
        dog, clock, exits = watchdog()
        task = asyncio.create_task(asyncio.sleep(0))
        dog.watch("kopf", [task])
        await task
        dog._beat = clock.now  # the loop is alive
        assert dog.problem() == "stopping"
        dog.check()
        assert exits == []
        clock.now += 26
        dog._beat = clock.now
        dog.check()
        return exits, dog.problem()

    exits, problem = asyncio.run(scenario())
    assert exits == [exitcodes.FAILED] and "did not stop within 25 s" in problem


def test_a_requested_stop_within_its_budget_is_no_failure():
    dog, clock, exits = watchdog()
    dog.stopping("SIGTERM")
    clock.now += 20
    dog.check()
    assert exits == [] and dog.problem() == "stopping"


def test_the_liveness_endpoint_answers_from_its_own_thread_with_the_reason():
    dog, clock, _ = watchdog()
    port = free_port()
    dog.serve(f"http://127.0.0.1:{port}/healthz")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200 and json.load(response) == {"status": "ok"}
        clock.now += 31  # the loop stalls: the endpoint still answers, with 503
        with pytest.raises(urllib.error.HTTPError) as failed:
            opener.open(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert failed.value.code == 503
        assert "event loop" in json.load(failed.value)["status"]
        assert threading.current_thread() is threading.main_thread()
    finally:
        dog.close()


# --- API request accounting --------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, expected",
    [
        ("GET", "/api/v1/namespaces/team/secrets/app-tls", "GET secrets"),
        ("POST", "/api/v1/namespaces/team/secrets", "POST secrets"),
        ("GET", "/api/v1/namespaces/team", "GET namespaces"),
        (
            "PATCH",
            "/apis/clientcerts.dev/v1alpha1/namespaces/t/clientcertificates/a/status",
            "PATCH clientcertificates/status",
        ),  # fmt: skip
        (
            "GET",
            "/apis/clientcerts.dev/v1alpha1/clientcertificates?watch=true",
            "WATCH clientcertificates",
        ),  # fmt: skip
        ("GET", "/api/v1/secrets?labelSelector=x", "LIST secrets"),
        (
            "PATCH",
            "/apis/kopf.dev/v1/clusterkopfpeerings/clientcert-operator",
            "PATCH clusterkopfpeerings",
        ),  # fmt: skip
        ("GET", "/readyz", "GET readyz"),
    ],
)
def test_every_api_call_is_counted_by_verb_and_resource(method, path, expected):
    verb, resource = api_resource(method, path)
    assert f"{verb} {resource}" == expected


# --- logs and our own writes -------------------------------------------------------------------


def test_kopf_lines_about_an_object_name_it_in_the_json_logs():
    import logging

    from certoperator.main import KopfJsonFormatter

    record = logging.LogRecord("kopf.objects", logging.WARNING, __file__, 1, "Handler failed.", (),
                               None)  # fmt: skip
    record.k8s_ref = {"kind": "ClientCertificate", "namespace": "team", "name": "app", "uid": "u"}
    line = json.loads(KopfJsonFormatter().format(record))
    assert (line["kind"], line["namespace"], line["name"]) == ("ClientCertificate", "team", "app")


@pytest.mark.parametrize(
    "seen, written, shown",
    [
        (None, "120", False),
        ("120", "120", True),
        ("121", "120", True),
        ("119", "120", False),
        ("abc", "120", False),
    ],
    ids=[
        "nothing seen yet: our write is not shown",
        "the watch showed our write",
        "the watch showed a later write (someone else's)",
        "the watch is still behind our write",
        "an opaque version is never assumed newer",
    ],
)
def test_whether_the_watch_has_shown_our_write(seen, written, shown):
    from certoperator.secrets import not_older

    assert not_older(seen, written) is shown


def test_kopf_requests_are_retried_without_end_until_the_shutdown_begins():
    watchdog = Watchdog(stall_seconds=60, shutdown_seconds=25)
    delays = iter(RetryForever(watchdog.is_stopping))
    seen = [next(delays) for _ in range(len(RETRY_DELAYS) + 50)]
    assert seen[: len(RETRY_DELAYS)] == list(RETRY_DELAYS)
    assert set(seen[len(RETRY_DELAYS) :]) == {MAX_RETRY_DELAY}

    watchdog.stopping("SIGTERM")

    # kopf makes the attempt it holds a delay for, then gives up: nothing holds the exit.
    assert list(delays) == []
    assert list(RetryForever(watchdog.is_stopping)) == []
