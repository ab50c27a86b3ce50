"""ECS task definitions of ecs/: placeholder filling (what `envsubst` does) and a faithful
translation of a container definition into `docker run` flags, so a task can be replayed in a
real Docker engine in its dependsOn order."""

from __future__ import annotations

import json
import re
import string
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ECS = ROOT / "ecs"
TASK_DEFINITIONS = {
    "one-shot sidecar, app waits for SUCCESS": ECS / "task-definition-once.json",
    "long-running sidecar, app waits for HEALTHY": ECS / "task-definition-sidecar.json",
}
PLACEHOLDER = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")

# Values a user would export before `envsubst`; the local CA's account, region and function.
EXAMPLE = {
    "FAMILY": "payments-api",
    "AWS_ACCOUNT_ID": "111111111111",
    "AWS_REGION": "us-east-1",
    "TASK_ROLE_NAME": "payments-api-cert",
    "CA_ACCOUNT_ID": "123456789012",
    "CA_FUNCTION_NAME": "serverless-tls-cert-dev",
    "SIDECAR_IMAGE": "111111111111.dkr.ecr.us-east-1.amazonaws.com/lambda-client-certs:0.1.0",
    "APP_IMAGE": "111111111111.dkr.ecr.us-east-1.amazonaws.com/lambda-client-certs:0.1.0",
    "COMMON_NAME": "payments-api.example.com",
    "MTLS_SERVER": "partner.example.com:443",
}


def placeholders(path: Path) -> set[str]:
    return set(PLACEHOLDER.findall(path.read_text()))


def fill(path: Path, **values: str) -> dict[str, Any]:
    """The file with every ${NAME} replaced; a missing value raises KeyError (envsubst would
    silently leave it empty)."""
    return json.loads(string.Template(path.read_text()).substitute({**EXAMPLE, **values}))


def container(task: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in task["containerDefinitions"] if c["name"] == name)


def start_order(task: dict[str, Any]) -> list[dict[str, Any]]:
    """Containers in an order that honours every dependsOn (a topological sort)."""
    pending = list(task["containerDefinitions"])
    done: list[str] = []
    ordered = []
    while pending:
        ready = [
            c for c in pending if all(d["containerName"] in done for d in c.get("dependsOn", []))
        ]
        if not ready:
            raise ValueError(f"dependsOn cycle among {[c['name'] for c in pending]}")
        for c in ready:
            ordered.append(c)
            done.append(c["name"])
            pending.remove(c)
    return ordered


def docker_run_args(
    definition: dict[str, Any],
    volumes: dict[str, str],
    extra_env: dict[str, str],
    name: str,
    health_interval_seconds: int | None = None,
    extra_mounts: tuple[str, ...] = (),
) -> list[str]:
    """`docker run` arguments for one container definition.

    awsvpc gives the task's containers one network namespace with a shared loopback: here
    `--network host`, which also reaches the local CA on the host's loopback. ``extra_env``
    holds what ECS adds for the task role (static keys, or a credentials endpoint's address).
    ``extra_mounts`` (HOST:CONTAINER[:ro]) are files the agent provides, such as the endpoint's
    authorization token. ``health_interval_seconds`` shortens the health check's interval so a
    test does not wait ECS's 10 s (command, timeout and retries are kept).
    """
    args = ["run", "--detach", "--name", name, "--network", "host"]
    if definition.get("user"):
        args += ["--user", definition["user"]]
    if definition.get("readonlyRootFilesystem"):
        args.append("--read-only")
    linux = definition.get("linuxParameters", {})
    for cap in linux.get("capabilities", {}).get("drop", []):
        args += ["--cap-drop", cap]
    for cap in linux.get("capabilities", {}).get("add", []):
        args += ["--cap-add", cap]
    if linux.get("initProcessEnabled"):
        args.append("--init")
    for pair in definition.get("environment", []):
        args += ["--env", f"{pair['name']}={pair['value']}"]
    for key, value in extra_env.items():
        args += ["--env", f"{key}={value}"]
    for mount in definition.get("mountPoints", []):
        mode = ":ro" if mount.get("readOnly") else ""
        args += ["--volume", f"{volumes[mount['sourceVolume']]}:{mount['containerPath']}{mode}"]
    for mount in extra_mounts:
        args += ["--volume", mount]
    check = definition.get("healthCheck")
    if check:
        kind, *command = check["command"]
        if kind == "CMD":
            args += ["--health-cmd", " ".join(command)]  # docker runs it through /bin/sh -c
        elif kind == "CMD-SHELL":
            args += ["--health-cmd", command[0]]
        interval = health_interval_seconds or check.get("interval", 30)
        args += [
            "--health-interval",
            f"{interval}s",
            "--health-timeout",
            f"{check.get('timeout', 5)}s",
            "--health-retries",
            str(check.get("retries", 3)),
            "--health-start-period",
            f"{check.get('startPeriod', 0)}s",
        ]
    if definition.get("entryPoint"):
        args += ["--entrypoint", definition["entryPoint"][0]]
        command = [*definition["entryPoint"][1:], *definition.get("command", [])]
    else:
        command = list(definition.get("command", []))
    args.append(definition["image"])
    args += command
    return args
