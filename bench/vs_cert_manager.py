"""Side by side with cert-manager: N certificates applied at once until all are Ready, each tool
in turn on the same control plane, in one run (default N = 300, then 3000).

    python bench/vs_cert_manager.py [--counts 300,3000] [--kube-api-qps 10000]

- cert-manager v1.19.3 (built here from the Go module proxy by bench/peers/cert-manager/build.sh,
  cached; a cold build takes about 6 minutes): N ``Certificate``s from a CA ClusterIssuer that a
  SelfSigned ClusterIssuer bootstrapped. It signs in its own process.
- this project: N ``ClientCertificate``s; the operator calls the real local CA over the Lambda
  Invoke API, so signing happens in another process, whose CPU is reported apart.
- Both with ECDSA P-256 keys (the operator's default; asked of cert-manager explicitly), 30-day
  client certificates, and no client-side throttling: the operator has no client rate limiter,
  so cert-manager's --kube-api-qps/--kube-api-burst are set far above what it reaches.
- Each tool starts fresh for each N, gets its own namespace, which is deleted afterwards.

Figures per tool and N: seconds from apply to all Ready, certificates/s, the controller's peak
RSS and CPU seconds, API requests per certificate (the API server's apiserver_request_total
before and after, without the benchmark's own apply), the signer's CPU, and the ratios
project/cert-manager. A readable report on stderr, then one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import cert_manager_peer as peer
from benchlib import (
    Measurement,
    delete_namespace,
    measure,
    measure_operator,
    start_local_ca_issuer,
    start_operator,
)

from kubelocal.binaries import ensure_binaries, read_versions
from kubelocal.handle import local_cluster

CM_NAMESPACE = "cert-manager"  # --cluster-resource-namespace: where the CA's Secret lives
CA_ISSUER = "bench-ca"
MAX_COUNT = 5000
GC_DISCOVERY_SECONDS = 35


def time_limit(count: int, per_certificate: float) -> float:
    return max(120.0, count * per_certificate)


def run_cert_manager(
    kube: Any, plane: Any, build: peer.Build, args: argparse.Namespace, count: int, scratch: Path
) -> Measurement:
    controller = peer.CertManagerController(
        build,
        kube.kubeconfig,
        scratch / f"cert-manager-{count}.log",
        CM_NAMESPACE,
        qps=args.kube_api_qps,
        burst=args.kube_api_burst,
    ).start()
    namespace = f"cm-{count}"
    try:
        # Idempotent: the CA Certificate from the first round is simply found Ready again.
        peer.bootstrap_ca_issuer(kube, CA_ISSUER, CM_NAMESPACE)
        kube.kubectl("create", "namespace", namespace)
        m = measure(
            kube,
            plane.pids,
            [peer.certificate_manifest(f"c{i:05d}", namespace, CA_ISSUER) for i in range(count)],
            plural=f"certificates.{peer.GROUP}",
            controller_pid=controller.pid,
            signer_pid=None,
            timeout=time_limit(count, args.seconds_per_certificate),
        )
        controller.alive()
        if not delete_namespace(kube, namespace, time_limit(count, 0.1)):
            print(f"warning: namespace {namespace} still deleting", file=sys.stderr)
    finally:
        controller.stop()
    return m


def run_operator(
    kube: Any, plane: Any, ca: Any, args: argparse.Namespace, count: int, scratch: Path
) -> tuple[Measurement, int, Counter[str]]:
    log = scratch / f"operator-{count}.log"
    operator = start_operator(kube, ca, log, args.concurrency)
    namespace = f"op-{count}"
    try:
        m, invocations = measure_operator(
            kube,
            plane.pids,
            operator,
            ca,
            namespace,
            count,
            time_limit(count, args.seconds_per_certificate),
        )
        operator.alive()
        complaints = log_complaints(log)  # before the deletion below adds its own
        # The operator's finalizers need the operator running while the namespace goes.
        if not delete_namespace(kube, namespace, time_limit(count, 0.1)):
            print(f"warning: namespace {namespace} still deleting", file=sys.stderr)
    finally:
        operator.stop()
    return m, invocations, complaints


def log_complaints(log: Path) -> Counter[str]:
    """Warnings and errors in the operator's JSON log, by message (the first 80 characters)."""
    found: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("level") in ("warning", "error", "critical"):
            found[f"{record['level']}: {str(record.get('message'))[:80]}"] += 1
    return found


def figures(m: Measurement) -> dict[str, Any]:
    signer = m.signer_cpu_seconds
    return {
        "ready": m.ready,
        "timed_out": m.timed_out,
        "seconds_to_all_ready": round(m.seconds, 2),
        "apply_seconds": round(m.apply_seconds, 2),
        "seconds_to_first_ready": m.seconds_to(0),
        "seconds_to_half_ready": m.seconds_to(0.5),
        "certificates_per_second": round(m.rate, 1),
        "controller_peak_rss_mb": round(m.controller_peak_rss_mb, 1),
        "controller_rss_before_mb": round(m.controller_rss_before_mb, 1),
        "controller_cpu_seconds": round(m.controller_cpu_seconds, 2),
        "signer_cpu_seconds": None if signer is None else round(signer, 2),
        "issuance_cpu_seconds": round(m.controller_cpu_seconds + (signer or 0.0), 2),
        "control_plane_cpu_seconds": round(m.control_plane_cpu_seconds, 2),
        "load_average_1m": round(m.load_average, 2),
        "api_requests": m.api_requests,
        "api_requests_per_certificate": round(m.requests_per_certificate, 2),
        "api_requests_top": dict(m.top_requests()),
    }


RATIO_KEYS = (
    "seconds_to_all_ready",
    "certificates_per_second",
    "controller_peak_rss_mb",
    "controller_cpu_seconds",
    "issuance_cpu_seconds",
    "control_plane_cpu_seconds",
    "api_requests_per_certificate",
)


def ratios(project: dict[str, Any], cert_manager: dict[str, Any]) -> dict[str, float | None]:
    return {
        key: round(project[key] / cert_manager[key], 2) if cert_manager[key] else None
        for key in RATIO_KEYS
    }


def report(count: int, cm: dict[str, Any], op: dict[str, Any], ratio: dict[str, Any]) -> str:
    rows = [
        ("Ready", "ready", "{}"),
        ("seconds apply -> all Ready", "seconds_to_all_ready", "{:.2f}"),
        ("  of which the apply itself", "apply_seconds", "{:.2f}"),
        ("  seconds to the first Ready", "seconds_to_first_ready", "{:.1f}"),
        ("  seconds to half Ready", "seconds_to_half_ready", "{:.1f}"),
        ("certificates/s", "certificates_per_second", "{:.1f}"),
        ("controller peak RSS MB", "controller_peak_rss_mb", "{:.1f}"),
        ("controller CPU s", "controller_cpu_seconds", "{:.2f}"),
        ("signer CPU s (local CA)", "signer_cpu_seconds", "{:.2f}"),
        ("controller + signer CPU s", "issuance_cpu_seconds", "{:.2f}"),
        ("apiserver + etcd CPU s", "control_plane_cpu_seconds", "{:.2f}"),
        ("API requests per certificate", "api_requests_per_certificate", "{:.2f}"),
        ("machine load (1 min) at the end", "load_average_1m", "{:.1f}"),
    ]

    def cell(value: Any, fmt: str) -> str:
        return "-" if value is None else fmt.format(value)

    lines = [f"\nN = {count}", f"{'':32}{'cert-manager':>14}{'operator':>12}{'op/cm':>8}"]
    for label, key, fmt in rows:
        r = ratio.get(key)
        lines.append(
            f"{label:32}{cell(cm[key], fmt):>14}{cell(op[key], fmt):>12}{cell(r, '{:.2f}'):>8}"
        )
    for name, f in (("cert-manager", cm), ("operator", op)):
        top = ", ".join(f"{k} {v}" for k, v in f["api_requests_top"].items())
        lines.append(f"  {name} API requests: {top}")
    if op.get("complaints"):
        top = "; ".join(f"{k} x{v}" for k, v in list(op["complaints"].items())[:5])
        lines.append(f"  operator log: {top}")
    return "\n".join(lines)


def targets(runs: dict[str, Any]) -> dict[str, bool]:
    """The issue's targets: throughput and API requests per certificate at least as good as
    cert-manager's at every N, and RSS at the largest N no more than cert-manager's."""
    largest = runs[max(runs, key=int)]
    return {
        "throughput_at_least_cert_managers": all(
            r["operator"]["certificates_per_second"] >= r["cert_manager"]["certificates_per_second"]
            for r in runs.values()
        ),
        "api_requests_per_certificate_at_most_cert_managers": all(
            r["operator"]["api_requests_per_certificate"]
            <= r["cert_manager"]["api_requests_per_certificate"]
            for r in runs.values()
        ),
        "rss_at_largest_n_at_most_cert_managers": largest["operator"]["controller_peak_rss_mb"]
        <= largest["cert_manager"]["controller_peak_rss_mb"],
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="the operator beside cert-manager")
    parser.add_argument("--counts", default="300,3000", help="comma-separated N (1-5000 each)")
    parser.add_argument("--concurrency", type=int, default=8, help="operator CA call bound")
    parser.add_argument("--kube-api-qps", type=float, default=10000, help="cert-manager's QPS")
    parser.add_argument("--kube-api-burst", type=int, default=10000, help="cert-manager's burst")
    parser.add_argument(
        "--seconds-per-certificate",
        type=float,
        default=0.4,
        help="time limit per run: this times N, at least 120 s (default 0.4: 1200 s at 3000)",
    )
    args = parser.parse_args()
    try:
        args.count_list = [int(n) for n in args.counts.split(",") if n.strip()]
    except ValueError:
        parser.error(f"--counts: {args.counts!r} is not a comma-separated list of numbers")
    if not args.count_list or not all(1 <= n <= MAX_COUNT for n in args.count_list):
        parser.error(f"--counts: each N must be between 1 and {MAX_COUNT}")
    if not 0.01 <= args.seconds_per_certificate <= 2:
        parser.error("--seconds-per-certificate must be between 0.01 and 2")
    if args.kube_api_qps <= 0 or args.kube_api_burst < args.kube_api_qps:
        parser.error("--kube-api-qps must be > 0 and --kube-api-burst >= --kube-api-qps")
    return args


def main() -> int:
    args = parse_args()
    build = peer.ensure_built()  # before the control plane: a cold build overlaps nothing
    binaries = ensure_binaries()
    scratch = Path(tempfile.mkdtemp(prefix="lcc-bench-vs-cm-"))
    print(f"logs and local CA state in {scratch}", file=sys.stderr)
    runs: dict[str, Any] = {}
    with local_cluster(binaries) as (kube, plane):
        peer.install_crds(kube, build)
        ca = start_local_ca_issuer(kube, scratch / "ca")
        # The garbage collector re-reads discovery every 30 s; until it watches the new CRDs
        # it verifies each unknown owner with a GET, which would count against both tools.
        time.sleep(GC_DISCOVERY_SECONDS)
        try:
            for count in args.count_list:
                print(f"N = {count}: cert-manager ...", file=sys.stderr)
                cm = figures(run_cert_manager(kube, plane, build, args, count, scratch))
                print(f"N = {count}: operator ...", file=sys.stderr)
                m, invocations, complaints = run_operator(kube, plane, ca, args, count, scratch)
                op = figures(m) | {
                    "ca_invocations": invocations,
                    "complaints": dict(complaints.most_common(10)),
                }
                ratio = ratios(op, cm)
                runs[str(count)] = {"cert_manager": cm, "operator": op, "ratios": ratio}
                print(report(count, cm, op, ratio), file=sys.stderr)
        finally:
            ca.stop()

    summary = {
        "bench": "vs_cert_manager",
        "cert_manager": "v1.19.3 (module build, CA ClusterIssuer, in-process signing)",
        "kubernetes": read_versions()["KUBE_VERSION"],
        "key": "ECDSA P-256, 30 days, client auth",
        "client_limits": {
            "cert_manager_kube_api_qps": args.kube_api_qps,
            "cert_manager_kube_api_burst": args.kube_api_burst,
            "operator": "no client-side rate limit (kopf has none)",
        },
        "operator_ca_concurrency": args.concurrency,
        "cert_manager_last_build_seconds": build.build_seconds,
        "runs": runs,
        "targets": targets(runs),
    }
    print(
        "\nratios are project/cert-manager: below 1 is better for seconds, RSS, CPU and "
        "requests; above 1 is better for certificates/s. targets: "
        + ", ".join(f"{k}={v}" for k, v in summary["targets"].items()),
        file=sys.stderr,
    )
    print(json.dumps(summary))
    all_ready = all(
        r[t]["ready"] == int(n) for n, r in runs.items() for t in ("cert_manager", "operator")
    )
    return 0 if all_ready else 1


if __name__ == "__main__":
    sys.exit(main())
