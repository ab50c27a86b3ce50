"""Fixtures for a real Docker engine: the engine, the local base image and the sidecar image.

Nothing here is mocked. ``docker_engine`` installs and starts Debian's dockerd when it is
missing (scripts/docker/engine.sh), ``base_image`` debootstraps and imports the local base once
(scripts/docker/base-image.sh, cached under ~/.cache/lambda-client-certs/), and
``sidecar_image`` builds the project's Dockerfile on that base with the host's proxy CAs as a
build argument. Layer caching keeps a rebuild with unchanged sources to a few seconds.

Containers reach services on the host's loopback with ``--network host`` (see docs/image.md);
``HARDENED`` holds the flags every production-like run should use.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts" / "docker"
PROXY_CA_DIR = Path("/usr/local/share/ca-certificates")

OPERATOR_TAG = "lcc-operator:test"
SIDECAR_TAG = "lcc-sidecar:test"
IMAGE_UID = 65532
IMAGE_GID = 65532

# How the product's containers are meant to run: non-root, nothing writable but volumes,
# no capabilities, no privilege escalation through setuid binaries.
HARDENED: tuple[str, ...] = (
    "--read-only",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--user",
    f"{IMAGE_UID}:{IMAGE_GID}",
)


@dataclass(frozen=True)
class DockerEngine:
    """The docker CLI bound to the engine that engine.sh started."""

    binary: str = "docker"

    def run(
        self, *args: str, check: bool = True, timeout: float = 900, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``docker *args``; with ``check`` a failure raises with docker's own output."""
        done = subprocess.run(
            [self.binary, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args[:3])}... exited {done.returncode}\n"
                f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
            )
        return done

    def image_size(self, tag: str) -> int:
        """Uncompressed size in bytes, as `docker images` reports it."""
        return int(self.run("image", "inspect", "--format", "{{.Size}}", tag).stdout)


def _script(name: str) -> str:
    """Run one of scripts/docker/*.sh and return its stdout; fail with its stderr."""
    done = subprocess.run(
        ["bash", str(SCRIPTS / name)], capture_output=True, text=True, timeout=1200
    )
    if done.returncode != 0:
        pytest.fail(f"scripts/docker/{name} failed:\n{done.stderr[-4000:]}", pytrace=False)
    return done.stdout


def proxy_ca_pem(ca_dir: Path = PROXY_CA_DIR) -> str:
    """The host's extra CAs (a TLS-intercepting proxy's), concatenated PEM; empty if none."""
    return "".join(p.read_text() for p in sorted(ca_dir.glob("*.crt")))


@pytest.fixture(scope="session")
def docker_engine() -> DockerEngine:
    _script("engine.sh")
    return DockerEngine()


@pytest.fixture(scope="session")
def base_image(docker_engine: DockerEngine) -> str:
    return _script("base-image.sh").strip().splitlines()[-1]


@pytest.fixture(scope="session")
def sidecar_image(docker_engine: DockerEngine, base_image: str) -> str:
    docker_engine.run(
        "build",
        "--build-arg",
        f"BASE_IMAGE={base_image}",
        "--build-arg",
        f"PIP_CA_PEM={proxy_ca_pem()}",
        "--tag",
        SIDECAR_TAG,
        str(REPO),
    )
    # No `docker image prune` here: the builder stage's last image is untagged ("dangling"),
    # and pruning it would throw away the layer cache that keeps rebuilds fast.
    return SIDECAR_TAG


@pytest.fixture(scope="session")
def operator_image(docker_engine: DockerEngine, base_image: str) -> str:
    """The same Dockerfile with the operator extra: kopf and the kubernetes client added."""
    docker_engine.run(
        "build",
        "--build-arg",
        f"BASE_IMAGE={base_image}",
        "--build-arg",
        f"PIP_CA_PEM={proxy_ca_pem()}",
        "--build-arg",
        "EXTRAS=operator",
        "--tag",
        OPERATOR_TAG,
        str(REPO),
    )
    return OPERATOR_TAG


@pytest.fixture
def container_name(docker_engine: DockerEngine) -> Iterator[str]:
    """A unique container name; whatever runs under it is removed after the test."""
    name = f"lcc-test-{uuid.uuid4().hex[:12]}"
    yield name
    docker_engine.run("rm", "--force", "--volumes", name, check=False)


@pytest.fixture
def certs_host_dir(tmp_path: Path) -> Path:
    """An empty host directory the image's user owns, for ``-v DIR:/certs``.

    Mode 0700 like /certs in the image: the credentials inside are for that user alone.
    """
    path = tmp_path / "certs"
    path.mkdir(mode=0o700)
    os.chown(path, IMAGE_UID, IMAGE_GID)
    return path


@pytest.fixture
def certs_volume(docker_engine: DockerEngine) -> Iterator[str]:
    """A fresh named Docker volume, removed after the test."""
    name = f"lcc-test-certs-{uuid.uuid4().hex[:12]}"
    docker_engine.run("volume", "create", name)
    yield name
    docker_engine.run("volume", "rm", "--force", name, check=False)
