"""Sidecar figures: start to certificate ready (p50 of 20 runs against a local CA), steady-state
RSS, CPU used while idle for 60 s, and the image size if the image exists. Then the kubernetes
issuer (CERT_SIDECAR_ISSUER=kubernetes: no AWS, a CSR signed by the operator) on a real control
plane: start to ready and steady-state RSS, of this tree's process and, if the image is built
(`docker build -t lcc-sidecar:test .`), of the same sidecar in the image (its interpreter and
installed packages, uid 65532, read-only root, host network), and what each candidate
Kubernetes client costs in memory (the standard library the sidecar uses, lightkube, the
official kubernetes client; the last two in a virtualenv this benchmark makes under
~/.cache/lambda-client-certs/bench).

    python bench/sidecar.py [--runs 20] [--idle 60] [--image lcc-sidecar:test] [--no-kubernetes]

Prints a readable report, then one JSON line with all figures (the last line of output).
Targets: ready <= 1.0 s, RSS <= 60 MB, idle CPU <= 0.1 s per minute, image <= 200 MB; with the
kubernetes issuer, RSS <= 35 MB (the image is what ships; the process here runs from the test
virtualenv, whose editable install and extra packages load a little more).
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
from collections.abc import Callable
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


# --- the kubernetes issuer -------------------------------------------------------------------

KUBE_TARGET_RSS_MB = 35.0
CLIENTS = {"lightkube": "lightkube>=1,<2", "kubernetes": "kubernetes<37"}
# The same small job for each candidate: cryptography, a key and CSR, a client, one CSR object.
CLIENT_PROBE = """
import base64, re, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "app.example.com")])
pem = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
request = base64.b64encode(pem.public_bytes(serialization.Encoding.PEM)).decode()
which, kubeconfig, ca_file = sys.argv[1:4]
if which == "stdlib":
    import json, ssl
    from sidecar import httpwire  # ssl and socket: what the sidecar's client is made of
    context = ssl.create_default_context(cafile=ca_file)
    body = json.dumps({"spec": {"request": request, "signerName": "clientcerts.dev/x"}})
elif which == "lightkube":
    from lightkube import Client, KubeConfig
    from lightkube.models.certificates_v1 import CertificateSigningRequestSpec
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.certificates_v1 import CertificateSigningRequest
    client = Client(KubeConfig.from_file(kubeconfig))
    obj = CertificateSigningRequest(metadata=ObjectMeta(generateName="x-"),
        spec=CertificateSigningRequestSpec(request=request, signerName="clientcerts.dev/x",
                                           usages=["client auth"]))
else:
    from kubernetes import client, config
    config.load_kube_config(kubeconfig)
    api = client.CertificatesV1Api()
    obj = client.V1CertificateSigningRequest(metadata=client.V1ObjectMeta(generate_name="x-"),
        spec=client.V1CertificateSigningRequestSpec(request=request,
            signer_name="clientcerts.dev/x", usages=["client auth"]))
status = open("/proc/self/status").read()
print(int(re.search(r"VmHWM:\\s+(\\d+)", status).group(1)) / 1024)
"""


def client_venv() -> Path:
    """A virtualenv with the candidate clients, made once (pip) and cached."""
    from kubelocal.binaries import cache_dir

    venv = cache_dir() / "bench" / "k8s-clients"
    python = venv / "bin" / "python"
    if not (venv / ".ready").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "cryptography>=44,<51",
             *CLIENTS.values()],
            check=True,
        )  # fmt: skip
        (venv / ".ready").write_text("ok")
    return python


def client_costs(kubeconfig: Path, ca_file: Path) -> dict[str, float]:
    """Peak RSS (MB) of the same job with each candidate client."""
    costs = {}
    python = client_venv()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the stdlib candidate is sidecar.httpwire
    for which in ("stdlib", *CLIENTS):
        done = subprocess.run(
            [str(python), "-c", CLIENT_PROBE, which, str(kubeconfig), str(ca_file)],
            capture_output=True, text=True, check=True, env=env,
        )  # fmt: skip
        costs[which] = round(float(done.stdout.strip()), 1)
    return costs


def kubernetes_figures(work: Path, idle: float, image: str) -> dict[str, object]:
    """The sidecar with the kubernetes issuer against a control plane, the operator's signer and
    a local CA, all started here; the pod's token and trust bundle volume are files."""
    from support.csr_requests import Requester, api_ca_file, policy_manifest, signer_lambdaca
    from support.operator_process import OperatorProcess, apply, install_crds

    from kubelocal.binaries import ensure_binaries
    from kubelocal.handle import local_cluster

    with local_cluster(ensure_binaries()) as (kube, _plane):
        ca = LocalCA(work / "kube-ca").start()
        operator = None
        try:
            install_crds(kube)
            kube.kubectl("create", "namespace", "bench")
            signer = "clientcerts.dev/bench"
            policy = policy_manifest(
                "bench", signer, requesters={"serviceAccounts": [{"namespace": "bench"}]},
                subject={"commonName": "{serviceAccount}.{namespace}.svc"},
            )  # fmt: skip
            apply(kube, signer_lambdaca("bench", ca), policy)
            app = Requester(kube, "bench", "app", work)
            operator = OperatorProcess.cli(
                kube, ca, work / "operator.log", "--standalone", signer="true"
            ).start()
            # The namespace's trust bundle exists before the pod, as for every pod but the first.
            app.submit(signer, "app.bench.svc")
            bundle_dir = work / "trust"
            bundle_dir.mkdir()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                got = kube.kubectl(
                    "get", "configmap", "clientcert-ca-bundle", "-n", "bench",
                    "-o", "jsonpath={.data.bench\\.crt}", check=False,
                )  # fmt: skip
                if got.returncode == 0 and got.stdout.strip():
                    (bundle_dir / "bench.crt").write_text(got.stdout)
                    break
                time.sleep(0.2)
            settings = {
                "CERT_SIDECAR_ISSUER": "kubernetes",
                "CERT_SIDECAR_SIGNER_NAME": signer,
                "CERT_SIDECAR_KUBE_API_URL": kube.server,
                "CERT_SIDECAR_KUBE_TOKEN_FILE": str(app.token_file),
                "CERT_SIDECAR_KUBE_CA_FILE": str(api_ca_file(kube, work)),
                "CERT_SIDECAR_TRUST_BUNDLE_FILE": str(bundle_dir / "bench.crt"),
                "CERT_SIDECAR_COMMON_NAME": "app.bench.svc",
                "CERT_SIDECAR_LISTEN": "127.0.0.1:0",
                "CERT_SIDECAR_LOG_LEVEL": "warning",
            }
            env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KUBE"))}
            env.update(
                settings, PYTHONPATH=str(ROOT), CERT_SIDECAR_OUTPUT_DIR=str(work / "kube-certs")
            )
            started = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-m", "sidecar", "run"], env=env, cwd=ROOT,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                ready = wait_ready(work / "kube-certs", proc.poll, started)
                time.sleep(idle)
                rss, peak = rss_mb(proc.pid), peak_mb(proc.pid)
            finally:
                proc.terminate()
                proc.wait(10)
            in_image = image_rss_mb(image, work, settings, idle) if image_size_mb(image) else None
            costs = client_costs(kube.kubeconfig, api_ca_file(kube, work))
        finally:
            if operator is not None:
                operator.stop()
            ca.stop()
    return {
        "kube_ready_s": round(ready, 3),
        "kube_rss_mb": round(rss, 1),
        "kube_peak_rss_mb": round(peak, 1),
        "kube_image_rss_mb": round(in_image, 1) if in_image is not None else None,
        "client_peak_rss_mb": costs,
    }


def wait_ready(output_dir: Path, exited: Callable[[], object], started: float) -> float:
    while not (output_dir / "..data").exists():
        if exited() is not None or time.monotonic() - started > 60:
            raise RuntimeError("the kubernetes sidecar got no certificate")
        time.sleep(0.005)
    return time.monotonic() - started


def peak_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def image_rss_mb(image: str, work: Path, settings: dict[str, str], idle: float) -> float:
    """Steady-state RSS of the same sidecar as the image runs it (its interpreter, its installed
    packages, uid 65532, read-only root), against the same API server on the host network."""
    output = work / "image-certs"
    output.mkdir()
    output.chmod(0o777)
    work.chmod(0o755)  # the bench's own files, for the image's non-root user
    for name in (
        "CERT_SIDECAR_KUBE_TOKEN_FILE",
        "CERT_SIDECAR_KUBE_CA_FILE",
        "CERT_SIDECAR_TRUST_BUNDLE_FILE",
    ):
        Path(settings[name]).chmod(0o644)
        Path(settings[name]).parent.chmod(0o755)
    variables = [
        f"{k}={v}" for k, v in {**settings, "CERT_SIDECAR_OUTPUT_DIR": str(output)}.items()
    ]
    started = time.monotonic()
    container = subprocess.run(
        ["docker", "run", "-d", "--network", "host", "--read-only", "--cap-drop", "ALL",
         "--user", "65532:65532", "-v", f"{work}:{work}",
         *[arg for v in variables for arg in ("-e", v)], image, "run"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    try:

        def exited() -> object:
            state = subprocess.run(
                ["docker", "inspect", "-f", "{{.State.Running}}", container],
                capture_output=True, text=True,
            ).stdout.strip()  # fmt: skip
            return None if state == "true" else state

        wait_ready(output, exited, started)
        time.sleep(idle)
        pid = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Pid}}", container],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        return rss_mb(int(pid))
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)


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
    parser.add_argument(
        "--no-kubernetes", action="store_true", help="skip the kubernetes issuer's figures"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sidecar-") as tmp:
        work = Path(tmp)
        ca = LocalCA(work / "ca-state").start()
        try:
            times = [start_to_ready(ca, work, i) for i in range(args.runs)]
            rss, idle_cpu = idle_figures(ca, work, args.idle)
        finally:
            ca.stop()
        kube = (
            {} if args.no_kubernetes else kubernetes_figures(work, min(args.idle, 10.0), args.image)
        )
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
        **kube,
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
    if kube:
        costs = kube["client_peak_rss_mb"]
        print(
            f"kubernetes issuer: start to ready {kube['kube_ready_s']} s; steady-state RSS "
            f"{kube['kube_rss_mb']} MB, peak {kube['kube_peak_rss_mb']} MB; in the image "
            f"{args.image}: {kube['kube_image_rss_mb'] or 'not built'} MB "
            f"(target <= {KUBE_TARGET_RSS_MB:g} MB)"
        )
        print(
            "candidate clients, peak RSS of the same small job: "
            + ", ".join(f"{name} {mb} MB" for name, mb in costs.items())
        )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
