"""Benchmark the operator at scale, on a real control plane and the real local CA (both started
here): N ClientCertificates to Ready, the operator idle once all are Ready, a restart, and a
renewal wave.

    python bench/operator_scale.py [--count 300] [--concurrency 8] [--idle-seconds 30]
                                   [--phases burst,idle,restart,wave] [--source DIR]

- burst: N applied at once (benchlib's measurement, as bench/vs_cert_manager.py takes it):
  seconds to all Ready, certificates per second, CA invocations (must equal N), peak RSS, CPU,
  API requests per certificate; plus the RSS once all are Ready and its growth per resource.
- backlog (instead of burst): N applied while the operator is stopped, then the operator
  started: its own throughput from a standing start, not held back by how fast kubectl applies.
- idle: nothing changes for --idle-seconds: the operator's CPU, and the API requests made
  meanwhile on the operator's resources (no polling: neither grows with N).
- restart: SIGTERM, then a new process: CA invocations (must be 0: nothing valid is re-issued),
  seconds until the new process reports every object (``clientcert_certificates``).
- wave: N more certificates that renew 120 s after issuance, renewal jitter 0.5: each renews
  60 to 120 s after its issuance; the peak number of CA calls in flight (never above
  --concurrency) and the peak invocations per second while they all renew.

--source runs another checkout's operator (its `operator/` and `cacore/`), e.g. the commit before
a redesign, for a before/after comparison in the same conditions. A readable report on stderr as
each phase ends, then one JSON line of figures on stdout.
"""

import argparse
import dataclasses
import json
import os
import signal
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from benchlib import (
    APPLY_WORKERS,
    OPERATOR_PLURAL,
    OperatorProcess,
    ReadyWatch,
    apiserver_requests,
    apply,
    certificate_manifest,
    measure_operator,
    samples,
    start_local_ca_issuer,
)

from kubelocal.binaries import ensure_binaries
from kubelocal.handle import local_cluster

TARGET_RATE, TARGET_RSS_MB = 20.0, 150.0
PHASES = ("burst", "backlog", "idle", "restart", "wave")
WAVE_RENEW_AFTER = 120  # seconds after issuance, before jitter
WAVE_JITTER = 0.5
# What the operator reads and writes; the control plane's own traffic (leases, its controllers)
# is left out of the idle figure.
OPERATOR_RESOURCES = {
    "clientcertificates", "lambdacas", "secrets", "events", "namespaces", "clusterkopfpeerings",
}  # fmt: skip
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Report(list):
    """Report lines, each shown as soon as its phase ends (a long run shows its progress)."""

    def append(self, line):
        print(line, file=sys.stderr, flush=True)
        super().append(line)


STARTED = []  # every operator started, stopped at the end whatever happened


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


def metric(operator, name, **labels):
    """One metric of the operator, rendered alone (`name[]=`): cheap even at 10,000 objects."""
    url = f"http://127.0.0.1:{operator.metrics_port}/metrics?name[]={name}"
    with _opener.open(url, timeout=10) as response:
        text = response.read().decode()
    return sum(v for found, v in samples(text, name) if labels.items() <= found.items())


def ready_in_metrics(operator):
    """Objects the operator reports Ready: the aggregate gauge, or (an operator without it)
    the per-certificate series."""
    try:
        value = metric(operator, "clientcert_certificates", ready="True")
        if value:
            return int(value)
        return int(metric(operator, "clientcert_certificate_ready_status", condition="True"))
    except OSError:
        return 0


def operator_requests(before, after):
    """Requests on the operator's resources between two readings of the API server's counters."""
    diff = Counter({k: after[k] - before.get(k, 0) for k in after if k[1] in OPERATOR_RESOURCES})
    return +diff


def apply_all(kube, manifests, timeout):
    """Server-side apply in APPLY_WORKERS kubectl calls side by side, until all are stored."""
    applier = dataclasses.replace(kube, timeout=max(kube.timeout, timeout))
    chunks = [manifests[i::APPLY_WORKERS] for i in range(APPLY_WORKERS)]
    with ThreadPoolExecutor(APPLY_WORKERS) as pool:
        for done in [pool.submit(apply, applier, *c, server_side=True) for c in chunks if c]:
            done.result()


def wait_ready(watch, count, timeout):
    began = time.monotonic()
    while time.monotonic() - began < timeout and watch.ready() < count:
        time.sleep(0.2)


def burst(kube, plane, ca, operator, args, report, figures):
    m, invocations = measure_operator(
        kube, plane.pids, operator, ca, "bench", args.count, args.timeout
    )
    rss_after = operator.peak_rss_mb("VmRSS")
    figures.update(
        ready=m.ready,
        seconds_to_all_ready=round(m.seconds, 2),
        apply_seconds=round(m.apply_seconds, 2),
        certificates_per_second=round(m.rate, 1),
        ca_invocations=invocations,
        operator_idle_rss_mb=round(m.controller_rss_before_mb, 1),
        operator_peak_rss_mb=round(m.controller_peak_rss_mb, 1),
        operator_rss_after_mb=round(rss_after, 1),
        rss_kb_per_resource=round((rss_after - m.controller_rss_before_mb) * 1024 / args.count, 1),
        operator_cpu_seconds=round(m.controller_cpu_seconds, 1),
        local_ca_cpu_seconds=round(m.signer_cpu_seconds or 0.0, 1),
        api_requests_per_certificate=round(m.requests_per_certificate, 2),
    )
    report.append(
        f"burst: {m.ready}/{args.count} Ready after {m.seconds:.1f} s ({m.rate:.1f}/s; the "
        f"{APPLY_WORKERS} applies took {m.apply_seconds:.1f} s); {invocations} CA invocations "
        f"(must be {args.count}); RSS {m.controller_rss_before_mb:.0f} MB idle -> "
        f"{m.controller_peak_rss_mb:.0f} MB peak, {rss_after:.0f} MB after "
        f"({figures['rss_kb_per_resource']} KB per resource); CPU {m.controller_cpu_seconds:.1f} s "
        f"(local CA {m.signer_cpu_seconds or 0:.1f} s); API requests per certificate "
        f"{m.requests_per_certificate:.2f}: "
        + ", ".join(f"{name} {n}" for name, n in m.top_requests(6))
    )


def backlog(kube, ca, operator, scratch, args, report, figures):
    operator.stop()
    kube.kubectl("create", "namespace", "bench")
    apply_all(kube, [certificate_manifest(f"c{i:05d}", "bench") for i in range(args.count)],
              args.timeout)  # fmt: skip
    before = apiserver_requests(kube)
    invocations = ca.stats()["invocations"]
    watch = ReadyWatch(kube, OPERATOR_PLURAL, "bench")
    began = time.monotonic()
    operator = start_operator(kube, ca, scratch, "backlog", args)
    idle_rss = operator.peak_rss_mb("VmRSS")
    wait_ready(watch, args.count, args.timeout)
    seconds = time.monotonic() - began  # from the process start
    time.sleep(3)
    ready = watch.ready()
    watch.close()
    issued = ca.stats()["invocations"] - invocations
    ours = Counter({("LIST", "clientcertificates", ""): 1})
    requests = +(operator_requests(before, apiserver_requests(kube)) - ours)
    rss_after = operator.peak_rss_mb("VmRSS")
    figures.update(
        ready=ready,
        seconds_to_all_ready=round(seconds, 2),
        certificates_per_second=round(ready / seconds, 1) if seconds else 0,
        ca_invocations=issued,
        operator_start_rss_mb=round(idle_rss, 1),
        operator_peak_rss_mb=round(operator.peak_rss_mb(), 1),
        operator_rss_after_mb=round(rss_after, 1),
        operator_cpu_seconds=round(operator.cpu_seconds(), 1),
        api_requests_per_certificate=round(sum(requests.values()) / args.count, 2),
    )
    report.append(
        f"backlog: the operator started with {args.count} waiting: all Ready after {seconds:.1f} "
        f"s ({figures['certificates_per_second']}/s); {issued} CA invocations (must be "
        f"{args.count}); RSS {figures['operator_peak_rss_mb']} MB peak, {rss_after:.0f} MB after; "
        f"CPU {figures['operator_cpu_seconds']} s; API requests per certificate "
        f"{figures['api_requests_per_certificate']}"
    )
    return operator


def idle(kube, operator, args, report, figures):
    time.sleep(5)  # let the last writes settle
    before = apiserver_requests(kube)
    cpu = operator.cpu_seconds()
    time.sleep(args.idle_seconds)
    spent = operator.cpu_seconds() - cpu
    requests = operator_requests(before, apiserver_requests(kube))
    per_minute = sum(requests.values()) * 60 / args.idle_seconds
    figures.update(
        idle_cpu_percent=round(100 * spent / args.idle_seconds, 2),
        idle_api_requests_per_minute=round(per_minute, 1),
        idle_rss_mb=round(operator.peak_rss_mb("VmRSS"), 1),
    )
    report.append(
        f"idle {args.idle_seconds:g} s with {args.count} Ready: CPU {spent:.2f} s "
        f"({figures['idle_cpu_percent']} %), {per_minute:.1f} API requests per minute on the "
        "operator's resources"
        + "".join(f", {' '.join(filter(None, k))} {n}" for k, n in requests.most_common(4))
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
        restart_peak_rss_mb=round(second.peak_rss_mb(), 1),
    )
    report.append(
        f"restart: SIGTERM -> exit {code} in {stopped:.1f} s; the new process answered its "
        f"liveness after {started:.1f} s and reported all {args.count} after {watching:.1f} s; "
        f"{reissued} CA invocations (must be 0); RSS {figures['restart_rss_mb']} MB "
        f"(peak {figures['restart_peak_rss_mb']} MB)"
    )
    return second


def wave(kube, ca, operator, args, report, figures):
    kube.kubectl("create", "namespace", "wave")
    spec = {"lifetimeDays": 1, "renewBefore": f"{86400 - WAVE_RENEW_AFTER}s"}
    watch = ReadyWatch(kube, OPERATOR_PLURAL, "wave")
    start = ca.stats()["invocations"]
    apply_all(kube, [certificate_manifest(f"w{i:05d}", "wave", **spec) for i in range(args.count)],
              args.timeout)  # fmt: skip
    wait_ready(watch, args.count, args.timeout)
    watch.close()
    issued_by = ca.stats()["invocations"]
    items = kube.get_json("clientcertificates", "-n", "wave")["items"]
    after = sorted(
        (_time(i["status"]["renewalTime"]) - _time(i["status"]["notBefore"]) - 300) for i in items
    )  # the CA backdates notBefore by 5 minutes
    samples_, peak_in_flight = [], 0
    deadline = time.monotonic() + WAVE_RENEW_AFTER + args.timeout
    while time.monotonic() < deadline:
        now = ca.stats()["invocations"]
        samples_.append((time.monotonic(), now))
        in_flight = metric(operator, "clientcert_ca_invocations_in_flight")
        peak_in_flight = max(peak_in_flight, int(in_flight))
        if now - issued_by >= args.count:
            break
        time.sleep(0.25)
    renewed = samples_[-1][1] - issued_by
    rate = 0.0
    for i, (t, n) in enumerate(samples_):
        later = next(((t2, n2) for t2, n2 in samples_[i:] if t2 - t >= 1.0), None)
        if later:
            rate = max(rate, (later[1] - n) / (later[0] - t))
    figures.update(
        wave_first_issuances=issued_by - start,
        wave_renew_after_min_seconds=round(after[0], 1),
        wave_renew_after_max_seconds=round(after[-1], 1),
        wave_renewed=renewed,
        wave_peak_in_flight=peak_in_flight,
        wave_peak_invocations_per_second=round(rate, 1),
    )
    report.append(
        f"wave: {args.count} certificates renewing {WAVE_RENEW_AFTER} s after issuance, jitter "
        f"{WAVE_JITTER}: each renews {after[0]:.0f} to {after[-1]:.0f} s after its issuance; "
        f"{renewed} renewals; peak {peak_in_flight} CA calls in flight (bound "
        f"{args.concurrency}); peak {rate:.1f} invocations/s"
    )


def _time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def main():
    parser = argparse.ArgumentParser(description="the operator at scale")
    parser.add_argument("--count", type=int, default=300, help="resources (1-10000)")
    parser.add_argument("--concurrency", type=int, default=8, help="operator CA call bound")
    parser.add_argument("--phases", default="burst", help=",".join(PHASES))
    parser.add_argument("--idle-seconds", type=float, default=30, help="idle phase (5-600)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per wait (1-3600)")
    parser.add_argument("--source", help="a checkout whose operator runs instead of this one")
    args = parser.parse_args()
    phases = [p for p in args.phases.split(",") if p]
    first = {"burst", "backlog"} & set(phases)
    if not 1 <= args.count <= 10000:
        parser.error("--count must be between 1 and 10000")
    if (
        not set(phases) <= set(PHASES)
        or len(first) > 1
        or ({"idle", "restart"} & set(phases) and not first)
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
    binaries = ensure_binaries()
    with local_cluster(binaries) as (kube, plane):
        ca = start_local_ca_issuer(kube, scratch / "ca")
        try:
            operator = start_operator(kube, ca, scratch, "operator", args)
            if "burst" in phases:
                burst(kube, plane, ca, operator, args, report, figures)
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
