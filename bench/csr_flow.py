"""Benchmark the CSR signer: N CertificateSigningRequests created at once by N ServiceAccounts
(default 100), each with its own token, approved by a ClientCertificatePolicy and signed by the
operator through the local CA, on a real control plane; all started here.

    python bench/csr_flow.py [--count 100] [--concurrency 8] [--profile FILE]

Reports how many were signed, create -> certificate latency (p50, p95, max; from just before each
POST to the watch event that carries the certificate), CA invocations (must equal N) and the
operator's peak RSS; a readable report on stderr, then one JSON line of figures on stdout.
Target: p50 <= 500 ms on this machine with the local CA.
"""

import argparse
import http.client
import json
import os
import resource
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from benchlib import apiserver_requests, cpu_seconds, local_ca_pid  # noqa: E402
from support.csr_requests import (  # noqa: E402
    CLIENT_USAGES,
    REQUESTER_RULES,
    api_ca_file,
    policy_manifest,
    signer_lambdaca,
)
from support.localca_fixtures import LocalCA  # noqa: E402
from support.operator_process import OperatorProcess, apply, install_crds  # noqa: E402

from cacore.edge.keygen import build_csr, generate_key  # noqa: E402
from cacore.kubecsr import CSR_API_VERSION, csr_object  # noqa: E402
from cacore.request import Subject  # noqa: E402
from kubelocal.binaries import ensure_binaries  # noqa: E402
from kubelocal.handle import local_cluster  # noqa: E402
from sidecar.kubeclient import CSRS, KubeClient  # noqa: E402

TARGET_P50_MS = 500.0
NAMESPACE, LAMBDACA, LABEL = "bench", "bench", "bench.clientcerts.dev/run"


WATCHER_RULES = [
    {
        "apiGroups": ["certificates.k8s.io"],
        "resources": ["certificatesigningrequests"],
        "verbs": ["list", "watch"],
    }
]


def role(name, rules, accounts):
    """A ClusterRole with ``rules`` bound to the bench namespace's ``accounts``."""
    ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}
    subjects = [{"kind": "ServiceAccount", "name": a, "namespace": NAMESPACE} for a in accounts]
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": name}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": name}, "roleRef": ref, "subjects": subjects},
    ]  # fmt: skip


def stages(log_path, created_wall):
    """From the operator's log: create -> approved and approved -> signed, p50 in ms (the log's
    wall-clock times against the bench's wall-clock create times)."""
    approved, signed = {}, {}
    for line in Path(log_path).read_text().splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        into = {"CSR approved": approved, "CSR signed": signed}.get(record.get("message"))
        if into is not None:
            into[record["csr"]] = datetime.fromisoformat(record["time"]).timestamp()
    to_approved = [(approved[n] - t) * 1000 for n, t in created_wall.items() if n in approved]
    to_signed = [(signed[n] - approved[n]) * 1000 for n in signed if n in approved]
    return {
        "create_to_approved_p50_ms": round(statistics.median(to_approved), 1)
        if to_approved
        else None,
        "approved_to_signed_p50_ms": round(statistics.median(to_signed), 1) if to_signed else None,
    }


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


class Watcher:
    """Records, per CSR name, the monotonic time its certificate first appears."""

    def __init__(self, server, token_file, ca_file, run):
        parts = urlsplit(server)
        self.host, self.port = parts.hostname, parts.port
        self.token = Path(token_file).read_text().strip()
        self.context = ssl.create_default_context(cafile=str(ca_file))
        self.run = run
        self.signed = {}
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _get(self, query, timeout):
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.context,
                                           timeout=timeout)  # fmt: skip
        conn.request("GET", f"{CSRS}?{urlencode(query)}",
                     headers={"Authorization": f"Bearer {self.token}"})  # fmt: skip
        return conn.getresponse()

    def _seen(self, obj):
        if (obj.get("status") or {}).get("certificate"):
            self.signed.setdefault(obj["metadata"]["name"], time.monotonic())

    def _watch(self):
        """List, then watch from the list's version; again after any error (the API server may
        still be warming up), so no signing is missed."""
        selector = f"{LABEL}={self.run}"
        while True:
            try:
                listed = self._get({"labelSelector": selector}, 30)
                if listed.status != 200:
                    listed.read()
                    time.sleep(0.2)
                    continue
                body = json.loads(listed.read())
                for obj in body.get("items") or []:
                    self._seen(obj)
                version = body["metadata"]["resourceVersion"]
                query = {"watch": "1", "labelSelector": selector, "resourceVersion": version,
                         "timeoutSeconds": "600"}  # fmt: skip
                stream = self._get(query, 620)
                if stream.status != 200:
                    stream.read()
                    time.sleep(0.2)
                    continue
                self.ready.set()
                while True:
                    line = stream.readline()
                    if not line:
                        break
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        break
                    self._seen(event.get("object") or {})
            except (OSError, http.client.HTTPException, ValueError):
                time.sleep(0.2)

    def start(self):
        self.thread.start()
        self.ready.wait(30)
        return self


def start_profiler(path, pid):
    """py-spy sampling the operator (only the thread holding the GIL: where its CPU goes)."""
    argv = ["py-spy", "record", "--gil", "--nonblocking", "--rate", "1000", "--format", "raw",
            "--output", str(path), "--pid", str(pid)]  # fmt: skip
    profiler = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # attached before the burst starts
    return profiler


def stop_profiler(profiler):
    profiler.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
    profiler.wait(30)


def main():
    parser = argparse.ArgumentParser(description="CSRs from N ServiceAccounts to certificates")
    parser.add_argument("--count", type=int, default=100, help="CSRs and ServiceAccounts (1-500)")
    parser.add_argument("--concurrency", type=int, default=8, help="operator CA call bound")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for all")
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="record the operator with py-spy (on PATH) during the burst only, --gil, as "
        "collapsed stacks (py-spy's raw format) into FILE",
    )
    args = parser.parse_args()
    if not 1 <= args.count <= 500:
        parser.error("--count must be between 1 and 500")
    if args.profile and shutil.which("py-spy") is None:
        parser.error("--profile needs py-spy on PATH (pip install py-spy)")

    scratch = Path(tempfile.mkdtemp(prefix="lcc-bench-csr-"))
    run = str(int(time.time()))
    binaries = ensure_binaries()
    with local_cluster(binaries) as (kube, plane):
        ca = LocalCA(scratch / "ca").start()
        operator = None
        try:
            install_crds(kube)
            kube.kubectl("create", "namespace", NAMESPACE)
            accounts = [f"sa{i:03d}" for i in range(args.count)]
            signer = f"clientcerts.dev/{LAMBDACA}"
            objects = [
                signer_lambdaca(LAMBDACA, ca, defaultLifetimeDays=1),
                policy_manifest(
                    "bench", signer,
                    requesters={"serviceAccounts": [{"namespace": NAMESPACE}]},
                    subject={"commonName": "{serviceAccount}.{namespace}.svc"},
                    maxLifetimeDays=1,
                ),
                *role("bench-requesters", REQUESTER_RULES, [*accounts, "watcher"]),
                *role("bench-watcher", WATCHER_RULES, ["watcher"]),
                *[{"apiVersion": "v1", "kind": "ServiceAccount",
                   "metadata": {"name": a, "namespace": NAMESPACE}}
                  for a in [*accounts, "watcher"]],
            ]  # fmt: skip
            apply(kube, *objects)
            ca_file = api_ca_file(kube, scratch)

            def token(account):
                path = scratch / f"{account}.token"
                path.write_text(kube.token_for(NAMESPACE, account))
                return path

            with ThreadPoolExecutor(8) as pool:
                tokens = dict(zip(accounts, pool.map(token, accounts), strict=True))
            watcher_token = token("watcher")
            bodies = {}
            for account in accounts:
                pem = build_csr(generate_key(), Subject(f"{account}.{NAMESPACE}.svc"))
                body = csr_object(pem, signer, CLIENT_USAGES, 1, f"{account}-", {LABEL: run})
                assert body["apiVersion"] == CSR_API_VERSION
                bodies[account] = body
            clients = {a: KubeClient(kube.server, tokens[a], ca_file) for a in accounts}
            for client in clients.values():
                # Each requester's TLS settings, made before the clock starts: a Pod's process
                # setup, not part of its request (here 100 of them would queue on one GIL).
                _ = client.context

            operator = OperatorProcess.cli(
                kube, ca, scratch / "operator.log", "--standalone",
                signer="true", max_concurrent_issuances=str(args.concurrency),
            ).start()  # fmt: skip
            time.sleep(1)  # its watches are open
            watcher = Watcher(kube.server, watcher_token, ca_file, run).start()
            base_invocations = ca.stats()["invocations"]
            cpu_before = operator.cpu_seconds()
            idle_rss = operator.peak_rss_mb("VmRSS")
            # Who used the 2 cores during the burst: the operator alone is not the whole story.
            pids = {**{n: p for n, p in plane.pids.items()
                       if n in ("kube-apiserver", "etcd", "kube-controller-manager")},
                    "local CA": local_ca_pid(ca)}  # fmt: skip
            others_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            self_before = resource.getrusage(resource.RUSAGE_SELF)
            requests_before = apiserver_requests(kube)
            profiler = start_profiler(args.profile, operator.proc.pid) if args.profile else None

            created, created_wall, posted_in = {}, {}, {}
            gate = threading.Barrier(args.count)

            def create(account):
                gate.wait()
                started = time.monotonic()
                wall = time.time()
                name = clients[account].create_csr(bodies[account])["metadata"]["name"]
                created[name], created_wall[name] = started, wall
                posted_in[name] = (time.monotonic() - started) * 1000

            began = time.monotonic()
            with ThreadPoolExecutor(args.count) as pool:
                list(pool.map(create, accounts))
            posted = time.monotonic() - began
            deadline = began + args.timeout
            while time.monotonic() < deadline and len(watcher.signed) < args.count:
                time.sleep(0.05)
            seconds = time.monotonic() - began
            if profiler is not None:
                stop_profiler(profiler)
            time.sleep(2)  # late duplicate invocations, if any, would show here
            invocations = ca.stats()["invocations"] - base_invocations
            rss = operator.peak_rss_mb()
            cpu = operator.cpu_seconds() - cpu_before
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu_by = {"operator": cpu, **{n: cpu_seconds(p) - others_before[n]
                                          for n, p in pids.items()},
                      "bench (clients, watcher)": usage.ru_utime + usage.ru_stime
                      - self_before.ru_utime - self_before.ru_stime}  # fmt: skip
            split = stages(scratch / "operator.log", created_wall)
            requests = apiserver_requests(kube) - requests_before
            # The operator posts its two events per CSR (Approved, Issued) once the burst is
            # through: wait for them, so none is lost and none is left out of the count.
            events = requests[("POST", "events", "")]
            while events < 2 * args.count and time.monotonic() < deadline + 15:
                time.sleep(0.25)
                events = (apiserver_requests(kube) - requests_before)[("POST", "events", "")]
            events_after = time.monotonic() - began
            operator.alive()
        finally:
            if operator is not None:
                operator.stop()
            ca.stop()

    latencies = [
        (watcher.signed[name] - started) * 1000
        for name, started in created.items()
        if name in watcher.signed
    ]
    signed = len(latencies)
    p50 = statistics.median(latencies) if latencies else float("nan")
    p95 = percentile(latencies, 0.95) if latencies else float("nan")
    worst = max(latencies) if latencies else float("nan")
    post_p50 = statistics.median(posted_in.values()) if posted_in else float("nan")
    print(
        f"{args.count} ServiceAccounts created one CSR each at once "
        f"({posted:.2f} s for all POSTs)\n"
        f"signed: {signed}/{args.count}, all within {seconds:.2f} s\n"
        f"create -> certificate: p50 {p50:.0f} ms (target <= {TARGET_P50_MS:g}), "
        f"p95 {p95:.0f} ms, max {worst:.0f} ms\n"
        f"of which the requester's POST itself (connection, TLS, token review, admission): "
        f"p50 {post_p50:.0f} ms\n"
        f"CA invocations: {invocations} (must equal {args.count})\n"
        f"events posted: {events / args.count:.2f} per CSR, all {events_after:.1f} s after the "
        "first POST (they wait until the burst is signed)\n"
        f"operator peak RSS: {rss:.1f} MB ({idle_rss:.1f} MB idle before); "
        f"operator CPU during the run: {cpu:.1f} s; CA calls bounded to {args.concurrency}\n"
        f"create -> approved p50 {split['create_to_approved_p50_ms']} ms, approved -> signed p50 "
        f"{split['approved_to_signed_p50_ms']} ms (the operator's log)\n"
        "CPU seconds from the first POST to the last certificate (+2 s): "
        + ", ".join(f"{name} {value:.1f}" for name, value in cpu_by.items())
        + f"; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n"
        "API requests per CSR (all clients): "
        + ", ".join(
            f"{verb} {'/'.join(filter(None, (resource, sub)))} {count / args.count:.2f}"
            for (verb, resource, sub), count in sorted(requests.items())
            if resource in ("certificatesigningrequests", "events", "configmaps")
        ),  # fmt: skip
        file=sys.stderr,
    )
    figures = {
        "bench": "csr_flow",
        "count": args.count,
        "concurrency": args.concurrency,
        "signed": signed,
        "p50_ms": round(p50, 1),
        "p95_ms": round(p95, 1),
        "max_ms": round(worst, 1),
        "post_p50_ms": round(post_p50, 1),
        "seconds_to_all_signed": round(seconds, 2),
        "ca_invocations": invocations,
        "events_per_csr": round(events / args.count, 2),
        "events_posted_after_s": round(events_after, 1),
        "operator_peak_rss_mb": round(rss, 1),
        "operator_idle_rss_mb": round(idle_rss, 1),
        "operator_cpu_seconds": round(cpu, 1),
        **split,
        "cpu_seconds": {name: round(value, 2) for name, value in cpu_by.items()},
        "load_average": round(os.getloadavg()[0], 1),
        "meets_targets": signed == args.count
        and invocations == args.count
        and p50 <= TARGET_P50_MS,
    }
    print(json.dumps(figures))
    return 0 if signed == args.count and invocations == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
