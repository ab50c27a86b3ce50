"""scripts/docker/*.sh are idempotent: once their work is done they only report it."""

from __future__ import annotations

import subprocess

import pytest
from support.docker_fixtures import SCRIPTS

pytestmark = pytest.mark.docker


def run_script(name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPTS / name)], capture_output=True, text=True, timeout=120
    )


def test_engine_script_is_silent_when_the_engine_answers(docker_engine):
    done = run_script("engine.sh")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_base_image_script_only_prints_the_existing_tag(docker_engine, base_image):
    done = run_script("base-image.sh")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{base_image}\n", "")
    config = docker_engine.run("image", "inspect", "--format", "{{.Config.Env}}", base_image)
    assert "LANG=C.UTF-8" in config.stdout
