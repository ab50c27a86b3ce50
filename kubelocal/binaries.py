"""Pinned versions and the cached binaries: where they live and how to get them.

``scripts/kube/build.sh`` builds the Kubernetes and etcd binaries and ``scripts/kube/tools.sh``
fetches kubectl and helm, both into a cache outside the checkout; this module runs them and
names the results.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kubelocal.procs import KubeError

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts" / "kube"
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager")
NODE = ("kube-scheduler", "kubelet", "kube-proxy")


def read_versions(path: Path = SCRIPTS / "versions.env") -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.lstrip().startswith("#")}


def cache_dir() -> Path:
    if os.environ.get("LCC_CACHE_DIR"):
        return Path(os.environ["LCC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lambda-client-certs"


@dataclass(frozen=True)
class Binaries:
    kube_bin: Path
    tools_bin: Path

    @property
    def etcd(self) -> Path:
        return self.kube_bin / "etcd"

    @property
    def apiserver(self) -> Path:
        return self.kube_bin / "kube-apiserver"

    @property
    def controller_manager(self) -> Path:
        return self.kube_bin / "kube-controller-manager"

    @property
    def scheduler(self) -> Path:
        return self.kube_bin / "kube-scheduler"

    @property
    def kubelet(self) -> Path:
        return self.kube_bin / "kubelet"

    @property
    def kube_proxy(self) -> Path:
        return self.kube_bin / "kube-proxy"

    @property
    def kubectl(self) -> Path:
        return self.tools_bin / "kubectl"

    @property
    def helm(self) -> Path:
        return self.tools_bin / "helm"


def _run_setup_script(name: str) -> Path:
    # The scripts' stderr is inherited so a cold build shows its progress where the caller is.
    script = SCRIPTS / name
    if not script.is_file():
        raise KubeError(f"{script} is missing; kubelocal runs from a checkout (pip install -e .)")
    done = subprocess.run(
        ["bash", str(script), "--print-bin"], stdout=subprocess.PIPE, text=True, check=False
    )
    if done.returncode != 0:
        raise KubeError(f"{script} failed with exit code {done.returncode}; see its output above")
    return Path(done.stdout.strip().splitlines()[-1])


def ensure_tools() -> Path:
    """kubectl and helm (scripts/kube/tools.sh), fetched into the cache if missing."""
    return _run_setup_script("tools.sh")


def ensure_binaries() -> Binaries:
    """The control plane's and the node's binaries (scripts/kube/build.sh) plus the tools."""
    return Binaries(kube_bin=_run_setup_script("build.sh"), tools_bin=ensure_tools())


def binaries_cached() -> bool:
    v = read_versions()
    bin_dir = cache_dir() / "kube" / f"kubernetes-{v['KUBE_VERSION']}-etcd-{v['ETCD_VERSION']}"
    return all(os.access(bin_dir / "bin" / n, os.X_OK) for n in (*CONTROL_PLANE, *NODE))
