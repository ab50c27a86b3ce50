"""The sidecar image, built from the local base in a real Docker engine and run hardened."""

from __future__ import annotations

import json
import os
import re
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support.docker_fixtures import (
    HARDENED,
    IMAGE_GID,
    IMAGE_UID,
    REPO,
    DockerEngine,
    proxy_ca_pem,
)

pytestmark = pytest.mark.docker

MAX_IMAGE_BYTES = 200 * 1000 * 1000  # docker reports decimal megabytes


def run_in(docker: DockerEngine, image: str, *args: str, flags: tuple[str, ...] = HARDENED):
    """Run a one-shot command in a hardened, auto-removed container of ``image``."""
    return docker.run("run", "--rm", *flags, image, *args, check=False)


def test_image_is_built_on_the_given_base(docker_engine, base_image, sidecar_image):
    def layers(tag: str) -> list[str]:
        out = docker_engine.run("image", "inspect", "--format", "{{json .RootFS.Layers}}", tag)
        return json.loads(out.stdout)

    base, sidecar = layers(base_image), layers(sidecar_image)
    assert sidecar[: len(base)] == base
    assert len(sidecar) > len(base)


def test_rebuild_with_unchanged_sources_is_fully_cached(docker_engine, base_image, sidecar_image):
    # Two builds back to back rather than against the fixture's image: in a shared work tree
    # the sources may have changed since the session started.
    def build() -> str:
        return docker_engine.run(
            "build",
            "--quiet",
            "--build-arg",
            f"BASE_IMAGE={base_image}",
            "--build-arg",
            f"PIP_CA_PEM={proxy_ca_pem()}",
            str(REPO),
        ).stdout.strip()

    first = build()
    assert first.startswith("sha256:")
    assert build() == first


def test_image_runs_as_unprivileged_user_by_default(docker_engine, sidecar_image):
    config = docker_engine.run("image", "inspect", "--format", "{{json .Config}}", sidecar_image)
    assert json.loads(config.stdout)["User"] == f"{IMAGE_UID}:{IMAGE_GID}"

    # No --user here: what the image itself says must already be non-root.
    no_user = HARDENED[: HARDENED.index("--user")]
    done = run_in(docker_engine, sidecar_image, "-u", flags=(*no_user, "--entrypoint", "id"))
    assert (done.returncode, done.stdout.strip()) == (0, str(IMAGE_UID))


def test_entrypoint_is_the_sidecar(docker_engine, sidecar_image):
    config = docker_engine.run("image", "inspect", "--format", "{{json .Config}}", sidecar_image)
    assert json.loads(config.stdout)["Entrypoint"] == ["/opt/venv/bin/cert-sidecar"]


@pytest.mark.parametrize("tool", ["ca-cert", "local-ca", "cert-sidecar"])
def test_console_script_runs_on_read_only_root_without_capabilities(
    docker_engine, sidecar_image, tool
):
    done = run_in(docker_engine, sidecar_image, "--help", flags=(*HARDENED, "--entrypoint", tool))
    assert done.returncode == 0, done.stderr
    assert "usage" in done.stdout.lower()


def test_project_packages_import_on_read_only_root(docker_engine, sidecar_image):
    code = "import cacore, cacli, localca, sidecar, boto3, cryptography, prometheus_client"
    done = run_in(
        docker_engine, sidecar_image, "-c", code, flags=(*HARDENED, "--entrypoint", "python")
    )
    assert done.returncode == 0, done.stderr


def test_image_is_under_200_mb(docker_engine, sidecar_image):
    assert docker_engine.image_size(sidecar_image) <= MAX_IMAGE_BYTES


def test_image_carries_no_proxy_ca_no_pip_and_no_compiler(docker_engine, sidecar_image):
    # One base64 line from the middle of each host CA: it would appear in any file or bundle
    # that the builder stage's trust file leaked into.
    probes = [
        lines[len(lines) // 2]
        for pem in re.findall(r"-----BEGIN CERTIFICATE-----\n(.*?)-----END", proxy_ca_pem(), re.S)
        if (lines := pem.split())
    ]
    script = (
        'for p in "$@"; do grep -rlF --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev'
        ' -e "$p" / ; done;'
        " find / -xdev \\( -name 'pip-ca*' -o -path '*/.cache/pip' -o -name 'pip' \\) -print;"
        " for c in gcc cc c++ pip pip3; do command -v $c; done;"
        " python -c 'import pip' 2>/dev/null && echo 'pip importable'; true"
    )
    done = run_in(
        docker_engine,
        sidecar_image,
        "-c",
        script,
        "sh",
        *probes,
        flags=(*HARDENED, "--entrypoint", "sh"),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    history = docker_engine.run(
        "history", "--no-trunc", "--format", "{{.CreatedBy}}", sidecar_image
    )
    assert "PIP_CA_PEM" not in history.stdout
    assert not any(p in history.stdout for p in probes)


@pytest.fixture
def host_loopback_server() -> Iterator[tuple[int, str]]:
    """An HTTP server on the host's 127.0.0.1 answering one fixed token."""
    token = os.urandom(8).hex()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = token.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], token
    server.shutdown()
    server.server_close()


def test_container_on_host_network_reaches_host_loopback(
    docker_engine, sidecar_image, host_loopback_server
):
    port, token = host_loopback_server
    url = f"http://127.0.0.1:{port}/"
    code = f"import urllib.request as u; print(u.urlopen({url!r}, timeout=10).read().decode())"
    done = run_in(
        docker_engine,
        sidecar_image,
        "-c",
        code,
        flags=(*HARDENED, "--network", "host", "--entrypoint", "python"),
    )
    assert (done.returncode, done.stdout.strip()) == (0, token), done.stderr


WRITE_PROBE = (
    "import os; fd = os.open('/certs/probe', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600);"
    " os.write(fd, b'written in the container'); os.close(fd)"
)


def test_bind_mounted_certs_dir_is_written_by_image_user_and_read_from_host(
    docker_engine, sidecar_image, certs_host_dir
):
    done = run_in(
        docker_engine,
        sidecar_image,
        "-c",
        WRITE_PROBE,
        flags=(*HARDENED, "-v", f"{certs_host_dir}:/certs", "--entrypoint", "python"),
    )
    assert done.returncode == 0, done.stderr
    probe = certs_host_dir / "probe"
    assert probe.read_bytes() == b"written in the container"
    info = probe.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (IMAGE_UID, IMAGE_GID, 0o600)


def test_fresh_named_volume_takes_certs_owner_from_image(
    docker_engine, sidecar_image, certs_volume
):
    no_user = HARDENED[: HARDENED.index("--user")]
    done = run_in(
        docker_engine,
        sidecar_image,
        "-c",
        WRITE_PROBE,
        flags=(*no_user, "-v", f"{certs_volume}:/certs", "--entrypoint", "python"),
    )
    assert done.returncode == 0, done.stderr
    mountpoint = Path(
        docker_engine.run(
            "volume", "inspect", "--format", "{{.Mountpoint}}", certs_volume
        ).stdout.strip()
    )
    info = mountpoint.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (IMAGE_UID, 0o700)
    assert (mountpoint / "probe").read_bytes() == b"written in the container"


def test_root_filesystem_is_read_only_when_asked(docker_engine, sidecar_image):
    done = run_in(
        docker_engine,
        sidecar_image,
        "-c",
        "open('/tmp/x', 'w')",
        flags=(*HARDENED, "--entrypoint", "python"),
    )
    assert done.returncode != 0
    assert "Read-only file system" in done.stderr


def test_operator_image_runs_the_operator_on_read_only_root(docker_engine, operator_image):
    done = run_in(
        docker_engine,
        operator_image,
        "-c",
        "import kopf, certoperator.handlers; print('operator ok')",
        flags=(*HARDENED, "--entrypoint", "python"),
    )
    assert "operator ok" in done.stdout
    helped = run_in(
        docker_engine,
        operator_image,
        "--help",
        flags=(*HARDENED, "--entrypoint", "clientcert-operator"),
    )
    assert helped.returncode == 0, helped.stderr


def test_sidecar_image_has_no_operator_dependencies(docker_engine, sidecar_image):
    done = run_in(
        docker_engine,
        sidecar_image,
        "-c",
        "import importlib.util as u; print(u.find_spec('kopf'), u.find_spec('kubernetes'))",
        flags=(*HARDENED, "--entrypoint", "python"),
    )
    assert done.stdout.strip() == "None None"
