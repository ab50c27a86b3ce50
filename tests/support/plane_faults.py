"""Faults of a running local control plane: kill etcd or kube-apiserver (SIGKILL, as a crash)
and start it again with the same flags, ports and data, then wait until the API server is ready.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

from kubelocal.controlplane import ControlPlane

COMPONENTS = ("etcd", "kube-apiserver")


def kill(plane: ControlPlane, name: str) -> None:
    """SIGKILL ``name`` (its whole process group) and wait until it is gone."""
    if name not in COMPONENTS:
        raise ValueError(f"{name}: one of {', '.join(COMPONENTS)}")
    plane.crash(name)


def restart(plane: ControlPlane, name: str, kube: Any, timeout: float = 90.0) -> float:
    """Start ``name`` again as it ran before; returns seconds until the API server is ready."""
    began = time.monotonic()
    plane.restart(name)
    wait_api_ready(kube, timeout)
    return time.monotonic() - began


def heal(plane: ControlPlane, kube: Any) -> None:
    """Restart whatever a fault left down (a failed test or scenario must not leave one down)."""
    for name in COMPONENTS:
        if plane.component(name).popen.poll() is not None:
            restart(plane, name, kube)


def wait_api_ready(kube: Any, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run(
            [str(kube.kubectl_path), "get", "--raw", "/readyz"],
            env=kube.env, capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        if done.returncode == 0 and done.stdout.strip() == "ok":
            return
        time.sleep(0.2)
    raise TimeoutError(f"the API server was not ready within {timeout:g} s")
