"""Sidecar figures: start to certificate ready (p50 of 20 runs against a local CA), steady-state
RSS, CPU used while idle for 60 s, and the image size if the image exists.

    python bench/sidecar.py [--runs 20] [--idle 60] [--image lcc-sidecar:test]

Prints a readable report, then one JSON line with all figures (the last line of output).
Targets: ready <= 1.0 s, RSS <= 60 MB, idle CPU <= 0.1 s per minute, image <= 200 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# This file is named like the package it measures: keep bench/ off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "sidecar")]

from sidecar_process import sidecar_env  # noqa: E402
from support.localca_fixtures import LocalCA  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_to_ready(ca: LocalCA, work: Path, index: int) -> float:
    out = work / f"ready-{index}"
    env = sidecar_env(ca, common_name=f"bench{index}.example.com", output_dir=out)
    env["CERT_SIDECAR_LOG_LEVEL"] = "warning"
    data = out / "..data"
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "run"], env=env, cwd=ROOT, stderr=subprocess.DEVNULL
    )
    try:
        while not data.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"sidecar exited {proc.returncode}")
            time.sleep(0.002)
        return time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(10)


def idle_figures(ca: LocalCA, work: Path, idle: float) -> tuple[float, float]:
    env = sidecar_env(ca, common_name="idle.example.com", output_dir=work / "idle")
    env.update({"CERT_SIDECAR_LOG_LEVEL": "info", "CERT_SIDECAR_LISTEN": "127.0.0.1:0"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "run"], env=env, cwd=ROOT, stderr=subprocess.DEVNULL
    )
    try:
        while not (work / "idle" / "..data").exists():
            time.sleep(0.01)
        time.sleep(2)  # let the first write and reload actions settle
        cpu_before = cpu_seconds(proc.pid)
        time.sleep(idle)
        cpu_used = cpu_seconds(proc.pid) - cpu_before
        return rss_mb(proc.pid), cpu_used
    finally:
        proc.terminate()
        proc.wait(10)


def image_size_mb(image: str) -> float | None:
    if not shutil.which("docker"):
        return None
    done = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Size}}", image],
        capture_output=True,
        text=True,
    )
    return int(done.stdout) / 1e6 if done.returncode == 0 else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--image", default="lcc-sidecar:test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sidecar-") as tmp:
        work = Path(tmp)
        ca = LocalCA(work / "ca-state").start()
        try:
            times = [start_to_ready(ca, work, i) for i in range(args.runs)]
            rss, idle_cpu = idle_figures(ca, work, args.idle)
        finally:
            ca.stop()
    size = image_size_mb(args.image)
    figures = {
        "ready_p50_s": round(statistics.median(times), 3),
        "ready_max_s": round(max(times), 3),
        "runs": args.runs,
        "rss_mb": round(rss, 1),
        "idle_cpu_s": round(idle_cpu, 3),
        "idle_seconds": args.idle,
        "idle_cpu_s_per_min": round(idle_cpu * 60 / args.idle, 3),
        "image": args.image,
        "image_mb": round(size, 1) if size is not None else None,
    }
    print(
        f"start to certificate ready: p50 {figures['ready_p50_s']} s, "
        f"max {figures['ready_max_s']} s over {args.runs} runs (target <= 1.0 s)"
    )
    print(f"steady-state RSS: {figures['rss_mb']} MB (target <= 60 MB)")
    print(
        f"CPU while idle: {figures['idle_cpu_s']} s over {args.idle:g} s "
        f"(target <= 0.1 s per minute)"
    )
    print(
        f"image {args.image}: {figures['image_mb']} MB (target <= 200 MB)"
        if size is not None
        else f"image {args.image}: not built"
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
