"""Benchmark the operator at scale, on a real control plane and the real local CA (both started
here): a burst of N ClientCertificates, the operator idle once all are Ready, a restart, and a
renewal wave.

    python bench/operator_scale.py [--count 300] [--concurrency 8] [--idle-seconds 30]
                                   [--phases burst,idle,restart,wave] [--source DIR]

- burst: apply N at once (four server-side `kubectl apply` calls side by side); seconds until
  all are Ready, certificates per second, CA invocations (must equal N), the operator's peak RSS
  and its RSS per resource (growth over the idle process, divided by N), API requests per
  certificate (the API server's own counters).
- idle: then nothing changes for --idle-seconds: the operator's CPU and the API requests it
  makes meanwhile (no polling: both should not grow with N).
- restart: SIGTERM, then a new process: CA invocations (must be 0: nothing valid is re-issued),
  seconds until the new process has looked at every object again (all Ready in its metrics).
- wave: N more certificates that renew 120 s after issuance with a renewal jitter of 0.5: their
  renewal times spread over the last minute before the point; the peak number of CA calls in
  flight (never above --concurrency) and the peak invocation rate per second.

--source runs another checkout's operator (its `operator/` and `cacore/`), e.g. the commit before
a redesign, for a before/after comparison in the same conditions. A readable report on stderr,
then one JSON line of figures on stdout.
"""

import argparse
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts" / "kube"), str(ROOT / "tests")]

import kubehandle  # noqa: E402
import localkube  # noqa: E402
from support.localca_fixtures import LocalCA  # noqa: E402
from support.operator_process import (  # noqa: E402
    OperatorProcess,
    apply,
    certificate_manifest,
    install_crds,
    lambdaca_manifest,
)

TARGET_RATE, TARGET_RSS_MB = 20.0, 150.0
APPLY_WORKERS = 4
PHASES = ("burst", "backlog", "idle", "restart", "wave")
WAVE_RENEW_AFTER = 120  # seconds after issuance, before jitter
WAVE_JITTER = 0.5
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_SAMPLE = re.compile(r'^(\w+)(\{[^}]*\})? ([0-9.eE+-]+)$')


def apiserver_requests(kube):
    """apiserver_request_total by (verb, resource), summed over codes."""
    text = kube.kubectl("get", "--raw", "/metrics").stdout
    counts = Counter()
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m and m.group(1) == "apiserver_request_total":
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            counts[(labels.get("verb", ""), labels.get("resource", ""))] += int(float(m.group(3)))
    return counts


# What the operator reads and writes; the control plane's own traffic (leases, its controllers)
# is left out of the per-certificate and idle figures.
OPERATOR_RESOURCES = {
    "clientcertificates", "lambdacas", "secrets", "events", "namespaces", "clusterkopfpeerings",
}


def operator_requests(before, after, exclude):
    """The operator's requests between two counter readings, without the bench's own."""
    diff = Counter({k: after[k] - before.get(k, 0) for k in after if k[1] in OPERATOR_RESOURCES})
    for key, n in exclude.items():
        diff[key] -= n
    return +diff


def metric(operator, name, **labels):
    """One metric of the operator, rendered alone (`name[]=`): cheap even at 10,000 objects."""
    url = f"http://127.0.0.1:{operator.metrics_port}/metrics?name[]={name}"
    with _opener.open(url, timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m and m.group(1) == name:
            found = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(m.group(3))
    return total


def ready_in_metrics(operator):
    """Objects the operator reports Ready: the aggregate gauge, or (an operator without it)
    the per-certificate series."""
    try:
        value = metric(operator, "clientcert_certificates", ready="True")
        if value:
            return int(value)
    except OSError:
        return 0
    return int(metric(operator, "clientcert_certificate_ready_status", condition="True"))


class ReadyWatch:
    """Ready objects in a namespace, from `kubectl get --watch` (one LIST, then one WATCH; listed
    again when the server ends the watch)."""

    TEMPLATE = '{.metadata.name} {.status.conditions[?(@.type=="Ready")].status}{"\\n"}'

    def __init__(self, kube, namespace):
        self.argv = [str(kube.kubectl_path), "get", "clientcertificates", "-n", namespace,
                     "--watch", "-o", f"jsonpath={self.TEMPLATE}"]  # fmt: skip
        self.env, self.status = kube.env, {}
        self._start()

    def _start(self):
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def _read(self, proc):
        for line in proc.stdout:
            name, _, status = line.strip().partition(" ")
            if name:
                self.status[name] = status
        proc.wait()

    def ready(self):
        if self.proc.poll() is not None:
            self._start()
        return sum(s == "True" for s in list(self.status.values()))

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)


def apply_burst(kube, manifests, timeout):
    applier = dataclasses.replace(kube, timeout=max(kube.timeout, timeout))
    chunks = [manifests[i::APPLY_WORKERS] for i in range(APPLY_WORKERS)]
    pool = ThreadPoolExecutor(APPLY_WORKERS)
    return pool, [pool.submit(apply, applier, *c, server_side=True) for c in chunks if c]


def wait_ready(watch, count, timeout, sample=None):
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if sample:
            sample()
        if watch.ready() >= count:
            break
        time.sleep(0.2)
    return time.monotonic() - began


STARTED = []  # every operator started, stopped at the end whatever happened


class Report(list):
    """Report lines, each shown as soon as its phase ends (a long run shows its progress)."""

    def append(self, line):
        print(line, file=sys.stderr, flush=True)
        super().append(line)


def start_operator(kube, ca, scratch, name, args, **settings):
    operator = OperatorProcess.cli(
        kube, ca, scratch / f"{name}.log", "--standalone",
        max_concurrent_issuances=str(args.concurrency), **settings,
    )  # fmt: skip
    if args.source:
        src = Path(args.source).resolve()
        operator.env["PYTHONPATH"] = os.pathsep.join([str(src / "operator"), str(src)])
    STARTED.append(operator)
    return operator.start(timeout=120)


def burst(kube, ca, operator, args, report, figures):
    kube.kubectl("create", "namespace", "bench")
    idle_rss = operator.peak_rss_mb("VmRSS")
    before_req = apiserver_requests(kube)
    invocations = ca.stats()["invocations"]
    cpu = operator.cpu_seconds()
    manifests = [certificate_manifest(f"c{i:05d}", "bench") for i in range(args.count)]
    watch = ReadyWatch(kube, "bench")
    began = time.monotonic()
    pool, applies = apply_burst(kube, manifests, args.timeout)
    seconds = wait_ready(watch, args.count, args.timeout)
    for a in applies:
        a.result()
    pool.shutdown()
    applied = time.monotonic() - began
    time.sleep(3)  # late duplicate invocations, if any, would show here
    ready = watch.ready()
    watch.close()
    issued = ca.stats()["invocations"] - invocations
    requests = operator_requests(
        before_req, apiserver_requests(kube),
        {("APPLY", "clientcertificates"): args.count, ("LIST", "clientcertificates"): 1,
         ("WATCH", "clientcertificates"): 1},
    )  # fmt: skip
    rss_after = operator.peak_rss_mb("VmRSS")
    figures.update(
        ready=ready,
        seconds_to_all_ready=round(seconds, 2),
        certificates_per_second=round(ready / seconds, 1) if seconds else 0,
        ca_invocations=issued,
        operator_idle_rss_mb=round(idle_rss, 1),
        operator_peak_rss_mb=round(operator.peak_rss_mb(), 1),
        operator_rss_after_mb=round(rss_after, 1),
        rss_kb_per_resource=round((rss_after - idle_rss) * 1024 / args.count, 1),
        operator_cpu_seconds=round(operator.cpu_seconds() - cpu, 1),
        api_requests_per_certificate=round(sum(requests.values()) / args.count, 2),
    )
    report.append(
        f"burst: {ready}/{args.count} Ready after {seconds:.1f} s "
        f"({figures['certificates_per_second']}/s; applies took {applied:.1f} s); "
        f"{issued} CA invocations (must be {args.count}); RSS {idle_rss:.0f} MB idle -> "
        f"{figures['operator_peak_rss_mb']} MB peak, {rss_after:.0f} MB after "
        f"({figures['rss_kb_per_resource']} KB per resource); CPU "
        f"{figures['operator_cpu_seconds']} s; API requests per certificate "
        f"{figures['api_requests_per_certificate']}: "
        + ", ".join(f"{v} {r} {n}" for (v, r), n in requests.most_common(6))
    )


def backlog(kube, ca, operator, scratch, args, report, figures):
    """N objects applied while the operator is stopped, then the operator started: its own
    throughput from a standing start, not held back by how fast kubectl applies."""
    operator.stop()
    kube.kubectl("create", "namespace", "bench")
    manifests = [certificate_manifest(f"c{i:05d}", "bench") for i in range(args.count)]
    pool, applies = apply_burst(kube, manifests, args.timeout)
    for a in applies:
        a.result()
    pool.shutdown()
    before_req = apiserver_requests(kube)
    invocations = ca.stats()["invocations"]
    watch = ReadyWatch(kube, "bench")
    began = time.monotonic()
    operator = start_operator(kube, ca, scratch, "backlog", args)
    idle_rss = operator.peak_rss_mb("VmRSS")
    wait_ready(watch, args.count, args.timeout)
    seconds = time.monotonic() - began  # from the process start
    time.sleep(3)
    ready = watch.ready()
    watch.close()
    issued = ca.stats()["invocations"] - invocations
    requests = operator_requests(before_req, apiserver_requests(kube),
                                 {("LIST", "clientcertificates"): 1,
                                  ("WATCH", "clientcertificates"): 1})  # fmt: skip
    rss_after = operator.peak_rss_mb("VmRSS")
    figures.update(
        ready=ready,
        seconds_to_all_ready=round(seconds, 2),
        certificates_per_second=round(ready / seconds, 1) if seconds else 0,
        ca_invocations=issued,
        operator_idle_rss_mb=round(idle_rss, 1),
        operator_peak_rss_mb=round(operator.peak_rss_mb(), 1),
        operator_rss_after_mb=round(rss_after, 1),
        rss_kb_per_resource=round((rss_after - 59.0) * 1024 / args.count, 1),
        operator_cpu_seconds=round(operator.cpu_seconds(), 1),
        api_requests_per_certificate=round(sum(requests.values()) / args.count, 2),
    )
    report.append(
        f"backlog: operator started with {args.count} waiting: all Ready after {seconds:.1f} s "
        f"({figures['certificates_per_second']}/s); {issued} CA invocations (must be "
        f"{args.count}); RSS {figures['operator_peak_rss_mb']} MB peak, {rss_after:.0f} MB "
        f"after ({figures['rss_kb_per_resource']} KB per resource over a 59 MB idle process); "
        f"CPU {figures['operator_cpu_seconds']} s; API requests per certificate "
        f"{figures['api_requests_per_certificate']}"
    )
    return operator


def idle(kube, operator, args, report, figures):
    time.sleep(5)  # let the last writes settle
    before_req = apiserver_requests(kube)
    cpu = operator.cpu_seconds()
    time.sleep(args.idle_seconds)
    spent = operator.cpu_seconds() - cpu
    requests = operator_requests(before_req, apiserver_requests(kube), {})
    per_minute = sum(requests.values()) * 60 / args.idle_seconds
    figures.update(
        idle_cpu_percent=round(100 * spent / args.idle_seconds, 2),
        idle_api_requests_per_minute=round(per_minute, 1),
        idle_rss_mb=round(operator.peak_rss_mb("VmRSS"), 1),
    )
    report.append(
        f"idle {args.idle_seconds:g} s with {args.count} Ready: CPU {spent:.2f} s "
        f"({figures['idle_cpu_percent']} %), {per_minute:.1f} API requests per minute on the "
        "operator's resources: "
        + ", ".join(f"{v} {r} {n}" for (v, r), n in requests.most_common(5))
    )


def restart(kube, ca, operator, scratch, args, report, figures):
    invocations = ca.stats()["invocations"]
    began = time.monotonic()
    operator.proc.send_signal(signal.SIGTERM)
    code = operator.proc.wait(60)
    stopped = time.monotonic() - began
    began = time.monotonic()
    second = start_operator(kube, ca, scratch, "restarted", args)
    started = time.monotonic() - began
    deadline = began + args.timeout
    while time.monotonic() < deadline and ready_in_metrics(second) < args.count:
        time.sleep(0.5)
    watching = time.monotonic() - began
    time.sleep(3)
    reissued = ca.stats()["invocations"] - invocations
    figures.update(
        restart_stop_seconds=round(stopped, 2),
        restart_exit_code=code,
        restart_seconds_to_watching_all=round(watching, 1),
        restart_reissued=reissued,
        restart_rss_mb=round(second.peak_rss_mb("VmRSS"), 1),
    )
    report.append(
        f"restart: SIGTERM -> exit {code} in {stopped:.1f} s; the new process answered its "
        f"liveness after {started:.1f} s and reported all {args.count} after {watching:.1f} s; "
        f"{reissued} CA invocations (must be 0); RSS {figures['restart_rss_mb']} MB"
    )
    return second


def wave(kube, ca, operator, args, report, figures):
    kube.kubectl("create", "namespace", "wave")
    spec = {"lifetimeDays": 1, "renewBefore": f"{86400 - WAVE_RENEW_AFTER}s"}
    manifests = [certificate_manifest(f"w{i:05d}", "wave", **spec) for i in range(args.count)]
    watch = ReadyWatch(kube, "wave")
    start = ca.stats()["invocations"]
    pool, applies = apply_burst(kube, manifests, args.timeout)
    wait_ready(watch, args.count, args.timeout)
    for a in applies:
        a.result()
    pool.shutdown()
    watch.close()
    issued_by = ca.stats()["invocations"]
    items = kube.get_json("clientcertificates", "-n", "wave")["items"]
    renewals = sorted(
        datetime.fromisoformat(i["status"]["renewalTime"].replace("Z", "+00:00")).timestamp()
        for i in items
    )
    # Every certificate renews once: sample the CA until it has (or time runs out).
    samples, peak_in_flight = [], 0
    deadline = time.monotonic() + WAVE_RENEW_AFTER + args.timeout
    while time.monotonic() < deadline:
        now = ca.stats()["invocations"]
        samples.append((time.monotonic(), now))
        peak_in_flight = max(
            peak_in_flight, int(metric(operator, "clientcert_ca_invocations_in_flight"))
        )
        if now - issued_by >= args.count:
            break
        time.sleep(0.25)
    renewed = samples[-1][1] - issued_by
    rate = 0.0
    for i, (t, n) in enumerate(samples):
        later = next(((t2, n2) for t2, n2 in samples[i:] if t2 - t >= 1.0), None)
        if later:
            rate = max(rate, (later[1] - n) / (later[0] - t))
    figures.update(
        wave_first_issuances=issued_by - start,
        wave_renewal_span_seconds=round(renewals[-1] - renewals[0], 1),
        wave_renewed=renewed,
        wave_peak_in_flight=peak_in_flight,
        wave_peak_invocations_per_second=round(rate, 1),
    )
    report.append(
        f"wave: {args.count} certificates renewing {WAVE_RENEW_AFTER} s after issuance with "
        f"jitter {WAVE_JITTER}: renewal times spread over {figures['wave_renewal_span_seconds']} "
        f"s; {renewed} renewals; peak {peak_in_flight} CA calls in flight (bound "
        f"{args.concurrency}); peak {rate:.1f} invocations/s"
    )


def main():
    parser = argparse.ArgumentParser(description="the operator at scale")
    parser.add_argument("--count", type=int, default=300, help="resources (1-10000)")
    parser.add_argument("--concurrency", type=int, default=8, help="operator CA call bound")
    parser.add_argument("--phases", default="burst,idle,restart", help=",".join(PHASES))
    parser.add_argument("--idle-seconds", type=float, default=30, help="idle phase (5-600)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per wait (1-3600)")
    parser.add_argument("--source", help="a checkout whose operator runs instead of this one")
    args = parser.parse_args()
    phases = [p for p in args.phases.split(",") if p]
    if not 1 <= args.count <= 10000:
        parser.error("--count must be between 1 and 10000")
    first = {"burst", "backlog"} & set(phases)
    if not set(phases) <= set(PHASES) or len(first) > 1 or (
        {"idle", "restart"} & set(phases) and not first
    ):
        parser.error(f"--phases: some of {','.join(PHASES)}; idle and restart follow a burst or "
                     "a backlog (one of them)")  # fmt: skip
    if not 5 <= args.idle_seconds <= 600 or not 1 <= args.timeout <= 3600:
        parser.error("--idle-seconds 5-600, --timeout 1-3600")

    scratch = Path(tempfile.mkdtemp(prefix="lcc-bench-operator-"))
    report = Report()
    figures = {
        "bench": "operator_scale",
        "count": args.count,
        "concurrency": args.concurrency,
        "source": args.source or ".",
    }
    binaries = localkube.ensure_binaries()
    with kubehandle.local_cluster(binaries) as (kube, _plane):
        ca = LocalCA(scratch / "ca").start()
        operator = None
        try:
            install_crds(kube)
            apply(kube, lambdaca_manifest("local", ca))
            operator = start_operator(kube, ca, scratch, "operator", args)
            if "burst" in phases:
                burst(kube, ca, operator, args, report, figures)
            elif "backlog" in phases:
                operator = backlog(kube, ca, operator, scratch, args, report, figures)
            if "idle" in phases:
                idle(kube, operator, args, report, figures)
            if "restart" in phases:
                operator = restart(kube, ca, operator, scratch, args, report, figures)
            if "wave" in phases:
                operator.stop()
                operator = start_operator(
                    kube, ca, scratch, "wave", args, renewal_jitter=str(WAVE_JITTER)
                )
                wave(kube, ca, operator, args, report, figures)
            operator.alive()
        finally:
            for started in STARTED:
                started.stop()
            ca.stop()
    figures["load_average"] = round(os.getloadavg()[0], 1)
    print(json.dumps(figures))
    ok = figures.get("ca_invocations", args.count) == args.count and not figures.get(
        "restart_reissued"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
