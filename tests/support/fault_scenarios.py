"""The operator under control-plane faults: each scenario runs the real operator (the packaged
``clientcert-operator``) against a real control plane and the local CA, injects one fault, and
returns what happened. tests/operator/test_operator_faults.py asserts on the results;
bench/operator_faults.py reports them.

The CA is slowed with its own delay fault so a burst is still under way when the fault lands.
Every wait is bounded; each scenario stops the operators it started.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from support import plane_faults
from support.operator_process import (
    OperatorProcess,
    apply,
    certificate_manifest,
    condition,
    get,
    wait_for,
)

CONCURRENCY = 8
SHUTDOWN_SECONDS = 15
# Counted by the local CA when a call ends; invocations minus these are the calls in flight.
_ENDED = ("issued", "refused", "crashed", "throttled", "unavailable")


@dataclass
class FaultResult:
    fault: str
    certificates: int  # that must end Ready
    ready: int = 0
    invocations: int = 0  # CA invocations the scenario caused
    allowed: int = 0  # the most the promise allows: one each, plus calls in flight at a kill
    recovery_seconds: float | None = None  # from the end of the fault to all Ready
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def per_certificate(self) -> float:
        return self.invocations / self.certificates if self.certificates else 0.0


class Lab:
    """A control plane, the local CA, and operators started on demand."""

    def __init__(
        self, kube: Any, plane: Any, ca: Any, tmp: Path, source: Path | None = None
    ) -> None:
        """``source``: another checkout whose operator runs (a benchmark's before/after)."""
        self.kube, self.plane, self.ca, self.tmp, self.source = kube, plane, ca, tmp, source
        self.operators: list[OperatorProcess] = []

    # --- pieces -------------------------------------------------------------------------------

    def operator(self, *args: str, peering: str | None = None, **settings: str) -> OperatorProcess:
        flags = [f"--peering={peering}"] if peering else ["--standalone"]
        defaults = {
            "max_concurrent_issuances": str(CONCURRENCY),
            "shutdown_seconds": str(SHUTDOWN_SECONDS),
        }
        log = self.tmp / f"operator-{len(self.operators) + 1}.log"
        op = OperatorProcess.cli(self.kube, self.ca, log, *flags, *args, **{**defaults, **settings})
        if self.source is not None:
            paths = [str(self.source / "operator"), str(self.source)]
            op.env["PYTHONPATH"] = os.pathsep.join(paths)
        self.operators.append(op)
        return op.start()

    def peering(self, hint: str) -> str:
        name = self.kube.new_namespace_name(hint)
        body = {
            "apiVersion": "kopf.dev/v1",
            "kind": "ClusterKopfPeering",
            "metadata": {"name": name},
        }
        self.kube.kubectl("apply", "-f", "-", input=json.dumps(body))
        return name

    def peers(self, name: str) -> dict[str, Any]:
        return dict((get(self.kube, "clusterkopfpeering", name) or {}).get("status") or {})

    def namespace(self, hint: str) -> str:
        name = self.kube.new_namespace_name(hint)
        self.kube.kubectl("create", "namespace", name)
        return name

    def create(self, namespace: str, names: Iterable[str], **spec: Any) -> list[str]:
        names = list(names)
        manifests = [certificate_manifest(n, namespace, **spec) for n in names]
        apply(self.kube, *manifests, server_side=True)
        return names

    def objects(self, namespace: str) -> list[dict]:
        out = self.kube.kubectl(
            "get", "clientcertificates", "-n", namespace, "-o", "json", check=False
        ).stdout
        try:
            return list(json.loads(out)["items"])
        except (ValueError, KeyError):
            return []

    def ready_names(self, namespace: str) -> set[str]:
        items = self.objects(namespace)
        return {i["metadata"]["name"] for i in items if condition(i).get("status") == "True"}

    def wait_ready(self, namespace: str, names: Iterable[str], timeout: float = 120) -> float:
        wanted, began = set(names), time.monotonic()
        wait_for(lambda: self.ready_names(namespace) >= wanted, timeout, 0.5,
                 f"{len(wanted)} ClientCertificates Ready in {namespace}")  # fmt: skip
        return time.monotonic() - began

    def invocations(self) -> int:
        return int(self.ca.stats()["invocations"])

    def in_flight(self) -> int:
        stats = self.ca.stats()
        return int(stats["invocations"] - sum(stats.get(k, 0) for k in _ENDED))

    def wait_invocations(self, at_least: int, since: int, timeout: float = 60) -> None:
        wait_for(lambda: self.invocations() - since >= at_least, timeout, 0.1,
                 f"{at_least} CA invocations")  # fmt: skip

    def wait_quiet(self, timeout: float = 60) -> None:
        """Until no CA call is in flight (a late duplicate would start before the end)."""
        wait_for(lambda: self.in_flight() == 0, timeout, 0.2, "no CA call in flight")
        time.sleep(2)

    def serials(self, namespace: str, names: Iterable[str]) -> dict[str, int | None]:
        """The serial of the certificate in each name's Secret (None: no Secret)."""
        found = {}
        for name in names:
            secret = get(self.kube, "secret", f"{name}-tls", namespace)
            if secret is None:
                found[name] = None
                continue
            pem = base64.b64decode(secret["data"]["tls.crt"])
            found[name] = x509.load_pem_x509_certificates(pem)[0].serial_number
        return found

    def events_about(self, namespace: str, names: Iterable[str]) -> list[dict]:
        wanted = set(names)
        items = self.kube.get_json("events", "-n", namespace)["items"]
        return [e for e in items if e["involvedObject"].get("name") in wanted]

    def stop(self) -> None:
        for op in self.operators:
            op.stop()
        self.operators.clear()


def soft_wait(predicate: Any, timeout: float, interval: float = 0.2) -> float:
    """Until ``predicate`` holds; the time (``time.time()``) it did, or when the wait ended. For
    what a figure records rather than what must happen."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(interval)
    return time.time()


def _expires(record: dict[str, Any]) -> float:
    return datetime.fromisoformat(record["lastseen"]).timestamp() + int(record["lifetime"])


# --- the faults ----------------------------------------------------------------------------------


def control_plane_outage(
    lab: Lab, component: str = "kube-apiserver", seconds: float = 10.0, count: int = 30
) -> FaultResult:
    """etcd or the API server killed mid-burst and started again ``seconds`` later."""
    op = lab.operator()
    ns = lab.namespace(f"{component.split('-')[-1]}-outage")
    lab.ca.inject("delay", count=count, seconds=1)
    start = lab.invocations()
    names = lab.create(ns, [f"c{i:02d}" for i in range(count)])
    lab.wait_invocations(CONCURRENCY, start)
    plane_faults.kill(lab.plane, component)
    in_flight = lab.in_flight()
    time.sleep(seconds)
    plane_faults.restart(lab.plane, component, lab.kube)
    recovery = lab.wait_ready(ns, names)
    lab.wait_quiet()
    serials = lab.serials(ns, names)
    result = FaultResult(
        fault=f"{component} down {seconds:g} s mid-burst",
        certificates=count,
        ready=len(lab.ready_names(ns) & set(names)),
        invocations=lab.invocations() - start,
        allowed=count,
        recovery_seconds=round(recovery, 1),
        details={"in_flight_at_fault": in_flight, "operator_alive": op.proc.poll() is None,
                 "distinct_serials": len({s for s in serials.values() if s})},
    )  # fmt: skip
    lab.stop()
    return result


def operator_killed(lab: Lab, peering: bool, count: int = 24) -> FaultResult:
    """The operator SIGKILLed mid-burst, a new process started on the same host at once with the
    same stash (the chart's emptyDir survives a container restart). Only the killed one's CA
    calls in flight are lost: what it had issued but not yet written is in the stash, and the new
    one writes it, then issues exactly the certificates that have neither, once each."""
    peering_name = lab.peering("kill-peering") if peering else None
    stash = lab.tmp / "kill-stash"
    first = lab.operator(peering=peering_name, stash_dir=str(stash))
    ns = lab.namespace("operator-killed")
    lab.ca.inject("delay", count=count * 2, seconds=2)
    start = lab.invocations()
    names = lab.create(ns, [f"c{i:02d}" for i in range(count)])
    lab.wait_invocations(CONCURRENCY + 2, start)
    details: dict[str, Any] = {}
    if peering_name:
        records = lab.peers(peering_name)
        (dead,) = records  # the only operator so far
    assert first.proc is not None
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    time.sleep(1)  # writes the dead process had sent still land
    written = sum(1 for serial in lab.serials(ns, names).values() if serial)
    by_first = lab.invocations() - start
    stashed = len(list((stash / "pending").glob("*.json")))
    details.update(written_at_kill=written, stashed_at_kill=stashed)
    began = time.monotonic()
    lab.operator(peering=peering_name, stash_dir=str(stash))
    if peering_name:
        removed = soft_wait(lambda: dead not in lab.peers(peering_name), 90)
        # Removed while kopf would still have counted it as a live peer and paused behind it
        # (positive), or only once it expired (negative).
        details["dead_record_seconds_left"] = round(_expires(records[dead]) - removed, 1)
    lab.wait_ready(ns, names, timeout=180)
    recovery = time.monotonic() - began
    lab.wait_quiet()
    total = lab.invocations() - start
    # Issued twice: the killed process's calls in flight, whose answers nobody received.
    details.update(by_second=total - by_first, missing_at_kill=count - written,
                   lost_in_flight=total - count)  # fmt: skip
    result = FaultResult(
        fault=f"operator SIGKILLed mid-burst, peering {'on' if peering else 'off'}",
        certificates=count,
        ready=len(lab.ready_names(ns) & set(names)),
        invocations=total,
        allowed=count + CONCURRENCY,
        recovery_seconds=round(recovery, 1),
        details=details,
    )
    lab.stop()
    return result


def slow_ca(lab: Lab, queued: int = 10) -> FaultResult:
    """A slow CA (4 s a call, 2 at once) with a queue of issuances: what needs no CA call is
    done meanwhile, and a spec change that must wait says so in status."""
    op = lab.operator(max_concurrent_issuances="2")
    ns = lab.namespace("slow-ca")
    steady = lab.create(ns, ["steady", "doomed"])
    lab.wait_ready(ns, steady)
    lab.ca.inject("delay", count=queued + 4, seconds=4)
    start = lab.invocations()
    issued_before = lab.ca.stats()["issued"]
    names = lab.create(ns, [f"q{i:02d}" for i in range(queued)])
    lab.wait_invocations(2, start)

    def issued() -> int:
        return int(lab.ca.stats()["issued"] - issued_before)

    details: dict[str, Any] = {}
    # Secret metadata from secretTemplate: a patch, no CA call, no wait.
    template = {"spec": {"secretTemplate": {"labels": {"tier": "gold"}}}}
    lab.kube.kubectl(
        "patch", "clientcertificate", "steady", "-n", ns, "--type=merge", "-p", json.dumps(template)
    )

    def labelled() -> bool:
        secret = get(lab.kube, "secret", "steady-tls", ns) or {}
        return (secret.get("metadata", {}).get("labels") or {}).get("tier") == "gold"

    wait_for(labelled, 30, 0.2, "the secretTemplate label on the Secret")
    details["template_applied_with_issuances_left"] = queued - issued()
    # A deletion: no finalizer, nothing to wait for.
    lab.kube.kubectl("delete", "clientcertificate", "doomed", "-n", ns, "--timeout=20s")
    details["deleted_with_issuances_left"] = queued - issued()
    # A spec change: queued behind the others, and status says so.
    sans = {"spec": {"sans": ["steady.example.com", "alt.example.com"]}}
    lab.kube.kubectl(
        "patch", "clientcertificate", "steady", "-n", ns, "--type=merge", "-p", json.dumps(sans)
    )

    def waiting_message() -> str | None:
        issuing = condition(get(lab.kube, "clientcertificate", "steady", ns), "Issuing")
        message = issuing.get("message") or ""
        waiting = issuing.get("status") == "True" and "Waiting for the CA" in message
        return message if waiting else None

    soft_wait(lambda: waiting_message() is not None, 30)
    details["spec_change_status"] = waiting_message() or ""
    # One queued issuance withdrawn by deleting its object: never a CA call for it.
    lab.kube.kubectl("delete", "clientcertificate", names[-1], "-n", ns, "--timeout=20s")
    lab.wait_ready(ns, [*names[:-1], "steady"], timeout=180)
    wait_for(lambda: _has_san(lab, ns, "steady", "alt.example.com"), 60, 0.5,
             "the spec change issued")  # fmt: skip
    lab.wait_quiet()
    details["withdrawn_has_secret"] = lab.serials(ns, [names[-1]])[names[-1]] is not None
    result = FaultResult(
        fault="slow CA: 4 s a call, 2 at once, 10 queued",
        certificates=queued - 1 + 1,  # the queue less the withdrawn one, plus the spec change
        ready=len(lab.ready_names(ns) & {*names[:-1], "steady"}),
        invocations=lab.invocations() - start,
        allowed=queued,
        details=details,
    )
    op.stop()
    lab.stop()
    return result


def _has_san(lab: Lab, namespace: str, name: str, san: str) -> bool:
    secret = get(lab.kube, "secret", f"{name}-tls", namespace)
    if secret is None:
        return False
    leaf = x509.load_pem_x509_certificates(base64.b64decode(secret["data"]["tls.crt"]))[0]
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return san in names.get_values_for_type(x509.DNSName)


def deletions_during_issuance(lab: Lab) -> FaultResult:
    """One object deleted while its CA call runs, one while it waits for a CA slot: no call for
    the waiting one, no Secret, no event and no metrics for either."""
    op = lab.operator(max_concurrent_issuances="2")
    ns = lab.namespace("deletions")
    lab.ca.inject("delay", count=8, seconds=3)
    start = lab.invocations()
    lab.create(ns, ["run-kept", "run-deleted"])
    lab.wait_invocations(2, start)
    lab.create(ns, ["wait-kept", "wait-deleted", "wait-kept-2"])
    time.sleep(0.5)  # the watch has delivered them: they wait for a slot
    lab.kube.kubectl("delete", "clientcertificate", "run-deleted", "wait-deleted", "-n", ns,
                     "--timeout=20s")  # fmt: skip
    kept = ["run-kept", "wait-kept", "wait-kept-2"]
    lab.wait_ready(ns, kept, timeout=90)
    lab.wait_quiet()
    deleted = ["run-deleted", "wait-deleted"]
    probes = sum(op.healthy() for _ in range(5))  # as a kubelet would, and metrics scraped
    series = [
        line for line in op.metrics_text().splitlines()
        if any(f'name="{d}"' in line for d in deleted)
    ]  # fmt: skip
    result = FaultResult(
        fault="deleted while in flight and while waiting",
        certificates=len(kept),
        ready=len(lab.ready_names(ns) & set(kept)),
        invocations=lab.invocations() - start,
        allowed=len(kept) + 1,  # the call in flight at deletion could not be taken back
        details={
            "secrets_of_deleted": [n for n, s in lab.serials(ns, deleted).items() if s],
            "events_of_deleted": [e["reason"] for e in lab.events_about(ns, deleted)],
            "metric_series_of_deleted": series,
            "operator_warnings": _warnings(op),
            "probes_answered": probes,
            "probe_access_lines": [
                line
                for line in op.log_path.read_text(errors="replace").splitlines()
                if "/healthz" in line or "/metrics" in line
            ],
        },
    )
    lab.stop()
    return result


def _warnings(op: OperatorProcess) -> list[str]:
    lines = []
    for line in op.log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if str(record.get("level", "")).lower() in ("warning", "error", "critical"):
            lines.append(record.get("message", ""))
    return lines


def namespace_deleted_mid_burst(lab: Lab, count: int = 80) -> FaultResult:
    """A namespace deleted while a burst of issuances into it runs: only the calls already in
    flight are spent; nothing is written into the terminating namespace."""
    op = lab.operator()
    ns = lab.namespace("ns-deleted")
    lab.ca.inject("delay", count=count, seconds=0.5)
    start = lab.invocations()
    lab.create(ns, [f"c{i:03d}" for i in range(count)])
    lab.wait_invocations(2 * CONCURRENCY, start)
    lab.kube.kubectl("delete", "namespace", ns, "--wait=false")
    at_deletion = lab.invocations() - start
    wait_for(lambda: get(lab.kube, "namespace", ns) is None, 120, 0.5, "the namespace gone")
    lab.wait_quiet()
    total = lab.invocations() - start
    result = FaultResult(
        fault=f"namespace deleted mid-burst of {count}",
        certificates=0,
        invocations=total,
        allowed=at_deletion + CONCURRENCY,
        details={
            "invocations_at_deletion": at_deletion,
            "after_deletion": total - at_deletion,
            "terminating_errors": [w for w in _warnings(op) if "terminat" in w.lower()],
            "series_left": [line for line in op.metrics_text().splitlines()
                            if f'namespace="{ns}"' in line],
        },
    )  # fmt: skip
    lab.stop()
    return result


def long_api_outage(lab: Lab, seconds: float = 65.0, count: int = 10) -> FaultResult:
    """The API server down for longer than kopf retries a request by default (~54 s), with
    peering on (the chart's default): the operator stays alive and whole, recovers by itself,
    and still stops at once on SIGTERM."""
    peering = lab.peering("outage-peering")
    op = lab.operator(peering=peering)
    ns = lab.namespace("long-outage")
    names = lab.create(ns, [f"c{i:02d}" for i in range(count)])
    lab.wait_ready(ns, names)
    start = lab.invocations()
    plane_faults.kill(lab.plane, "kube-apiserver")
    time.sleep(seconds)
    assert op.proc is not None
    details: dict[str, Any] = {
        "alive_during_outage": op.proc.poll() is None,
        "healthy_during_outage": op.healthy(),
    }
    plane_faults.restart(lab.plane, "kube-apiserver", lab.kube)
    began = time.monotonic()
    late = lab.create(ns, ["after-outage"])
    lab.wait_ready(ns, [*names, *late])
    recovery = time.monotonic() - began
    details["healthy_after"] = op.healthy()
    stopping = time.monotonic()
    op.proc.send_signal(signal.SIGTERM)
    details["exit_code_on_sigterm"] = op.proc.wait(SHUTDOWN_SECONDS + 5)
    details["sigterm_seconds"] = round(time.monotonic() - stopping, 1)
    result = FaultResult(
        fault=f"kube-apiserver down {seconds:g} s, peering on",
        certificates=count + 1,
        ready=len(lab.ready_names(ns) & {*names, *late}),
        invocations=lab.invocations() - start,
        allowed=1,
        recovery_seconds=round(recovery, 1),
        details=details,
    )
    lab.stop()
    return result


def sigterm_during_outage(lab: Lab, count: int = 8) -> FaultResult:
    """SIGTERM while the API server is down and CA calls are in flight: the process stops within
    its budget, the certificates issued meanwhile go to the stash, and the next process writes
    them when the API is back, without calling the CA for them again."""
    stash = lab.tmp / "stash"
    op = lab.operator(stash_dir=str(stash))
    ns = lab.namespace("stash")
    lab.ca.inject("delay", count=count, seconds=3)
    start = lab.invocations()
    names = lab.create(ns, [f"c{i:02d}" for i in range(count)])
    lab.wait_invocations(count, start)
    plane_faults.kill(lab.plane, "kube-apiserver")
    assert op.proc is not None
    op.proc.send_signal(signal.SIGTERM)
    began = time.monotonic()
    code = op.proc.wait(SHUTDOWN_SECONDS + 5)  # gone within its budget, or this raises
    stopped = time.monotonic() - began
    stashed = len(list((stash / "pending").glob("*.json")))
    plane_faults.restart(lab.plane, "kube-apiserver", lab.kube)
    lab.operator(stash_dir=str(stash))
    recovery = lab.wait_ready(ns, names)
    lab.wait_quiet()
    result = FaultResult(
        fault="SIGTERM during an API outage with CA calls in flight",
        certificates=count,
        ready=len(lab.ready_names(ns) & set(names)),
        invocations=lab.invocations() - start,
        allowed=count,
        recovery_seconds=round(recovery, 1),
        details={"exit_code": code, "stop_seconds": round(stopped, 1), "stashed": stashed,
                 "stash_left": len(list((stash / "pending").glob("*.json")))},
    )  # fmt: skip
    lab.stop()
    return result
