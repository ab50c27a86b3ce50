"""Issuance latency: N sequential issuances through boto3 against the local CA, per key type.

Each issuance is the whole job a sidecar does: key generation, CSR, Lambda invoke over HTTP,
response parsing and verification, and the atomic write of the credential set. Reports p50/p95
end to end, certificates per second, and how the time splits between client and server (wall
time inside the invoke call, and CPU time of each process read from /proc).

Run from the repo root with the project installed:  python bench/issue_latency.py [--count 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cacore.config import CAConfig
from cacore.credentials import FileNames, credential_files
from cacore.edge.client import CAClient, LambdaTransport
from cacore.edge.files import AtomicDirectoryWriter
from cacore.keys import parse_key_spec, private_key_pem
from cacore.request import CertificateRequest, Subject

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class TimedInvoker:
    def __init__(self, inner: LambdaTransport) -> None:
        self.inner = inner
        self.seconds = 0.0

    def invoke(self, event: dict) -> tuple[object, str | None]:
        started = time.perf_counter()
        try:
            return self.inner.invoke(event)
        finally:
            self.seconds += time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(key_algorithm: str, count: int, config: CAConfig, ca_pid: int, out: Path) -> dict:
    transport = LambdaTransport(config)
    invoker = TimedInvoker(transport)
    client = CAClient(invoker)
    writer = AtomicDirectoryWriter(out / key_algorithm)
    spec = parse_key_spec(key_algorithm)
    client.issue_with_new_key(CertificateRequest(Subject("warmup.example.com")), spec)  # connect
    invoker.seconds = 0.0
    latencies = []
    server_cpu0, client_cpu0 = cpu_seconds(ca_pid), time.process_time()
    started = time.perf_counter()
    for index in range(count):
        t0 = time.perf_counter()
        request = CertificateRequest(Subject(f"bench-{index}.example.com"), lifetime_days=1)
        issuance = client.issue_with_new_key(request, spec)
        files = credential_files(private_key_pem(issuance.key), issuance.certificate)
        writer.write(files, FileNames().private())
        latencies.append(time.perf_counter() - t0)
    wall = time.perf_counter() - started
    server_cpu = cpu_seconds(ca_pid) - server_cpu0
    client_cpu = time.process_time() - client_cpu0
    return {
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p95_ms": round(percentile(latencies, 0.95) * 1000, 2),
        "certs_per_s": round(count / wall, 1),
        "invoke_wall_share": round(invoker.seconds / wall, 3),
        "client_cpu_ms_per_cert": round(client_cpu / count * 1000, 2),
        "server_cpu_ms_per_cert": round(server_cpu / count * 1000, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        ca = subprocess.Popen(
            [sys.executable, "-m", "localca", "serve", "--state-dir", f"{tmp}/ca", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert ca.stdout is not None
            info = json.loads(ca.stdout.readline())
            os.environ.update(
                AWS_ACCESS_KEY_ID=info["access_key_id"],
                AWS_SECRET_ACCESS_KEY="local-ca-example-secret",
                AWS_EC2_METADATA_DISABLED="true",
            )
            config = CAConfig(
                function=info["function_name"],
                region=info["region"],
                endpoint_url=info["endpoint_url"],
            )
            results = {
                alg: run(alg, args.count, config, ca.pid, Path(tmp))
                for alg in ("ecdsa-p256", "rsa-2048")
            }
        finally:
            ca.terminate()
            ca.wait(timeout=5)
    print(
        f"{args.count} sequential issuances per key type, boto3 -> local CA over HTTP, "
        f"{os.cpu_count()} cores\n"
    )
    print(
        f"{'key':<12}{'p50 ms':>9}{'p95 ms':>9}{'certs/s':>9}{'in invoke':>11}"
        f"{'client CPU ms':>15}{'server CPU ms':>15}"
    )
    for alg, r in results.items():
        print(
            f"{alg:<12}{r['p50_ms']:>9}{r['p95_ms']:>9}{r['certs_per_s']:>9}"
            f"{r['invoke_wall_share'] * 100:>10.0f}%{r['client_cpu_ms_per_cert']:>15}"
            f"{r['server_cpu_ms_per_cert']:>15}"
        )
    p256 = results["ecdsa-p256"]
    print(
        f"\ntarget P-256: p50 <= 20 ms ({'met' if p256['p50_ms'] <= 20 else 'MISSED'}), "
        f">= 50 certs/s ({'met' if p256['certs_per_s'] >= 50 else 'MISSED'})"
    )
    print(
        json.dumps(
            {
                "count": args.count,
                **{f"{alg}_{k}": v for alg, r in results.items() for k, v in r.items()},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
