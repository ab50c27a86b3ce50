"""What the benchmarks share: the one import of the test helpers (tests/support), per-process
figures from /proc, the API server's request counters, and one measurement of "N certificates
applied at once until all are Ready" that every tool goes through, so the operator and its
peers are timed and counted by the same code.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The one place that knows where these helpers live (scripts/kube is becoming a package).
sys.path[:0] = [str(ROOT / "tests")]

from support.apimetrics import apiserver_requests  # noqa: E402
from support.localca_fixtures import LocalCA  # noqa: E402
from support.operator_process import (  # noqa: E402
    OperatorProcess,
    apply,
    certificate_manifest,
    free_port,
    install_crds,
    lambdaca_manifest,
)

__all__ = [
    "APPLY_WORKERS",
    "LocalCA",
    "Measurement",
    "ReadyWatch",
    "OperatorProcess",
    "ROOT",
    "apply",
    "certificate_manifest",
    "cpu_seconds",
    "delete_namespace",
    "free_port",
    "http_ok",
    "install_crds",
    "lambdaca_manifest",
    "measure",
    "measure_operator",
    "start_local_ca_issuer",
    "start_operator",
    "rss_mb",
    "ready_count",
]

# Loopback requests must never go through a proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
APPLY_WORKERS = 4


# --- processes ---------------------------------------------------------------------------------


def rss_mb(pid: int, which: str = "VmHWM") -> float:
    """The process's peak resident memory so far (``VmRSS``: the current one), in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"{which}:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def local_ca_pid(ca: LocalCA) -> int:
    # The fixture keeps its Popen private; the CA's CPU is reported apart from the operator's.
    proc = ca._proc  # noqa: SLF001
    if proc is None:
        raise RuntimeError("the local CA is not running")
    return proc.pid


# --- metrics -----------------------------------------------------------------------------------


def http_ok(url: str) -> bool:
    """True when a GET of ``url`` answers 200 (False while the server is not up)."""
    try:
        with _opener.open(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


# --- cluster -----------------------------------------------------------------------------------


def ready_count(kube: Any, plural: str, namespace: str) -> int:
    """Objects of ``plural`` in ``namespace`` whose Ready condition is True (one kubectl call)."""
    path = '{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}'
    out = kube.kubectl("get", plural, "-n", namespace, "-o", f"jsonpath={path}").stdout
    return sum(line.strip() == "True" for line in out.splitlines())


def delete_namespace(kube: Any, namespace: str, timeout: float) -> bool:
    """Delete the namespace and wait until it is gone; False if it is still there at timeout."""
    kube.kubectl("delete", "namespace", namespace, "--wait=false", "--ignore-not-found")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = kube.kubectl("get", "namespace", namespace, "--ignore-not-found", "-o", "name")
        if not done.stdout.strip():
            return True
        time.sleep(1)
    return False


# --- the measurement ---------------------------------------------------------------------------


@dataclass
class Measurement:
    """One tool taking N certificates from apply to all Ready."""

    count: int
    ready: int = 0
    apply_seconds: float = 0.0
    seconds: float = 0.0  # apply started -> all Ready (or the time limit)
    timed_out: bool = False
    controller_rss_before_mb: float = 0.0  # resident just before the apply (idle, warm)
    controller_peak_rss_mb: float = 0.0  # the process's peak since it started
    controller_cpu_seconds: float = 0.0
    signer_cpu_seconds: float | None = None  # the local CA process, when signing is outside
    control_plane_cpu_seconds: float = 0.0  # kube-apiserver + etcd
    load_average: float = 0.0  # 1-minute load at the end: other work on the machine shows here
    requests: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    progress: list[tuple[float, int]] = field(default_factory=list)  # (seconds, Ready) samples

    @property
    def rate(self) -> float:
        return self.ready / self.seconds if self.seconds else 0.0

    @property
    def api_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def requests_per_certificate(self) -> float:
        return self.api_requests / self.count if self.count else 0.0

    def seconds_to(self, fraction: float) -> float | None:
        """When the first poll saw at least ``fraction`` of the certificates Ready."""
        wanted = max(1, round(self.count * fraction))
        return next((t for t, ready in self.progress if ready >= wanted), None)

    def top_requests(self, limit: int = 8) -> list[tuple[str, int]]:
        named = Counter({" ".join(filter(None, key)): n for key, n in self.requests.items()})
        return named.most_common(limit)


class ReadyWatch:
    """How many objects of ``plural`` in ``namespace`` are Ready, from ``kubectl get --watch``
    (a LIST, then one WATCH stream; listed again if the server ends the watch, as it does after
    some minutes). Reading it costs the tools nothing: polling their metrics instead made each
    render megabytes of per-certificate gauges at N = 3000."""

    TEMPLATE = '{.metadata.name} {.status.conditions[?(@.type=="Ready")].status}{"\\n"}'

    def __init__(self, kube: Any, plural: str, namespace: str) -> None:
        argv = [str(kube.kubectl_path), "get", plural, "-n", namespace, "--watch"]
        self._argv, self._env = [*argv, "-o", f"jsonpath={self.TEMPLATE}"], kube.env
        self._status: dict[str, str] = {}
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        self.proc = subprocess.Popen(
            self._argv, env=self._env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            name, _, status = line.strip().partition(" ")
            if name:
                self._status[name] = status  # one writer; readers only count

    def ready(self) -> int:
        if self.proc.poll() is not None:
            if self.restarts >= 10:
                raise RuntimeError(f"kubectl --watch exited: {self.proc.stderr.read().strip()}")
            self.restarts += 1
            self._start()
        return sum(status == "True" for status in list(self._status.values()))

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


def measure(
    kube: Any,
    plane_pids: dict[str, int],
    manifests: list[dict],
    *,
    plural: str,
    controller_pid: int,
    signer_pid: int | None,
    timeout: float,
    settle: float = 5.0,
    interval: float = 0.2,
) -> Measurement:
    """Apply ``manifests`` (all of kind ``plural``, in one namespace; server-side ``kubectl
    apply``) and meanwhile watch them until all are Ready or ``timeout`` passes.

    CPU and API requests are counted from just before the apply to ``settle`` seconds after
    the end, so follow-up writes (events, cleanup) count too. The benchmark's own requests are
    left out: the apply (verb APPLY on the resource, which neither tool uses) and the watch's
    one LIST (its WATCH ends after the counters are read; /metrics reads are not counted).
    """
    m = Measurement(count=len(manifests))
    resource = plural.split(".", 1)[0]
    namespace = manifests[0]["metadata"]["namespace"]
    plane = [plane_pids[name] for name in ("kube-apiserver", "etcd")]
    requests_before = apiserver_requests(kube)
    m.controller_rss_before_mb = rss_mb(controller_pid, "VmRSS")
    cpu_before = cpu_seconds(controller_pid)
    signer_before = cpu_seconds(signer_pid) if signer_pid else 0.0
    plane_before = sum(cpu_seconds(pid) for pid in plane)

    # The apply runs beside the watch, in APPLY_WORKERS kubectl calls at once: one kubectl
    # applies a few dozen objects a second on a busy machine, too slow for thousands to
    # arrive "at once"; and the tools start issuing as the first objects arrive.
    applier = dataclasses.replace(kube, timeout=max(kube.timeout, timeout))
    chunks = [manifests[i::APPLY_WORKERS] for i in range(APPLY_WORKERS)]
    finished: list[float] = []
    watch = ReadyWatch(kube, plural, namespace)
    try:
        with ThreadPoolExecutor(APPLY_WORKERS) as pool:
            began = time.monotonic()
            applies = [pool.submit(apply, applier, *c, server_side=True) for c in chunks if c]
            for a in applies:
                a.add_done_callback(lambda _: finished.append(time.monotonic() - began))
            deadline = began + timeout
            while True:
                ready = watch.ready()
                m.progress.append((round(time.monotonic() - began, 1), ready))
                if ready >= m.count or time.monotonic() >= deadline:
                    break
                time.sleep(interval)
            m.seconds = time.monotonic() - began
            m.timed_out = ready < m.count
            for a in applies:
                a.result()  # an apply that failed fails the measurement
        m.apply_seconds = max(finished)
        m.load_average = os.getloadavg()[0]
        time.sleep(settle)

        m.controller_cpu_seconds = cpu_seconds(controller_pid) - cpu_before
        m.controller_peak_rss_mb = rss_mb(controller_pid)
        if signer_pid:
            m.signer_cpu_seconds = cpu_seconds(signer_pid) - signer_before
        m.control_plane_cpu_seconds = sum(cpu_seconds(pid) for pid in plane) - plane_before
        after = apiserver_requests(kube)
    finally:
        watch.close()
    ours = Counter({("APPLY", resource, ""): len(manifests), ("LIST", resource, ""): 1})
    m.requests = Counter(
        {key: after[key] - requests_before.get(key, 0) - ours[key] for key in after}
    )
    m.requests = +m.requests  # keeps the positive counts only
    m.ready = ready_count(kube, plural, namespace)
    return m


# --- this project's operator -------------------------------------------------------------------

OPERATOR_PLURAL = "clientcertificates.clientcerts.dev"


def start_local_ca_issuer(kube: Any, state_dir: Path, name: str = "local") -> LocalCA:
    """The real local CA, the operator's CRDs and a LambdaCA ``name`` pointing at the CA."""
    ca = LocalCA(state_dir).start()
    try:
        install_crds(kube)
        apply(kube, lambdaca_manifest(name, ca))
    except BaseException:
        ca.stop()
        raise
    return ca


def start_operator(kube: Any, ca: LocalCA, log_path: Path, concurrency: int) -> OperatorProcess:
    """The ``clientcert-operator`` command, standalone, with ``concurrency`` CA calls at most."""
    return OperatorProcess.cli(
        kube, ca, log_path, "--standalone", max_concurrent_issuances=str(concurrency)
    ).start()


def measure_operator(
    kube: Any,
    plane_pids: dict[str, int],
    operator: OperatorProcess,
    ca: LocalCA,
    namespace: str,
    count: int,
    timeout: float,
) -> tuple[Measurement, int]:
    """``count`` ClientCertificates in a new ``namespace`` through ``measure``; also returns
    the CA invocations they caused (exactly ``count`` when nothing was issued twice)."""
    kube.kubectl("create", "namespace", namespace)
    invocations = ca.stats()["invocations"]
    measurement = measure(
        kube,
        plane_pids,
        [certificate_manifest(f"c{i:05d}", namespace) for i in range(count)],
        plural=OPERATOR_PLURAL,
        controller_pid=operator.proc.pid,
        signer_pid=local_ca_pid(ca),
        timeout=timeout,
    )
    return measurement, ca.stats()["invocations"] - invocations
