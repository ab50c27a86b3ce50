"""The operator under control-plane faults, measured: per fault, CA invocations per certificate
(1.0 is the promise; a killed operator may repeat only the calls it had in flight) and seconds
from the end of the fault (the API server ready again, the new process started) to all Ready.
The scenarios are the fault tests' (tests/support/fault_scenarios.py), on a control plane and a
local CA started here.

    python bench/operator_faults.py [--faults all|NAME,...] [--source DIR]

--source runs another checkout's operator (its `operator/` and `cacore/`), e.g. the commit before
a redesign, in the same conditions. A readable report on stderr, then one JSON line of figures.
"""

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from benchlib import LocalCA, apply, install_crds, lambdaca_manifest
from support import fault_scenarios, plane_faults

from kubelocal.binaries import ensure_binaries
from kubelocal.handle import local_cluster

FAULTS = {
    "api-server": lambda lab: fault_scenarios.control_plane_outage(lab, "kube-apiserver", 20),
    "etcd": lambda lab: fault_scenarios.control_plane_outage(lab, "etcd", 20),
    "operator-killed": lambda lab: fault_scenarios.operator_killed(lab, peering=False),
    "operator-killed-peering": lambda lab: fault_scenarios.operator_killed(lab, peering=True),
    "slow-ca": fault_scenarios.slow_ca,
    "deletions": fault_scenarios.deletions_during_issuance,
    "namespace-deleted": lambda lab: fault_scenarios.namespace_deleted_mid_burst(lab, 200),
    "long-outage": lambda lab: fault_scenarios.long_api_outage(lab, 100),
    "sigterm-in-outage": fault_scenarios.sigterm_during_outage,
}


def main():
    parser = argparse.ArgumentParser(description="the operator under control-plane faults")
    parser.add_argument("--faults", default="all", help=f"all, or some of {','.join(FAULTS)}")
    parser.add_argument("--source", help="a checkout whose operator runs instead of this one")
    args = parser.parse_args()
    names = list(FAULTS) if args.faults == "all" else args.faults.split(",")
    unknown = set(names) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")

    scratch = Path(tempfile.mkdtemp(prefix="lcc-bench-faults-"))
    binaries = ensure_binaries()
    figures, lines = {"bench": "operator_faults", "source": args.source or "."}, []
    with local_cluster(binaries) as (kube, plane):
        ca = LocalCA(scratch / "ca").start()
        try:
            install_crds(kube)
            apply(kube, lambdaca_manifest("local", ca))
            for name in names:
                source = Path(args.source).resolve() if args.source else None
                lab = fault_scenarios.Lab(kube, plane, ca, scratch / name, source)
                (scratch / name).mkdir()
                began = time.monotonic()
                try:
                    result = FAULTS[name](lab)
                except Exception as error:  # a fault the operator does not survive is a figure
                    traceback.print_exc(file=sys.stderr)
                    figures[name] = {"failed": f"{type(error).__name__}: {error}"[:300]}
                    lines.append(f"{name}: FAILED ({figures[name]['failed']})")
                    continue
                finally:
                    lab.stop()
                    ca.clear_faults()
                    plane_faults.heal(plane, kube)
                figures[name] = {
                    "certificates": result.certificates,
                    "ready": result.ready,
                    "invocations": result.invocations,
                    "allowed": result.allowed,
                    "invocations_per_certificate": round(result.per_certificate, 2),
                    "seconds_to_all_ready_after_recovery": result.recovery_seconds,
                    **{k: v for k, v in result.details.items() if not isinstance(v, list)},
                }
                lines.append(
                    f"{name}: {result.fault}: {result.ready}/{result.certificates} Ready, "
                    f"{result.invocations} invocations (allowed {result.allowed}; "
                    f"{result.per_certificate:.2f} per certificate), all Ready "
                    f"{result.recovery_seconds} s after recovery; "
                    + ", ".join(f"{k}={v}" for k, v in result.details.items())
                    + f" [{time.monotonic() - began:.0f} s]"
                )
        finally:
            ca.stop()
    print("\n".join(lines), file=sys.stderr)
    figures["load_average"] = round(os.getloadavg()[0], 1)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
