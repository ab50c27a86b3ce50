"""Benchmark the local Kubernetes control plane: warm start time, stop time, cache disk use.

    python bench/controlplane.py [--starts 3]

Builds the binaries first if they are not cached; build.sh records the time of its last build
in the cache, reported here as last_build_s. Ends with one JSON line of figures.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

from kubelocal.binaries import binaries_cached, cache_dir, ensure_binaries, read_versions
from kubelocal.controlplane import ControlPlane


def disk_mb(path):
    if not path.exists():
        return 0.0
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return round(int(out.stdout.split()[0]) / 1024, 1)


def main():
    parser = argparse.ArgumentParser(description="local control plane start/stop figures")
    parser.add_argument("--starts", type=int, default=3, help="warm starts to measure (1-10)")
    args = parser.parse_args()
    if not 1 <= args.starts <= 10:
        parser.error("--starts must be between 1 and 10")

    began = time.monotonic()
    was_cached = binaries_cached()
    binaries = ensure_binaries()
    ensure_seconds = time.monotonic() - began

    ready, controllers, stops = [], [], []
    for i in range(args.starts):
        began = time.monotonic()
        plane = ControlPlane.start(binaries)
        controllers.append(time.monotonic() - began)
        ready.append(plane.seconds_to_ready)
        began = time.monotonic()
        plane.stop()
        stops.append(time.monotonic() - began)
        print(
            f"start {i + 1}: /readyz {ready[-1]:.2f} s, controllers {controllers[-1]:.2f} s, "
            f"stop {stops[-1]:.2f} s",
            file=sys.stderr,
        )

    cache = cache_dir()
    record = binaries.kube_bin.parent / "build-seconds"  # written by build.sh
    last_build = float(record.read_text()) if record.exists() else None
    figures = {
        "bench": "controlplane",
        "kubernetes": read_versions()["KUBE_VERSION"],
        "etcd": read_versions()["ETCD_VERSION"],
        "binaries_were_cached": was_cached,
        "ensure_binaries_s": round(ensure_seconds, 2),
        "last_build_s": last_build,
        "starts": args.starts,
        "warm_start_to_readyz_s_median": round(statistics.median(ready), 2),
        "warm_start_to_readyz_s_max": round(max(ready), 2),
        "warm_start_to_controllers_s_median": round(statistics.median(controllers), 2),
        "stop_s_median": round(statistics.median(stops), 2),
        "cache_mb": {
            "binaries": disk_mb(binaries.kube_bin),
            "kubectl_helm": disk_mb(binaries.tools_bin),
            "go_modules": disk_mb(cache / "go" / "mod"),
            "go_build_cache": disk_mb(cache / "go" / "build"),
            "total": disk_mb(cache),
        },
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
