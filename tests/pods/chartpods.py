"""Helpers of the Pod tests: chart values for local images and the local CA (or the operator's
CSR signer), helm install and render, the example app's and the operator's Pods, namespaces
enforcing PodSecurity `restricted`, JSON log lines, moto's STS records."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from support import pods
from support.kube_fixtures import NodeCluster
from support.localca_fixtures import ROOT, LocalCA

CHARTS = ROOT / "charts"
AWS_SECRET = "ca-credentials"
OPERATOR_RELEASE = "clientcert-operator"
OPERATOR_SELECTOR = "app.kubernetes.io/component=operator"
SIDECAR = "cert-sidecar"
BOTH = ("client_auth", "server_auth")
# Renew as soon as the sidecar's minimum interval allows: the CA backdates notBefore by 5 minutes,
# so a point this close to the 1-day lifetime is always due (docs/sidecar.md).
FAST_RENEWAL = {"point": "86690s", "jitter": 0, "minRenewalInterval": "5s"}

# Namespaces with this label are where the chart's policy lets the example app's ServiceAccount
# (release `example-app`) get certificates from the CSR signer, and nobody else.
SIGNER_NAMESPACE_LABEL = "clientcerts.dev/pod-tests"
ALLOWED_RELEASE = "example-app"
SIGNER_POLICY = {
    "name": "pod-tests-example-app",
    "spec": {
        "signerNames": ["clientcerts.dev/default"],
        "requesters": {
            "namespaceSelector": {"matchLabels": {SIGNER_NAMESPACE_LABEL: "signer"}},
            "serviceAccountSelector": {
                "matchLabels": {"app.kubernetes.io/instance": ALLOWED_RELEASE}
            },
            "requirePod": True,
        },
        "subject": {"commonName": "{serviceAccount}.{namespace}.svc"},
        "sans": ["{serviceAccount}.{namespace}.svc"],
        "usages": ["digital signature", "key encipherment", "client auth", "server auth"],
        "keyAlgorithms": ["ecdsa-p256"],
        "maxLifetimeDays": 1,
    },
}

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


def issued_lines(text: str) -> list[dict[str, Any]]:
    return [r for r in json_lines(text) if r.get("message") == "certificate issued"]


def fullname(release: str) -> str:
    return release if "example-app" in release else f"{release}-example-app"


def app_values(
    namespace: str,
    release: str,
    ca: LocalCA | None,
    image: str,
    form: str = "native",
    purposes: tuple[str, ...] = BOTH,
    renewal: dict[str, Any] | None = None,
    app_command: list[str] | None = None,
) -> dict[str, Any]:
    """charts/example-app values; its certificate is named after the release's Service. With a
    CA, the sidecar invokes it with the Secret's keys; with none, it uses the kubernetes issuer
    (the operator's CSR signer) and has no AWS settings at all."""
    name = f"{fullname(release)}.{namespace}.svc"
    sidecar: dict[str, Any] = {
        "form": form,
        "image": image_values(image),
        "certificate": {
            "commonName": name, "sans": [name], "purposes": list(purposes), "lifetimeDays": 1,
        },
    }  # fmt: skip
    if ca is None:
        sidecar["issuer"] = "kubernetes"
    else:
        sidecar["ca"] = {"function": ca.function_name, "region": ca.region,
                         "endpointUrl": ca.endpoint_url}  # fmt: skip
        sidecar["extraEnv"] = credentials_env(ca)
    if renewal:
        sidecar["renewal"] = renewal
    values: dict[str, Any] = {"image": image_values(image), "cert-sidecar": sidecar}
    if app_command:
        values["app"] = {"command": app_command}
    return values


def install_app(
    node: NodeCluster, charts: Path, namespace: str, release: str, values: dict[str, Any],
    directory: Path,
) -> tuple[subprocess.CompletedProcess[str], str]:  # fmt: skip
    """helm install of charts/example-app; returns helm's result and the rendered manifests."""
    path = values_file(directory, release, values)
    done = install(node, release, charts / "example-app", namespace, path)
    return done, render(node, release, charts / "example-app", namespace, path)


def app_pod(node: NodeCluster, namespace: str, release: str, timeout: float = 120) -> dict:
    """The release's Pod once Ready."""
    selector = f"app.kubernetes.io/instance={release}"
    node.kube.wait_for(lambda: pods.pods(node.kube, namespace, selector), timeout=60)
    name = pods.pods(node.kube, namespace, selector)[0]["metadata"]["name"]
    return pods.wait_ready(node.kube, namespace, name, timeout)


def operator_pod(
    node: NodeCluster, namespace: str, not_named: str | None = None, timeout: float = 180
) -> dict:
    """The operator's running Pod (a new one when `not_named` is given), once Ready."""

    def current() -> dict | None:
        items = [
            p for p in pods.pods(node.kube, namespace, OPERATOR_SELECTOR)
            if p["metadata"]["name"] != not_named and not p["metadata"].get("deletionTimestamp")
        ]  # fmt: skip
        return items[0] if items else None

    found = node.kube.wait_for(current, timeout=60, message="the operator Pod")
    return pods.wait_ready(node.kube, namespace, found["metadata"]["name"], timeout)
