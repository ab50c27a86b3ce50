"""Benchmark the operator at scale: apply N ClientCertificates at once (default 300) and time
them to Ready, on a real control plane and the real local CA, both started here.

    python bench/operator_scale.py [--count 300] [--concurrency 8]

Reports seconds until all are Ready, certificates per second, CA invocations (must equal N) and
the operator's peak RSS; a readable report on stderr, then one JSON line of figures on stdout.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from kubelocal.binaries import ensure_binaries
from kubelocal.handle import local_cluster

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

from support.localca_fixtures import LocalCA  # noqa: E402
from support.operator_process import (  # noqa: E402
    OperatorProcess,
    apply,
    certificate_manifest,
    condition,
    install_crds,
    lambdaca_manifest,
)

TARGET_RATE, TARGET_RSS_MB = 20.0, 150.0


def count_ready(kube, namespace):
    out = kube.kubectl("get", "clientcertificates", "-n", namespace, "-o", "json").stdout
    return sum(condition(o).get("status") == "True" for o in json.loads(out)["items"])


def main():
    parser = argparse.ArgumentParser(description="ClientCertificates to Ready at scale")
    parser.add_argument("--count", type=int, default=300, help="resources to apply (1-2000)")
    parser.add_argument("--concurrency", type=int, default=8, help="operator CA call bound")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for Ready")
    args = parser.parse_args()
    if not 1 <= args.count <= 2000:
        parser.error("--count must be between 1 and 2000")

    scratch = Path(tempfile.mkdtemp(prefix="lcc-bench-operator-"))
    binaries = ensure_binaries()
    with local_cluster(binaries) as (kube, _plane):
        ca = LocalCA(scratch / "ca").start()
        operator = None
        try:
            install_crds(kube)
            apply(kube, lambdaca_manifest("local", ca))
            kube.kubectl("create", "namespace", "bench")
            operator = OperatorProcess.cli(
                kube,
                ca,
                scratch / "operator.log",
                "--standalone",
                max_concurrent_issuances=str(args.concurrency),
            ).start()
            base_invocations = ca.stats()["invocations"]
            cpu_before = operator.cpu_seconds()
            idle_rss = operator.peak_rss_mb("VmRSS")
            manifests = [certificate_manifest(f"c{i:04d}", "bench") for i in range(args.count)]

            began = time.monotonic()
            apply(kube, *manifests, server_side=True)
            applied = time.monotonic() - began
            deadline = began + args.timeout
            ready = 0
            while time.monotonic() < deadline:
                # The operator's own gauge is cheap to read; kubectl confirms at the end.
                ready = int(
                    operator.metric("clientcert_certificate_ready_status", condition="True")
                )
                if ready >= args.count:
                    break
                time.sleep(0.2)
            seconds = time.monotonic() - began
            confirmed = count_ready(kube, "bench")
            time.sleep(2)  # late duplicate invocations, if any, would show here
            invocations = ca.stats()["invocations"] - base_invocations
            rss = operator.peak_rss_mb()
            cpu = operator.cpu_seconds() - cpu_before
            operator.alive()
        finally:
            if operator is not None:
                operator.stop()
            ca.stop()

    rate = confirmed / seconds if seconds else 0.0
    print(
        f"applied {args.count} ClientCertificates in {applied:.2f} s (one kubectl apply)\n"
        f"Ready: {confirmed}/{args.count} after {seconds:.2f} s -> {rate:.1f} certificates/s "
        f"(target >= {TARGET_RATE:g})\n"
        f"CA invocations: {invocations} (must equal {args.count})\n"
        f"operator peak RSS: {rss:.1f} MB (target <= {TARGET_RSS_MB:g}; {idle_rss:.1f} MB idle "
        "before the apply); "
        f"operator CPU during the run: {cpu:.1f} s",
        file=sys.stderr,
    )
    figures = {
        "bench": "operator_scale",
        "count": args.count,
        "concurrency": args.concurrency,
        "ready": confirmed,
        "seconds_to_all_ready": round(seconds, 2),
        "certificates_per_second": round(rate, 1),
        "ca_invocations": invocations,
        "operator_peak_rss_mb": round(rss, 1),
        "operator_idle_rss_mb": round(idle_rss, 1),
        "operator_cpu_seconds": round(cpu, 1),
        "apply_seconds": round(applied, 2),
        "meets_targets": confirmed == args.count
        and invocations == args.count
        and rate >= TARGET_RATE
        and rss <= TARGET_RSS_MB,
    }
    print(json.dumps(figures))
    return 0 if confirmed == args.count and invocations == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
