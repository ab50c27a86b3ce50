"""Faults of a running local control plane: kill etcd or kube-apiserver (SIGKILL, as a crash)
and start it again with the same flags, ports and data, then wait until the API server is ready.

To move into the control plane package (``kubelocal.ControlPlane.kill/restart``) when it lands.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any

import localkube

COMPONENTS = ("etcd", "kube-apiserver")


def _process(plane: Any, name: str) -> Any:
    for proc in plane._procs:  # noqa: SLF001  (see the module docstring)
        if proc.name == name:
            return proc
    raise KeyError(f"no {name} in this control plane")


def kill(plane: Any, name: str) -> None:
    """SIGKILL ``name`` (its whole process group) and wait until it is gone."""
    if name not in COMPONENTS:
        raise ValueError(f"{name}: one of {', '.join(COMPONENTS)}")
    proc = _process(plane, name)
    if proc.popen.poll() is None:
        os.killpg(proc.popen.pid, signal.SIGKILL)
    proc.popen.wait(30)


def restart(plane: Any, name: str, kube: Any, timeout: float = 90.0) -> float:
    """Start ``name`` again as it ran before; returns seconds until the API server is ready."""
    proc = _process(plane, name)
    if proc.popen.poll() is None:
        raise RuntimeError(f"{name} is still running")
    began = time.monotonic()
    new = localkube._spawn(name, list(proc.popen.args), plane.workdir)  # noqa: SLF001
    plane._procs[plane._procs.index(proc)] = new  # noqa: SLF001
    plane._record_pids()  # noqa: SLF001
    wait_api_ready(kube, timeout)
    return time.monotonic() - began


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
