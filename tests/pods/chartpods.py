"""Helpers of the Pod tests: chart values for local images and the local CA, helm install and
render, namespaces enforcing PodSecurity `restricted`, JSON log lines, moto's STS records."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from support.kube_fixtures import NodeCluster
from support.localca_fixtures import ROOT, LocalCA

CHARTS = ROOT / "charts"
AWS_SECRET = "ca-credentials"

# Servers on the node's own address must never be reached through a proxy from the environment.
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def image_values(tag: str) -> dict[str, str]:
    """A chart's `image:` values for a local image: never pulled (nothing can be, here)."""
    repository, _, version = tag.rpartition(":")
    return {"repository": repository, "tag": version, "pullPolicy": "Never"}


def moto_assumed_roles(sts_url: str) -> list[dict[str, Any]]:
    with opener.open(f"{sts_url}/moto-api/data.json", timeout=10) as response:
        roles: list[dict[str, Any]] = json.load(response).get("sts", {}).get("AssumedRole", [])
    return roles


def values_file(directory: Path, name: str, values: dict[str, Any]) -> Path:
    path = directory / f"{name}.values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def ca_credentials_secret(namespace: str, ca: LocalCA) -> dict[str, Any]:
    """The CA's static keys as a Secret, the development path (extraEnv) the charts document."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": AWS_SECRET, "namespace": namespace},
        "type": "Opaque",
        "stringData": {
            "AWS_ACCESS_KEY_ID": ca.access_key_id,
            "AWS_SECRET_ACCESS_KEY": ca.secret_access_key,
        },
    }


def credentials_env(ca: LocalCA) -> list[dict[str, Any]]:
    ref = [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": AWS_SECRET, "key": key}}}
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    ]
    return [*ref, {"name": "AWS_REGION", "value": ca.region}]


def render(node: NodeCluster, release: str, chart: Path, namespace: str, values: Path) -> str:
    return node.kube.helm(
        "template", release, str(chart), "--namespace", namespace, "--values", str(values)
    ).stdout


def install(
    node: NodeCluster, release: str, chart: Path, namespace: str, values: Path
) -> subprocess.CompletedProcess[str]:
    """helm install (no --wait: the tests wait for what they check)."""
    return node.kube.helm(
        "install", release, str(chart), "--namespace", namespace, "--values", str(values)
    )


def restricted_namespace(node: NodeCluster, hint: str) -> str:
    """A namespace enforcing PodSecurity `restricted` (for fixtures wider than one test)."""
    kube = node.kube
    name = kube.new_namespace_name(hint)
    kube.kubectl("create", "namespace", name)
    kube.kubectl(
        "label", "namespace", name,
        *(f"pod-security.kubernetes.io/{m}=restricted" for m in ("enforce", "warn", "audit")),
    )  # fmt: skip
    kube.wait_for(
        lambda: kube.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
        timeout=30,
        message=f"the default ServiceAccount of {name}",
    )
    return name


def json_lines(text: str) -> list[dict[str, Any]]:
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found
