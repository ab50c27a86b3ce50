"""cert-manager as a benchmark peer, run for real against a control plane started here.

- ``ensure_built()``: the controller binary and CRDs, built by ``peers/cert-manager/build.sh``
  from the pinned module (cached; a cold build takes about 6 minutes on 2 cores).
- ``install_crds(kube, build)``: server-side apply, then wait for Established.
- ``CertManagerController``: the controller out of cluster (``--kubeconfig``, no leader
  election, metrics and /livez on loopback ports, explicit client QPS/burst).
- ``bootstrap_ca_issuer(kube, ...)``: SelfSigned ClusterIssuer -> CA Certificate -> CA
  ClusterIssuer, the usual way to run an in-cluster CA with cert-manager.
- ``certificate_manifest(...)``: a client certificate like the operator's ClientCertificate.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import free_port, http_ok

from kubelocal.procs import dies_with_this_process

BUILD_SCRIPT = Path(__file__).resolve().parent / "peers" / "cert-manager" / "build.sh"
GROUP = "cert-manager.io"
# What the operator issues by default (ECDSA P-256, 30 days), asked of cert-manager explicitly:
# a Certificate without privateKey would get RSA-2048, whose key generation alone costs ~70 ms.
KEY = {"algorithm": "ECDSA", "size": 256}
DURATION = "720h"


class PeerError(RuntimeError):
    """cert-manager could not be built, installed or started."""


@dataclass(frozen=True)
class Build:
    directory: Path

    @property
    def controller(self) -> Path:
        return self.directory / "bin" / "cert-manager-controller"

    @property
    def crds(self) -> list[Path]:
        return sorted((self.directory / "crds").glob("*.yaml"))

    @property
    def build_seconds(self) -> float | None:
        record = self.directory / "build-seconds"
        return float(record.read_text()) if record.exists() else None


def ensure_built() -> Build:
    """Build (or find cached) the controller; the script's progress goes to our stderr."""
    done = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--print-dir"], stdout=subprocess.PIPE, text=True, check=False
    )
    if done.returncode != 0:
        raise PeerError(f"{BUILD_SCRIPT} failed (exit {done.returncode}); see its output above")
    return Build(Path(done.stdout.strip().splitlines()[-1]))


def install_crds(kube: Any, build: Build, timeout: float = 60) -> None:
    args = [arg for crd in build.crds for arg in ("-f", str(crd))]
    kube.kubectl("apply", "--server-side", "--force-conflicts", *args)
    # File names are <group>_<plural>.yaml; the CRDs are named <plural>.<group>.
    names = [f"crd/{'.'.join(reversed(crd.stem.split('_', 1)))}" for crd in build.crds]
    kube.kubectl("wait", "--for=condition=Established", f"--timeout={timeout:g}s", *names)


@dataclass
class CertManagerController:
    """One cert-manager controller process with its own loopback ports and a log file."""

    build: Build
    kubeconfig: Path
    log_path: Path
    cluster_resource_namespace: str
    qps: float
    burst: int
    metrics_port: int = field(default_factory=free_port)
    healthz_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        return [
            str(self.build.controller),
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            f"--cluster-resource-namespace={self.cluster_resource_namespace}",
            f"--metrics-listen-address=127.0.0.1:{self.metrics_port}",
            f"--internal-healthz-listen-address=127.0.0.1:{self.healthz_port}",
            f"--kube-api-qps={self.qps:g}",
            f"--kube-api-burst={self.burst}",
        ]

    def start(self, timeout: float = 60) -> CertManagerController:
        with self.log_path.open("ab") as log:
            # Tied to the benchmark: an interrupted run leaves no controller behind.
            self.proc = subprocess.Popen(
                self.argv(),
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=dies_with_this_process(),
            )
        deadline = time.monotonic() + timeout
        while not self._serving():
            self.alive()
            if time.monotonic() > deadline:
                self.stop()
                raise PeerError(f"cert-manager not serving after {timeout:g}s: {self.log_tail()}")
            time.sleep(0.2)
        return self

    def _serving(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.healthz_port}/livez")

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise PeerError("cert-manager is not started")
        return self.proc.pid

    def alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise PeerError(f"cert-manager exited: {self.log_tail()}")

    def stop(self, timeout: float = 20) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _cluster_issuer(name: str, spec: dict) -> dict:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ClusterIssuer",
        "metadata": {"name": name},
        "spec": spec,
    }


def _apply_and_wait(kube: Any, manifest: dict, what: str, timeout: float) -> None:
    kube.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(manifest))
    meta = manifest["metadata"]
    scope = ["-n", meta["namespace"]] if "namespace" in meta else []
    kube.kubectl(
        "wait",
        "--for=condition=Ready",
        f"--timeout={timeout:g}s",
        f"{what}/{meta['name']}",
        *scope,
    )


def bootstrap_ca_issuer(kube: Any, name: str, namespace: str, timeout: float = 60) -> str:
    """A CA ClusterIssuer ``name`` whose key pair (ECDSA P-256) cert-manager itself made with a
    SelfSigned ClusterIssuer and keeps in the Secret ``namespace/name``
    (``namespace`` must be the controller's --cluster-resource-namespace)."""
    kube.kubectl("create", "namespace", namespace, check=False)
    selfsigned = f"{name}-selfsigned"
    _apply_and_wait(kube, _cluster_issuer(selfsigned, {"selfSigned": {}}), "clusterissuer", timeout)
    ca_certificate = {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Certificate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "isCA": True,
            "commonName": f"{name} benchmark CA",
            "secretName": name,
            "privateKey": KEY,
            "issuerRef": {"name": selfsigned, "kind": "ClusterIssuer", "group": GROUP},
        },
    }
    _apply_and_wait(kube, ca_certificate, "certificate", timeout)
    _apply_and_wait(
        kube, _cluster_issuer(name, {"ca": {"secretName": name}}), "clusterissuer", timeout
    )
    return name


def certificate_manifest(name: str, namespace: str, issuer: str) -> dict:
    """A client certificate shaped like the operator's default ClientCertificate."""
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Certificate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "commonName": f"{name}.example.com",
            "secretName": f"{name}-tls",
            "duration": DURATION,
            "privateKey": KEY,
            "usages": ["digital signature", "client auth"],
            "issuerRef": {"name": issuer, "kind": "ClusterIssuer", "group": GROUP},
        },
    }
