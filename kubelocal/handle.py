"""The handle tests and scripts use: kubectl/helm bound to one cluster, identity helpers.

The cluster is either a local control plane (kubelocal.controlplane.ControlPlane) or, when
LCC_USE_EXISTING_CLUSTER=1, whatever KUBECONFIG names (kind, k3d, EKS).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from kubelocal.binaries import Binaries
from kubelocal.controlplane import ControlPlane
from kubelocal.pki import write_kubeconfig, write_private
from kubelocal.procs import KubeError, wait_for

T = TypeVar("T")


class CommandError(subprocess.CalledProcessError):
    """A kubectl/helm call failed; the message carries its stderr, unlike CalledProcessError's."""

    def __str__(self) -> str:
        argv = " ".join(str(a) for a in self.cmd)
        return f"{argv} exited {self.returncode}: {(self.stderr or self.output or '').strip()}"


def _dns_label(text: str, limit: int) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return label[:limit].rstrip("-") or "x"


@dataclass
class Kube:
    """kubectl/helm bound to one cluster (ours or an existing one), plus identity helpers."""

    kubeconfig: Path
    server: str
    kubectl_path: Path
    helm_path: Path
    env: dict[str, str]
    scratch: Path
    timeout: float = 120.0

    @classmethod
    def create(cls, kubeconfig: Path, tools_bin: Path, scratch: Path) -> Kube:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(kubeconfig)
        env["PATH"] = f"{tools_bin}{os.pathsep}{env.get('PATH', '')}"
        # Helm's state stays with this cluster's scratch dir, never in the user's home.
        for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
            env[var] = str(scratch / "helm" / var.split("_")[1].lower())
        kube = cls(
            kubeconfig=kubeconfig,
            server="",
            kubectl_path=tools_bin / "kubectl",
            helm_path=tools_bin / "helm",
            env=env,
            scratch=scratch,
        )
        kube.server = kube.kubectl(
            "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"
        ).stdout.strip()
        return kube

    def _run(
        self, tool: Path, args: tuple[str, ...], input: str | None, check: bool
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(tool), *args]
        done = subprocess.run(
            argv,
            input=input,
            env=self.env,
            text=True,
            capture_output=True,
            timeout=self.timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise CommandError(done.returncode, argv, done.stdout, done.stderr)
        return done

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self._run(self.kubectl_path, args, input, check)

    def helm(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self._run(self.helm_path, args, input, check)

    def get_json(self, *args: str) -> dict[str, Any]:
        got: dict[str, Any] = json.loads(self.kubectl("get", *args, "-o", "json").stdout)
        return got

    def token_for(self, namespace: str, service_account: str, duration: str = "1h") -> str:
        """A bearer token for the ServiceAccount, from the TokenRequest API."""
        return self.kubectl(
            "create", "token", service_account, "-n", namespace, f"--duration={duration}"
        ).stdout.strip()

    def kubeconfig_for(self, namespace: str, service_account: str, path: Path) -> Path:
        """A kubeconfig (0600) that acts as the ServiceAccount, with its namespace as default."""
        raw = json.loads(self.kubectl("config", "view", "--minify", "--raw", "-o", "json").stdout)
        cluster = raw["clusters"][0]["cluster"]
        ca_data = cluster.get("certificate-authority-data")
        if ca_data:
            ca_pem = base64.b64decode(ca_data)
        elif cluster.get("certificate-authority"):
            ca_pem = Path(cluster["certificate-authority"]).read_bytes()
        else:
            ca_pem = b""
        token = self.token_for(namespace, service_account)
        write_kubeconfig(path, cluster["server"], ca_pem, {"token": token}, name=service_account)
        config = json.loads(path.read_text())
        config["contexts"][0]["context"]["namespace"] = namespace
        if not ca_pem:
            del config["clusters"][0]["cluster"]["certificate-authority-data"]
            if cluster.get("insecure-skip-tls-verify"):
                config["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True
        write_private(path, json.dumps(config, indent=2).encode())
        return path

    @staticmethod
    def as_service_account(namespace: str, service_account: str) -> list[str]:
        """kubectl/helm arguments that impersonate the ServiceAccount (admin asks on its behalf)."""
        return [f"--as=system:serviceaccount:{namespace}:{service_account}"]

    @staticmethod
    def wait_for(
        predicate: Callable[[], T],
        timeout: float = 60.0,
        interval: float = 0.2,
        message: str = "condition",
    ) -> T:
        return wait_for(predicate, timeout, interval, message)

    def new_namespace_name(self, hint: str) -> str:
        return f"{_dns_label(hint, 50)}-{secrets.token_hex(4)}"


@contextlib.contextmanager
def existing_cluster(kubeconfig_env: str, tools_bin: Path) -> Iterator[Kube]:
    """A Kube for the cluster KUBECONFIG names, flattened once so later edits don't move it."""
    scratch = Path(tempfile.mkdtemp(prefix="lcc-kube-existing-"))
    try:
        env = {**os.environ, "KUBECONFIG": kubeconfig_env}
        flat = subprocess.run(
            [str(tools_bin / "kubectl"), "config", "view", "--flatten", "--minify", "-o", "json"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if flat.returncode != 0:
            raise KubeError(
                f"KUBECONFIG={kubeconfig_env} cannot be read by kubectl: {flat.stderr.strip()}; "
                "point KUBECONFIG at a valid kubeconfig or unset LCC_USE_EXISTING_CLUSTER"
            )
        path = scratch / "kubeconfig"
        write_private(path, flat.stdout.encode())
        yield Kube.create(path, tools_bin, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def local_cluster(binaries: Binaries, **start_args: Any) -> Iterator[tuple[Kube, ControlPlane]]:
    plane = ControlPlane.start(binaries, **start_args)
    try:
        yield Kube.create(plane.kubeconfig, binaries.tools_bin, plane.workdir), plane
    finally:
        plane.stop()


def use_existing_cluster() -> str | None:
    """KUBECONFIG when LCC_USE_EXISTING_CLUSTER=1 asks for it; a clear error if it is missing."""
    if os.environ.get("LCC_USE_EXISTING_CLUSTER", "") not in ("1", "true", "yes"):
        return None
    kubeconfig = os.environ.get("KUBECONFIG", "")
    if not kubeconfig:
        raise KubeError(
            "LCC_USE_EXISTING_CLUSTER=1 needs KUBECONFIG set to the cluster's kubeconfig file; "
            "set KUBECONFIG or unset LCC_USE_EXISTING_CLUSTER"
        )
    return kubeconfig
