"""The sidecar image end to end: run as non-root with a read-only root filesystem and no
capabilities, against the local CA on the host's loopback; the volume is checked from the host."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest
from cryptography import x509
from support.docker_fixtures import HARDENED, IMAGE_GID, IMAGE_UID

from cacore.certinfo import chain_problem, key_matches, split_pem_certificates
from cacore.edge.files import read_credential_set
from cacore.keys import load_private_key

pytestmark = pytest.mark.docker

AWS_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "AWS_ENDPOINT_URL_LAMBDA",
    "AWS_EC2_METADATA_DISABLED",
)


def env_args(ca, **settings) -> list[str]:
    args = []
    for name in AWS_VARS:
        args += ["-e", f"{name}={ca.env[name]}"]
    for name, value in settings.items():
        args += ["-e", f"CERT_SIDECAR_{name.upper()}={value}"]
    return args


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_image_issues_into_a_host_volume_as_non_root(
    docker_engine, sidecar_image, ca, certs_host_dir, container_name
):
    common = [*HARDENED, "--network", "host", "-v", f"{certs_host_dir}:/certs"]
    done = docker_engine.run(
        "run",
        "--rm",
        "--name",
        container_name,
        *common,
        *env_args(ca, common_name="image.example.com", serverless_ca_names="true"),
        sidecar_image,
        "once",
        check=False,
    )
    assert done.returncode == 0, done.stderr
    files = read_credential_set(certs_host_dir)
    leaf_pem, _issuing = split_pem_certificates(files["tls.crt"])
    leaf = x509.load_pem_x509_certificate(leaf_pem)
    assert key_matches(leaf, load_private_key(files["tls.key"]))
    issuers = [x509.load_pem_x509_certificate(p) for p in split_pem_certificates(files["ca.crt"])]
    assert chain_problem(leaf, issuers) is None
    assert files["client-key.pem"] == files["tls.key"]
    key_stat = os.stat(certs_host_dir / "tls.key")
    assert (key_stat.st_uid, key_stat.st_gid) == (IMAGE_UID, IMAGE_GID)
    assert key_stat.st_mode & 0o777 == 0o600
    assert "PRIVATE KEY" not in done.stderr

    check = docker_engine.run("run", "--rm", *common, sidecar_image, "check", check=False)
    assert check.returncode == 0, check.stderr
    assert "CN=image.example.com" in check.stdout


def test_the_image_renews_serves_health_and_stops_on_sigterm(
    docker_engine, sidecar_image, ca, certs_host_dir, container_name
):
    port = free_port()
    docker_engine.run(
        "run",
        "-d",
        "--name",
        container_name,
        *HARDENED,
        "--network",
        "host",
        "-v",
        f"{certs_host_dir}:/certs",
        *env_args(
            ca,
            common_name="renew-image.example.com",
            lifetime_days=1,
            renewal_point="86697s",
            jitter=0,
            min_renewal_interval="1s",
            listen=f"127.0.0.1:{port}",
        ),
        sidecar_image,
        "run",
    )
    deadline = time.monotonic() + 60
    issued: list[dict] = []
    while len(issued) < 2:
        logs = docker_engine.run("logs", container_name).stderr
        entries = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
        issued = [e for e in entries if e["message"] == "certificate issued"]
        assert time.monotonic() < deadline, logs[-3000:]
        time.sleep(0.2)
    assert issued[0]["serial"] != issued[1]["serial"]
    files = read_credential_set(certs_host_dir)
    assert x509.load_pem_x509_certificate(files["tls.crt"]).serial_number in {
        int(e["serial"]) for e in issued
    }
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
        assert response.status == 200
    docker_engine.run("stop", "--time", "10", container_name)
    state = json.loads(docker_engine.run("inspect", container_name).stdout)[0]["State"]
    assert state["ExitCode"] == 0
