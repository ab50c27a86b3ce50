"""The operator as a real subprocess (``kopf run`` or ``clientcert-operator``), its metrics and
logs, and helpers to apply and watch ClientCertificates. Used by the e2e tests and the bench."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "charts" / "clientcert-operator" / "crds"
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def install_crds(kube: Any) -> None:
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    kube.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/clientcertificates.clientcerts.dev",
        "crd/lambdacas.clientcerts.dev",
        "crd/clusterkopfpeerings.kopf.dev",
        "crd/kopfpeerings.kopf.dev",
    )


def lambdaca_manifest(name: str, local_ca: Any, **spec: Any) -> dict:
    return {
        "apiVersion": "clientcerts.dev/v1alpha1",
        "kind": "LambdaCA",
        "metadata": {"name": name},
        "spec": {
            "functionName": local_ca.function_name,
            "region": local_ca.region,
            "endpointUrl": local_ca.endpoint_url,
            **spec,
        },
    }


def certificate_manifest(
    name: str, namespace: str, issuer: str | None = "local", **spec: Any
) -> dict:
    body: dict[str, Any] = {
        "commonName": f"{name}.example.com",
        "secretName": f"{name}-tls",
        **spec,
    }
    if issuer:
        body["issuerRef"] = {"name": issuer}
    return {
        "apiVersion": "clientcerts.dev/v1alpha1",
        "kind": "ClientCertificate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def apply(
    kube: Any, *manifests: dict, check: bool = True, server_side: bool = False
) -> subprocess.CompletedProcess[str]:
    """``kubectl apply`` of all manifests in one call (server-side: one request per object
    instead of a GET and a POST, which is what makes 300 objects arrive "at once")."""
    document = {"apiVersion": "v1", "kind": "List", "items": list(manifests)}
    extra = ["--server-side"] if server_side else []
    return kube.kubectl("apply", *extra, "-f", "-", input=json.dumps(document), check=check)


def get(kube: Any, kind: str, name: str, namespace: str | None = None) -> dict | None:
    args = ["get", kind, name, "-o", "json", "--ignore-not-found"]
    if namespace:
        args += ["-n", namespace]
    out = kube.kubectl(*args).stdout.strip()
    return json.loads(out) if out else None


def condition(obj: dict | None, type_: str = "Ready") -> dict:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return {}


def wait_for(
    predicate: Any, timeout: float = 60.0, interval: float = 0.25, message: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:g}s waiting for {message or predicate}: {last!r}"
    )


class OperatorProcess:
    """One operator process with its own metrics and liveness ports and a log file."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.argv, self.env, self.log_path = argv, env, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def kopf_run(
        cls, kube: Any, local_ca: Any, log_path: Path, *extra: str, **settings: str
    ) -> OperatorProcess:
        """``kopf run -m certoperator.handlers`` with settings from CLIENTCERT_* variables."""
        metrics, liveness = free_port(), free_port()
        argv = [
            sys.executable,
            "-m",
            "kopf",
            "run",
            "--log-format=json",
            "--all-namespaces",
            f"--liveness=http://127.0.0.1:{liveness}/healthz",
            "-m",
            "certoperator.handlers",
            *extra,
        ]
        return cls(argv, operator_env(kube, local_ca, metrics, **settings), log_path)._ports(
            metrics, liveness
        )

    @classmethod
    def cli(
        cls, kube: Any, local_ca: Any, log_path: Path, *extra: str, **settings: str
    ) -> OperatorProcess:
        """The ``clientcert-operator`` console script."""
        metrics, liveness = free_port(), free_port()
        script = Path(sys.executable).with_name("clientcert-operator")
        argv = [str(script), f"--liveness=http://127.0.0.1:{liveness}/healthz", *extra]
        return cls(argv, operator_env(kube, local_ca, metrics, **settings), log_path)._ports(
            metrics, liveness
        )

    def _ports(self, metrics: int, liveness: int) -> OperatorProcess:
        self.metrics_port, self.liveness_port = metrics, liveness
        return self

    def start(self, timeout: float = 60.0) -> OperatorProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115  closed with the process
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )
        log.close()
        wait_for(
            lambda: self.alive() and self.healthy(),
            timeout,
            0.2,
            f"operator liveness ({self.log_path})",
        )
        return self

    def alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"operator exited: {self.log_tail()}")
        return True

    def healthy(self) -> bool:
        try:
            with _opener.open(
                f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2
            ) as response:
                return response.status == 200
        except OSError:
            return False

    def metrics_text(self) -> str:
        with _opener.open(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            return response.read().decode()

    def metric(self, metric_name: str, /, **labels: str) -> float:
        """Sum of the samples of ``metric_name`` whose labels include ``labels`` (0 when absent)."""
        total = 0.0
        for line in self.metrics_text().splitlines():
            match = re.match(r"^([a-zA-Z_:]+)(\{[^}]*\})? ([0-9.eE+-]+)$", line)
            if not match or match.group(1) != metric_name:
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(match.group(3))
        return total

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def peak_rss_mb(self, field: str = "VmHWM") -> float:
        """Peak resident memory (``VmRSS`` for the current one) in MB."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(rf"{field}:\s+(\d+) kB", status).group(1)) / 1024

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def operator_env(kube: Any, local_ca: Any, metrics_port: int, **settings: str) -> dict[str, str]:
    env = dict(local_ca.env)
    env["KUBECONFIG"] = str(kube.kubeconfig)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "operator"), str(ROOT), env.get("PYTHONPATH", "")]
    )
    env.update(
        {
            "CLIENTCERT_METRICS_ADDRESS": "127.0.0.1",
            "CLIENTCERT_METRICS_PORT": str(metrics_port),
            "CLIENTCERT_RETRY_BASE_SECONDS": "0.5",
            "CLIENTCERT_RETRY_CAP_SECONDS": "3",
            "CLIENTCERT_RENEWAL_JITTER": "0",
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    env.update({f"CLIENTCERT_{k.upper()}": v for k, v in settings.items()})
    return env
