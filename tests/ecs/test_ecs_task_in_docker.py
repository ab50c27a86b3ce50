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
from credentials_endpoint import CredentialsEndpoint
from ecs_task import TASK_DEFINITIONS, docker_run_args, fill, start_order
from support.docker_fixtures import DockerEngine

from cacli.tls import MutualTLSServer

pytestmark = [pytest.mark.docker, pytest.mark.timeout(240)]

COMMON_NAME = "payments-api.example.com"


def serve_mutual_tls(ca, tmp_path):
    """`ca-cert serve`'s server on loopback, with a server certificate from `ca`: it trusts the
    CA's chain and greets each client by its certificate's common name."""
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
    return server


@pytest.fixture
def mtls_server(ca, tmp_path):
    server = serve_mutual_tls(ca, tmp_path)
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

    def run(
        self,
        task: dict,
        role_env: dict[str, str],
        extra_mounts: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        """Start the containers in dependsOn order; extra_mounts: container name -> mounts."""
        extra_mounts = extra_mounts or {}
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
                extra_mounts=extra_mounts.get(definition["name"], ()),
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


ONE_SHOT = "one-shot sidecar, app waits for SUCCESS"


def task_for(form: str, sidecar_image: str, mtls_server: str) -> dict:
    return fill(
        TASK_DEFINITIONS[form],
        SIDECAR_IMAGE=sidecar_image,
        APP_IMAGE=sidecar_image,
        COMMON_NAME=COMMON_NAME,
        MTLS_SERVER=mtls_server,
    )


def role_env(ca) -> dict[str, str]:
    """What the task role gives a container on ECS (credentials), pointed at the local CA."""
    return {k: v for k, v in ca.env.items() if k.startswith("AWS_")}


@pytest.mark.parametrize("form", list(TASK_DEFINITIONS), ids=list(TASK_DEFINITIONS))
def test_task_replayed_in_docker_ends_in_a_mutual_tls_handshake(
    form, sidecar_image, ca, mtls_server, task_run
):
    task = task_for(form, sidecar_image, mtls_server)
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
        task_run.docker.run("stop", "--time", "10", task_run.name("cert-sidecar"))
        # 0, not 137: SIGTERM stopped it before docker's SIGKILL.
        assert task_run.state("cert-sidecar")["ExitCode"] == 0


def test_app_of_the_one_shot_task_never_starts_when_the_ca_refuses(
    sidecar_image, ca, mtls_server, task_run
):
    ca.inject("refuse", count=50, message="Private key has already been used for a certificate")
    task = task_for(ONE_SHOT, sidecar_image, mtls_server)
    with pytest.raises(AssertionError, match="would never start its dependants"):
        task_run.run(task, role_env(ca))
    assert task_run.started == ["cert-sidecar"]
    assert "already been used" in task_run.logs("cert-sidecar")


@pytest.fixture
def task_role_ca(local_ca_factory, dynamodb_server):
    """A local CA that, like Lambda, accepts the task role's temporary credentials from STS."""
    return local_ca_factory("--sts-endpoint", dynamodb_server)


@pytest.fixture
def task_role_mtls_server(task_role_ca, tmp_path):
    server = serve_mutual_tls(task_role_ca, tmp_path)
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def credentials_endpoint(dynamodb_server):
    task = fill(TASK_DEFINITIONS["one-shot sidecar, app waits for SUCCESS"])
    endpoint = CredentialsEndpoint(dynamodb_server, task["taskRoleArn"]).start()
    yield endpoint
    endpoint.stop()


def endpoint_env(ca, endpoint: CredentialsEndpoint) -> dict[str, str]:
    """What ECS gives a container for its task role: an endpoint and a token file, no keys."""
    return {
        "AWS_REGION": ca.region,
        "AWS_DEFAULT_REGION": ca.region,
        "AWS_ENDPOINT_URL_LAMBDA": ca.endpoint_url,
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": endpoint.url,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": TOKEN_IN_CONTAINER,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


TOKEN_IN_CONTAINER = "/var/run/secrets/ecs/token"


def token_mount(tmp_path, token: str) -> tuple[str, ...]:
    path = tmp_path / "ecs-token"
    path.write_text(token)
    path.chmod(0o644)  # the container's user (65532) reads it, as the agent's file is readable
    return (f"{path}:{TOKEN_IN_CONTAINER}:ro",)


def test_the_sidecar_takes_the_task_role_from_the_container_credentials_endpoint(
    sidecar_image, task_role_ca, credentials_endpoint, task_role_mtls_server, task_run, tmp_path
):
    ca = task_role_ca
    task = task_for(ONE_SHOT, sidecar_image, task_role_mtls_server)
    env = endpoint_env(ca, credentials_endpoint)
    mounts = {"cert-sidecar": token_mount(tmp_path, credentials_endpoint.token)}
    issued_before = ca.stats()["issued"]  # the server's own certificate is one
    task_run.run(task, env, mounts)
    task_run.wait_for("app", "COMPLETE")

    assert "mutual TLS handshake" in task_run.logs("app")
    assert task_run.state("app")["ExitCode"] == 0, task_run.logs("app")
    assert ca.stats()["issued"] == issued_before + 1
    # The credentials came from the endpoint, for the task role, and signed the invoke.
    assert credentials_endpoint.served and credentials_endpoint.refused == 0
    config = task_run.docker.run(
        "inspect", "--format", "{{json .Config.Env}}", task_run.name("cert-sidecar")
    )
    names = {pair.split("=", 1)[0] for pair in json.loads(config.stdout)}
    assert not names & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
    accepted = [
        json.loads(line)
        for line in ca.log_path.read_text().splitlines()
        if '"sts_credentials"' in line
    ]
    assert {(a["access_key_id"], a["role_arn"]) for a in accepted} <= {
        (key, task["taskRoleArn"]) for key in credentials_endpoint.served
    }
    assert accepted


def test_a_wrong_authorization_token_gets_no_credentials_and_no_certificate(
    sidecar_image, task_role_ca, credentials_endpoint, task_role_mtls_server, task_run, tmp_path
):
    ca = task_role_ca
    task = task_for(ONE_SHOT, sidecar_image, task_role_mtls_server)
    env = endpoint_env(ca, credentials_endpoint)
    # A short retry window: the one-shot sidecar gives up instead of retrying for minutes.
    task["containerDefinitions"][0]["environment"].append(
        {"name": "CERT_SIDECAR_ONCE_TIMEOUT", "value": "5s"}
    )
    mounts = {"cert-sidecar": token_mount(tmp_path, "not-the-task-token")}
    issued_before = ca.stats()["issued"]
    with pytest.raises(AssertionError, match="would never start its dependants"):
        task_run.run(task, env, mounts)

    assert task_run.started == ["cert-sidecar"]
    assert credentials_endpoint.refused >= 1 and not credentials_endpoint.served
    assert ca.stats()["issued"] == issued_before
