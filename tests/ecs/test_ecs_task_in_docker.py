"""Each ECS task definition replayed in a real Docker engine: the sidecar image and the app
container share a volume, start in dependsOn order with the task definition's environment, user,
read-only root and dropped capabilities, and the app completes a mutual-TLS handshake with the
issued certificate against a server that trusts the CA. The CA is the real local CA."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest
from ecs_task import TASK_DEFINITIONS, docker_run_args, fill, start_order
from support.docker_fixtures import DockerEngine

from cacli.tls import MutualTLSServer

pytestmark = [pytest.mark.docker, pytest.mark.timeout(240)]

COMMON_NAME = "payments-api.example.com"


@pytest.fixture
def mtls_server(ca, tmp_path):
    """`ca-cert serve`'s server on loopback, with a server certificate from the same CA: it
    trusts the CA's chain and greets each client by its certificate's common name."""
    certs = tmp_path / "server"
    done = subprocess.run(
        [
            sys.executable, "-m", "cacli.main", "issue", "--cn", "mtls-server.example.com",
            "--san", "IP:127.0.0.1",
            "--purpose", "server_auth", "--purpose", "client_auth",
            "--lifetime", "1", "--out", str(certs),
        ],
        env=ca.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    server = MutualTLSServer(("127.0.0.1", 0), certs)
    server.serve_in_thread()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class Task:
    """The containers of one task run, removed afterwards with their volume."""

    def __init__(self, docker: DockerEngine) -> None:
        self.docker = docker
        self.prefix = f"lcc-ecs-{uuid.uuid4().hex[:8]}"
        self.volume = f"{self.prefix}-certs"
        self.started: list[str] = []

    def name(self, container: str) -> str:
        return f"{self.prefix}-{container}"

    def state(self, container: str) -> dict:
        out = self.docker.run("inspect", "--format", "{{json .State}}", self.name(container))
        return json.loads(out.stdout)

    def logs(self, container: str) -> str:
        done = self.docker.run("logs", self.name(container), check=False)
        return done.stdout + done.stderr

    def wait_for(self, container: str, condition: str, timeout: float = 90) -> None:
        """ECS's dependsOn conditions, read from the container's real state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state(container)
            if condition == "START" and state["Running"]:
                return
            if condition in ("COMPLETE", "SUCCESS") and state["Status"] == "exited":
                if condition == "SUCCESS" and state["ExitCode"] != 0:
                    raise AssertionError(
                        f"{container} exited {state['ExitCode']}, so ECS would never start its "
                        f"dependants:\n{self.logs(container)}"
                    )
                return
            if condition == "HEALTHY":
                health = state.get("Health", {}).get("Status")
                if health == "healthy":
                    return
                if health == "unhealthy" or state["Status"] == "exited":
                    raise AssertionError(f"{container} is {health}:\n{self.logs(container)}")
            time.sleep(0.2)
        raise AssertionError(f"{container} not {condition} in {timeout}s:\n{self.logs(container)}")

    def run(self, task: dict, role_env: dict[str, str]) -> None:
        self.docker.run("volume", "create", self.volume)
        for definition in start_order(task):
            for dependency in definition.get("dependsOn", []):
                self.wait_for(dependency["containerName"], dependency["condition"])
            args = docker_run_args(
                definition,
                {"certs": self.volume},
                role_env,
                self.name(definition["name"]),
                health_interval_seconds=1,
            )
            self.docker.run(*args)
            self.started.append(definition["name"])

    def remove(self) -> None:
        for container in self.started:
            self.docker.run("rm", "--force", self.name(container), check=False)
        self.docker.run("volume", "rm", "--force", self.volume, check=False)


@pytest.fixture
def task_run(docker_engine):
    task = Task(docker_engine)
    yield task
    task.remove()


def role_env(ca) -> dict[str, str]:
    """What the task role gives a container on ECS (credentials), pointed at the local CA."""
    return {k: v for k, v in ca.env.items() if k.startswith("AWS_")}


@pytest.mark.parametrize("form", list(TASK_DEFINITIONS), ids=list(TASK_DEFINITIONS))
def test_task_replayed_in_docker_ends_in_a_mutual_tls_handshake(
    form, sidecar_image, ca, mtls_server, task_run
):
    task = fill(
        TASK_DEFINITIONS[form],
        SIDECAR_IMAGE=sidecar_image,
        APP_IMAGE=sidecar_image,
        COMMON_NAME=COMMON_NAME,
        MTLS_SERVER=mtls_server,
    )
    issued_before = ca.stats()["issued"]
    task_run.run(task, role_env(ca))
    task_run.wait_for("app", "COMPLETE")

    app_log = task_run.logs("app")
    assert task_run.state("app")["ExitCode"] == 0, app_log
    assert f"ok: mutual TLS handshake with {mtls_server} succeeded" in app_log
    assert COMMON_NAME in app_log  # the server greeted the client by its certificate's name
    assert ca.stats()["issued"] == issued_before + 1

    sidecar = task_run.state("cert-sidecar")
    if form.startswith("one-shot"):
        assert (sidecar["Status"], sidecar["ExitCode"]) == ("exited", 0)
    else:
        assert sidecar["Running"] and sidecar["Health"]["Status"] == "healthy"
        stopped = time.monotonic()
        task_run.docker.run("stop", "--time", "10", task_run.name("cert-sidecar"))
        assert time.monotonic() - stopped < 10, "SIGTERM did not stop the sidecar"
        assert task_run.state("cert-sidecar")["ExitCode"] == 0


def test_app_of_the_one_shot_task_never_starts_when_the_ca_refuses(
    sidecar_image, ca, mtls_server, task_run
):
    ca.inject("refuse", count=50, message="Private key has already been used for a certificate")
    task = fill(
        TASK_DEFINITIONS["one-shot sidecar, app waits for SUCCESS"],
        SIDECAR_IMAGE=sidecar_image,
        APP_IMAGE=sidecar_image,
        COMMON_NAME=COMMON_NAME,
        MTLS_SERVER=mtls_server,
    )
    with pytest.raises(AssertionError, match="would never start its dependants"):
        task_run.run(task, role_env(ca))
    assert task_run.started == ["cert-sidecar"]
    assert "already been used" in task_run.logs("cert-sidecar")
