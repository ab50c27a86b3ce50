"""Fixtures of the Pod tests: the product's images on the node, a local CA and an STS (moto's
server) that Pods reach on the node's bridge address, the charts ready for helm, and the
operator chart installed once (its CSR signer on). Helpers are in chartpods.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chartpods import (
    CHARTS,
    OPERATOR_RELEASE,
    SIGNER_POLICY,
    ca_credentials_secret,
    credentials_env,
    image_values,
    install,
    opener,
    operator_pod,
    restricted_namespace,
    values_file,
)
from support import pods
from support.kube_fixtures import NodeCluster, delete_namespace_and_its_pods
from support.localca_fixtures import LocalCA, free_port


@pytest.fixture(scope="session")
def sidecar_on_node(node: NodeCluster, sidecar_image: str) -> str:
    """The sidecar image (built from this checkout) in the node's image store."""
    return node.load_image(sidecar_image)


@pytest.fixture(scope="session")
def operator_on_node(node: NodeCluster, operator_image: str) -> str:
    """The operator image (built from this checkout) in the node's image store."""
    return node.load_image(operator_image)


@pytest.fixture(scope="session")
def pod_sts(node: NodeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's server as STS, on the node's bridge address so that Pods reach it."""
    log = tmp_path_factory.mktemp("pod-sts") / "moto.log"
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", node.address, "-p", str(port)],
            stdout=out,
            stderr=out,
        )
    url = f"http://{node.address}:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with opener.open(f"{url}/moto-api/", timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto did not start:\n" + log.read_text()[-2000:]) from None
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def pod_ca(node: NodeCluster, pod_sts: str, tmp_path_factory: pytest.TempPathFactory):
    """The local CA on the node's bridge address: Pods reach it there, and it accepts the
    temporary credentials that `pod_sts` issues (IRSA)."""
    args = ["--host", node.address, "--allow-remote", "--sts-endpoint", pod_sts]
    handle = LocalCA(tmp_path_factory.mktemp("pod-ca") / "state", extra_args=args).start()
    yield handle
    handle.stop()


@pytest.fixture
def ca_in_pods(pod_ca: LocalCA) -> Iterator[LocalCA]:
    """The Pods' CA with faults cleared after the test."""
    yield pod_ca
    pod_ca.clear_faults()


@pytest.fixture(scope="session")
def charts(node: NodeCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch copy of charts/ with the example app's library dependency built."""
    scratch = tmp_path_factory.mktemp("charts")
    for name in ("clientcert-operator", "cert-sidecar", "example-app"):
        shutil.copytree(CHARTS / name, scratch / name, ignore=shutil.ignore_patterns("charts"))
    node.kube.helm("dependency", "build", str(scratch / "example-app"))
    return scratch


@pytest.fixture(scope="session")
def operator(node, charts, operator_on_node, pod_ca, tmp_path_factory):
    """The operator chart installed once for the session, with its CSR signer and the policy
    above; yields its namespace."""
    kube = node.kube
    namespace = restricted_namespace(node, "clientcert-system")
    pods.apply(kube, ca_credentials_secret(namespace, pod_ca))
    values = {
        "image": image_values(operator_on_node),
        "defaultCA": {"endpointUrl": pod_ca.endpoint_url, "region": pod_ca.region,
                      "functionName": pod_ca.function_name},
        "extraEnv": credentials_env(pod_ca),
        "signer": {"enabled": True, "lambdaCAs": ["default"], "policies": [SIGNER_POLICY]},
    }  # fmt: skip
    path = values_file(tmp_path_factory.mktemp("operator"), OPERATOR_RELEASE, values)
    done = install(node, OPERATOR_RELEASE, charts / "clientcert-operator", namespace, path)
    assert "PodSecurity" not in done.stderr, done.stderr
    operator_pod(node, namespace)
    yield namespace
    kube.helm("uninstall", OPERATOR_RELEASE, "--namespace", namespace, check=False)
    delete_namespace_and_its_pods(kube, namespace)
