"""Pods on the session node (`node` fixture): manifests that PodSecurity `restricted` admits,
waits that fail early with what the kubelet said, exec, logs, and the container's process.

Everything goes through kubectl against the node's real cluster; nothing here is simulated.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from kubelocal.handle import Kube
from kubelocal.runtime import ctr

UID = 65532
# What PodSecurity `restricted` requires of every container, plus a read-only root.
RESTRICTED: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": UID,
    "runAsGroup": UID,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
# Waiting reasons that never resolve by themselves here.
HOPELESS = {"ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff", "InvalidImageName",
            "CreateContainerConfigError", "CreateContainerError", "RunContainerError"}  # fmt: skip


def container(
    name: str,
    image: str,
    command: list[str],
    *,
    env: dict[str, str] | None = None,
    mounts: list[dict[str, Any]] | None = None,
    ports: list[int] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "image": image,
        "imagePullPolicy": "Never",
        "command": command,
        "securityContext": RESTRICTED,
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
        "volumeMounts": mounts or [],
        "ports": [{"containerPort": p} for p in ports or []],
    }
    spec.update(extra)
    return spec


def pod(
    name: str,
    namespace: str,
    containers: list[dict[str, Any]],
    *,
    labels: dict[str, str] | None = None,
    volumes: list[dict[str, Any]] | None = None,
    **spec_extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": containers,
        "volumes": volumes or [],
        "terminationGracePeriodSeconds": 2,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
    }
    spec.update(spec_extra)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": name}},
        "spec": spec,
    }


def apply(kube: Kube, *objects: dict[str, Any]) -> str:
    """kubectl apply of the objects; returns kubectl's stderr (admission warnings show there)."""
    done = kube.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                             "items": list(objects)}))  # fmt: skip
    return done.stderr


def get(kube: Kube, kind: str, name: str, namespace: str) -> dict[str, Any]:
    return kube.get_json(kind, name, "-n", namespace)


def _problem(pod_obj: dict[str, Any]) -> str | None:
    status = pod_obj.get("status", {})
    for cs in status.get("initContainerStatuses", []) + status.get("containerStatuses", []):
        waiting = cs.get("state", {}).get("waiting") or {}
        if waiting.get("reason") in HOPELESS:
            return f"container {cs['name']}: {waiting['reason']}: {waiting.get('message', '')}"
    if status.get("phase") == "Failed":
        return f"the Pod failed: {status.get('reason', '')} {status.get('message', '')}"
    return None


def describe(kube: Kube, namespace: str, name: str) -> str:
    done = kube.kubectl("describe", "pod", name, "-n", namespace, check=False)
    return done.stdout[-3000:]


def is_ready(pod_obj: dict[str, Any]) -> bool:
    conditions = pod_obj.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def wait_ready(kube: Kube, namespace: str, name: str, timeout: float = 120) -> dict[str, Any]:
    """The Pod once Ready; fails at once on an image or config error the kubelet reports."""
    deadline = time.monotonic() + timeout
    while True:
        got = kube.kubectl("get", "pod", name, "-n", namespace, "-o", "json", check=False)
        if got.returncode == 0:
            obj: dict[str, Any] = json.loads(got.stdout)
            if is_ready(obj):
                return obj
            problem = _problem(obj)
            if problem:
                raise AssertionError(
                    f"{namespace}/{name}: {problem}\n{describe(kube, namespace, name)}"
                )
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{namespace}/{name} not Ready in {timeout:g} s\n{describe(kube, namespace, name)}"
            )
        time.sleep(0.2)


def wait_phase(kube: Kube, namespace: str, name: str, phase: str, timeout: float = 120) -> None:
    kube.wait_for(
        lambda: get(kube, "pod", name, namespace).get("status", {}).get("phase") == phase,
        timeout=timeout,
        message=f"{namespace}/{name} to be {phase}",
    )


def pods(kube: Kube, namespace: str, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kube.get_json("pods", "-n", namespace, "-l", selector)["items"]
    return items


def ip(kube: Kube, namespace: str, name: str) -> str:
    address: str = get(kube, "pod", name, namespace)["status"]["podIP"]
    return address


def exec_in(
    kube: Kube, namespace: str, name: str, *command: str, container: str | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    where = ["-c", container] if container else []
    return kube.kubectl("exec", name, "-n", namespace, *where, "--", *command, check=check)


def logs(kube: Kube, namespace: str, name: str, container: str | None = None,
         previous: bool = False) -> str:  # fmt: skip
    args = ["logs", name, "-n", namespace]
    if container:
        args += ["-c", container]
    if previous:
        args.append("--previous")
    return kube.kubectl(*args, check=False).stdout


def container_status(pod_obj: dict[str, Any], name: str) -> dict[str, Any]:
    status = pod_obj.get("status", {})
    for cs in status.get("initContainerStatuses", []) + status.get("containerStatuses", []):
        if cs["name"] == name:
            return dict(cs)
    raise KeyError(f"no container {name} in {pod_obj['metadata']['name']}")


def host_pid(runtime_paths: Any, pod_obj: dict[str, Any], name: str) -> int:
    """The host PID of a running container's first process, from the node's containerd."""
    container_id = container_status(pod_obj, name)["containerID"].split("://", 1)[1]
    for line in ctr(runtime_paths, "tasks", "ls").stdout.splitlines()[1:]:
        task, pid, status = line.split()[:3]
        if task == container_id and status == "RUNNING":
            return int(pid)
    raise AssertionError(f"container {name} ({container_id}) has no running task")
