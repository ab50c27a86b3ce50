"""Benchmark the operator at scale: apply N ClientCertificates at once (default 300) and time
them to Ready, on a real control plane and the real local CA, both started here.

    python bench/operator_scale.py [--count 300] [--concurrency 8]

Reports seconds until all are Ready, certificates per second, CA invocations (must equal N), the
operator's peak RSS and CPU, and API requests per certificate; a readable report on stderr, then
one JSON line of figures on stdout. bench/vs_cert_manager.py runs the same measurement beside
cert-manager.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

from benchlib import (
    APPLY_WORKERS,
    measure_operator,
    start_local_ca_issuer,
    start_operator,
)

from kubelocal.binaries import ensure_binaries
from kubelocal.handle import local_cluster

TARGET_RATE, TARGET_RSS_MB = 20.0, 150.0


def main() -> int:
    parser = argparse.ArgumentParser(description="ClientCertificates to Ready at scale")
    parser.add_argument("--count", type=int, default=300, help="resources to apply (1-5000)")
    parser.add_argument("--concurrency", type=int, default=8, help="operator CA call bound")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for Ready")
    args = parser.parse_args()
    if not 1 <= args.count <= 5000:
        parser.error("--count must be between 1 and 5000")
    if not 1 <= args.timeout <= 3600:
        parser.error("--timeout must be between 1 and 3600 seconds")

    scratch = Path(tempfile.mkdtemp(prefix="lcc-bench-operator-"))
    binaries = ensure_binaries()
    with local_cluster(binaries) as (kube, plane):
        ca = start_local_ca_issuer(kube, scratch / "ca")
        operator = None
        try:
            operator = start_operator(kube, ca, scratch / "operator.log", args.concurrency)
            m, invocations = measure_operator(
                kube, plane.pids, operator, ca, "bench", args.count, args.timeout
            )
            operator.alive()
        finally:
            if operator is not None:
                operator.stop()
            ca.stop()

    print(
        f"applied {args.count} ClientCertificates in {m.apply_seconds:.2f} s "
        f"({APPLY_WORKERS} kubectl apply calls at once)\n"
        f"Ready: {m.ready}/{args.count} after {m.seconds:.2f} s -> {m.rate:.1f} certificates/s "
        f"(target >= {TARGET_RATE:g})\n"
        f"CA invocations: {invocations} (must equal {args.count})\n"
        f"operator peak RSS: {m.controller_peak_rss_mb:.1f} MB (target <= {TARGET_RSS_MB:g}; "
        f"{m.controller_rss_before_mb:.1f} MB idle before the apply); "
        f"operator CPU during the run: {m.controller_cpu_seconds:.1f} s, local CA CPU: "
        f"{m.signer_cpu_seconds:.1f} s\n"
        f"API requests: {m.api_requests} ({m.requests_per_certificate:.1f} per certificate): "
        + ", ".join(f"{name} {n}" for name, n in m.top_requests()),
        file=sys.stderr,
    )
    figures = {
        "bench": "operator_scale",
        "count": args.count,
        "concurrency": args.concurrency,
        "ready": m.ready,
        "seconds_to_all_ready": round(m.seconds, 2),
        "certificates_per_second": round(m.rate, 1),
        "ca_invocations": invocations,
        "operator_peak_rss_mb": round(m.controller_peak_rss_mb, 1),
        "operator_idle_rss_mb": round(m.controller_rss_before_mb, 1),
        "operator_cpu_seconds": round(m.controller_cpu_seconds, 1),
        "local_ca_cpu_seconds": round(m.signer_cpu_seconds or 0.0, 1),
        "api_requests_per_certificate": round(m.requests_per_certificate, 2),
        "apply_seconds": round(m.apply_seconds, 2),
        "meets_targets": m.ready == args.count
        and invocations == args.count
        and m.rate >= TARGET_RATE
        and m.controller_peak_rss_mb <= TARGET_RSS_MB,
    }
    print(json.dumps(figures))
    return 0 if m.ready == args.count and invocations == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
