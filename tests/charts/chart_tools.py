"""Helm for the chart tests: the pinned helm from scripts/kube/tools.sh, the charts copied to a
scratch folder (the example app's file:// dependency is built there, never in the checkout), and
rendering into Python objects."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
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
