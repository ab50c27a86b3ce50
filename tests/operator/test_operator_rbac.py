"""The RBAC rules of docs/operator.md are enough: the operator runs as a ServiceAccount bound to
exactly those rules (a token, no admin) and completes create -> Ready -> re-issue -> GC."""

from __future__ import annotations

import json

import pytest
from support.operator_process import (
    OperatorProcess,
    apply,
    certificate_manifest,
    condition,
    get,
    install_crds,
    lambdaca_manifest,
    wait_for,
)

pytestmark = pytest.mark.timeout(180)

# The table in docs/operator.md, "RBAC: exactly what the operator needs".
RULES = [
    {
        "apiGroups": ["clientcerts.dev"],
        "resources": ["clientcertificates"],
        "verbs": ["get", "list", "watch", "patch"],
    },
    {
        "apiGroups": ["clientcerts.dev"],
        "resources": ["clientcertificates/status"],
        "verbs": ["patch"],
    },
    {"apiGroups": ["clientcerts.dev"], "resources": ["lambdacas"], "verbs": ["list", "watch"]},
    {
        "apiGroups": [""],
        "resources": ["secrets"],
        "verbs": ["list", "watch", "create", "update", "patch"],
    },
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    {
        "apiGroups": ["kopf.dev"],
        "resources": ["clusterkopfpeerings"],
        "verbs": ["get", "list", "watch", "patch"],
    },
]


@pytest.fixture
def operator_identity(kube, kube_namespace, tmp_path):
    name = f"clientcert-operator-{kube_namespace[-8:]}"
    objects = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "operator", "namespace": kube_namespace},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": "operator", "namespace": kube_namespace}
            ],
        },
    ]
    apply(kube, *objects)
    yield kube.kubeconfig_for(kube_namespace, "operator", tmp_path / "operator.kubeconfig")
    kube.kubectl("delete", "clusterrolebinding,clusterrole", name, "--ignore-not-found")


def test_the_documented_rules_are_enough(
    kube, local_ca, kube_namespace, operator_identity, tmp_path
):
    install_crds(kube)
    apply(kube, lambdaca_manifest("local", local_ca))
    kube.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "kopf.dev/v1",
                "kind": "ClusterKopfPeering",
                "metadata": {"name": "rbac"},
            }
        ),
    )
    # The packaged entry point, as the chart runs it: kopf's own login, no kubernetes client.
    op = OperatorProcess.cli(kube, local_ca, tmp_path / "op.log", "--peering=rbac")
    op.env["KUBECONFIG"] = str(operator_identity)
    op.start()
    try:
        ns = kube_namespace
        apply(kube, certificate_manifest("rbac", ns))

        def ready(other=None):
            obj = get(kube, "clientcertificate", "rbac", ns)
            serial = ((obj or {}).get("status") or {}).get("serialNumber")
            return obj if condition(obj).get("status") == "True" and serial != other else None

        first = wait_for(ready, 30, message="Ready")["status"]["serialNumber"]
        kube.kubectl("delete", "secret", "rbac-tls", "-n", ns)
        wait_for(lambda: ready(first), 30, message="re-issued")
        assert any(
            e["reason"] == "Issued"
            for e in json.loads(kube.kubectl("get", "events", "-n", ns, "-o", "json").stdout)[
                "items"
            ]
        )
        kube.kubectl("delete", "clientcertificate", "rbac", "-n", ns, "--timeout=30s")
        # The garbage collector learns new CRDs by rediscovery (every 30 s): allow for it.
        wait_for(lambda: get(kube, "secret", "rbac-tls", ns) is None, 90, message="Secret GC")
        log = op.log_path.read_text()
        assert "forbidden" not in log.lower(), op.log_tail()
    finally:
        op.stop()
