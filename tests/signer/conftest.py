"""The signer's modules on the control plane: the CRDs, an opted-in LambdaCA, a policy per test,
and ServiceAccounts that make CSRs with their own tokens."""

from __future__ import annotations

import secrets

import pytest
from support.csr_requests import (
    Requester,
    policy_manifest,
    signer_lambdaca,
    start_signer_operator,
)
from support.operator_process import apply, install_crds


@pytest.fixture(scope="module")
def cluster(kube, local_ca):
    install_crds(kube)
    return kube


@pytest.fixture(scope="module")
def lambdaca(cluster, local_ca):
    """A LambdaCA of this module that serves clientcerts.dev/<name>."""
    name = f"signer-{secrets.token_hex(3)}"
    apply(cluster, signer_lambdaca(name, local_ca, defaultLifetimeDays=2))
    yield name
    cluster.kubectl("delete", "lambdaca", name, "--ignore-not-found", "--wait=false")


@pytest.fixture(scope="module")
def signer(lambdaca):
    return f"clientcerts.dev/{lambdaca}"


@pytest.fixture(scope="module")
def operator(cluster, local_ca, lambdaca, tmp_path_factory):
    log = tmp_path_factory.mktemp("op") / "operator.log"
    op = start_signer_operator(cluster, local_ca, log).start()
    yield op
    op.stop()


@pytest.fixture
def policy(cluster, signer, kube_namespace):
    """policy(**spec): every ServiceAccount of the test's namespace may have <sa>.<ns>.svc and its
    cluster.local form (spec overrides); deleted after the test."""
    name = f"p-{kube_namespace}"

    def make(**spec):
        body = {
            "requesters": {"serviceAccounts": [{"namespace": kube_namespace}]},
            "subject": {"commonName": "{serviceAccount}.{namespace}.svc"},
            "sans": [
                "{serviceAccount}.{namespace}.svc",
                "{serviceAccount}.{namespace}.svc.cluster.local",
            ],
            **spec,
        }
        apply(cluster, policy_manifest(name, signer, **body))
        return name

    yield make
    cluster.kubectl("delete", "clientcertificatepolicy", name, "--ignore-not-found")


@pytest.fixture
def requester(cluster, kube_namespace, tmp_path):
    """requester("api") -> a ServiceAccount of the test's namespace with its own token."""

    def make(name: str, pod: dict | None = None) -> Requester:
        return Requester(cluster, kube_namespace, name, tmp_path, pod=pod)

    return make


@pytest.fixture
def kube_namespace(kube):
    """A short namespace: templated names like <sa>.<namespace>.svc must fit a 64-character CN."""
    name = f"sg-{secrets.token_hex(4)}"
    kube.kubectl("create", "namespace", name)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")
