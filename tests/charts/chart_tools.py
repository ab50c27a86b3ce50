"""Helm for the chart tests: the pinned helm from scripts/kube/tools.sh, the charts copied to a
scratch folder (the example app's file:// dependency is built there, never in the checkout), and
rendering into Python objects."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubelocal.binaries import ensure_tools

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "charts"
OPERATOR, SIDECAR, EXAMPLE_APP = "clientcert-operator", "cert-sidecar", "example-app"


@dataclass(frozen=True)
class Helm:
    binary: Path
    charts: Path  # scratch copy of charts/
    env: dict[str, str]

    @classmethod
    def prepare(cls, scratch: Path) -> Helm:
        env = dict(os.environ)
        for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
            env[var] = str(scratch / "helm-home" / var.split("_")[1].lower())
        charts = scratch / "charts"
        for name in (OPERATOR, SIDECAR, EXAMPLE_APP):
            shutil.copytree(CHARTS / name, charts / name, ignore=shutil.ignore_patterns("charts"))
        helm = cls(ensure_tools() / "helm", charts, env)
        helm.run("dependency", "build", str(charts / EXAMPLE_APP))
        return helm

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.binary), *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        if check and done.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
        return done

    def chart(self, name: str) -> str:
        return str(self.charts / name)

    def values_args(self, values: dict[str, Any]) -> list[str]:
        """Values go in a file (not --set), so "0600" stays a string and lists stay lists."""
        if not values:
            return []
        handle, path = tempfile.mkstemp(suffix=".yaml", dir=self.charts.parent)
        with os.fdopen(handle, "w") as file:
            yaml.safe_dump(values, file)
        return ["--values", path]

    def lint(self, name: str, values: dict[str, Any], check: bool = True):
        return self.run(
            "lint", "--strict", self.chart(name), *self.values_args(values), check=check
        )

    def template(
        self,
        name: str,
        values: dict[str, Any],
        release: str = "rel",
        namespace: str = "apps",
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            "template", release, self.chart(name), "--namespace", namespace,
            *self.values_args(values), check=check,
        )  # fmt: skip

    def render(self, name: str, values: dict[str, Any], **kwargs: Any) -> list[dict[str, Any]]:
        text = self.template(name, values, **kwargs).stdout
        return [doc for doc in yaml.safe_load_all(text) if doc]


def default_ca_values(name: str, local_ca: Any) -> dict:
    """The operator chart's `defaultCA` values pointing at a local CA."""
    return {
        "name": name,
        "functionName": local_ca.function_name,
        "region": local_ca.region,
        "endpointUrl": local_ca.endpoint_url,
    }


def find(docs: list[dict], kind: str, name: str | None = None) -> dict:
    for doc in docs:
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name):
            return doc
    raise AssertionError(
        f"no {kind} {name or ''} in {[(d['kind'], d['metadata']['name']) for d in docs]}"
    )


def kinds(docs: list[dict]) -> list[str]:
    return sorted(doc["kind"] for doc in docs)


def env_of(container: dict) -> dict[str, str]:
    return {pair["name"]: pair["value"] for pair in container.get("env", [])}


def pod_spec(docs: list[dict], name: str | None = None) -> dict:
    return find(docs, "Deployment", name)["spec"]["template"]["spec"]


# The per-rule runs of the RBAC tests, whose scenario must break, wait out one step: there a
# step gets three times the slowest step of the full-role run (the same machine, moments
# before), at least 4 s.
BROKEN_STEP_FACTOR, BROKEN_STEP_MIN_SECONDS = 3.0, 4.0
STARTUP_SECONDS = 60.0


def broken_step_seconds(slowest_full_role_step: float, ceiling: float) -> float:
    return min(ceiling, max(BROKEN_STEP_MIN_SECONDS, BROKEN_STEP_FACTOR * slowest_full_role_step))


class ScenarioBroke(AssertionError):
    """A step of an RBAC scenario did not happen in time, or the operator exited."""


@dataclass
class Steps:
    """The steps of one RBAC scenario run against one operator process, each given ``seconds``;
    the slowest is kept, to time the runs that must break."""

    proc: subprocess.Popen
    seconds: float
    slowest: float = 0.0

    def wait(self, what: str, predicate: Callable[[], Any]) -> Any:
        """predicate()'s first truthy value; ScenarioBroke naming ``what`` otherwise."""
        started = time.monotonic()
        while time.monotonic() < started + self.seconds:
            value = predicate()
            if value:
                self.slowest = max(self.slowest, time.monotonic() - started)
                return value
            if self.proc.poll() is not None:
                raise ScenarioBroke(f"{what}: the operator exited {self.proc.returncode}")
            time.sleep(0.2)
        raise ScenarioBroke(f"{what}: not within {self.seconds:.3g} s")


def wait_until_started(proc: subprocess.Popen, liveness_arg: str) -> None:
    """Starting Python and kopf is the slow part on a loaded machine: an RBAC scenario's steps
    are timed from a started operator. Without some rules it never reports healthy; then the
    scenario finds out which step breaks."""
    url = liveness_arg.split("=", 1)[1]
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
