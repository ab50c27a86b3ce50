"""Every rendered manifest of the charts passes a server-side dry-run on the real kube-apiserver:
the server's own validation and admission (the project's CRDs applied for real first)."""

from __future__ import annotations

import pytest
from chart_tools import EXAMPLE_APP, OPERATOR, Helm
from support.operator_process import install_crds

pytestmark = pytest.mark.timeout(180)

# The Prometheus Operator's CRD, reduced to its name and version: only its kind is needed for
# the ServiceMonitor to be admitted; its fields are that project's to check.
SERVICE_MONITOR_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names:
    {kind: ServiceMonitor, plural: servicemonitors, singular: servicemonitor}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


@pytest.fixture(scope="module")
def helm(tmp_path_factory) -> Helm:
    return Helm.prepare(tmp_path_factory.mktemp("charts"))


@pytest.fixture(scope="module")
def cluster(kube):
    install_crds(kube)
    kube.kubectl("apply", "--server-side", "-f", "-", input=SERVICE_MONITOR_CRD)
    kube.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/servicemonitors.monitoring.coreos.com",
    )  # fmt: skip
    return kube


CASES = {
    "operator with defaults": (OPERATOR, {}),
    "operator standalone with no default CA": (
        OPERATOR,
        {"peering": {"enabled": False}, "defaultCA": {"create": False, "name": ""}},
    ),
    "operator with standby, metrics Service, ServiceMonitor, IRSA and a cross-account CA": (
        OPERATOR,
        {
            "standby": {"enabled": True},
            "metrics": {"service": {"enabled": True}, "serviceMonitor": {"enabled": True}},
            "serviceAccount": {
                "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::111111111111:role/op"}
            },
            "defaultCA": {
                "name": "prod",
                "functionName": "arn:aws:lambda:eu-west-2:222222222222:function:ca-tls-cert-prod",
                "region": "eu-west-2",
                "roleArn": "arn:aws:iam::222222222222:role/ca-invoker",
                "endpointUrl": "https://lambda.eu-west-2.amazonaws.com",
            },
        },
    ),
    "example app with a native sidecar": (EXAMPLE_APP, {}),
    "example app with the classic sidecar form": (
        EXAMPLE_APP,
        {"cert-sidecar": {"form": "classic"}},
    ),
    "example app with the init-only form and process reload": (
        EXAMPLE_APP,
        {"cert-sidecar": {"form": "init", "reload": {"processName": "app"}}},
    ),
}


@pytest.mark.parametrize(("chart", "values"), list(CASES.values()), ids=list(CASES))
def test_rendered_manifests_pass_a_server_side_dry_run(
    helm, cluster, kube_namespace, chart, values
):
    # A release name per namespace: cluster-scoped objects (ClusterRole, LambdaCA) stay apart.
    release = f"r{kube_namespace[-8:]}"
    manifest = helm.template(chart, values, release=release, namespace=kube_namespace).stdout
    done = cluster.kubectl(
        "apply", "--dry-run=server", "-n", kube_namespace, "-f", "-", input=manifest, check=False
    )
    assert done.returncode == 0, done.stderr
    applied = [line for line in done.stdout.splitlines() if line.strip()]
    documents = [d for d in manifest.split("\n---") if "kind:" in d]
    assert len(applied) == len(documents)
    assert all(line.endswith("(server dry run)") for line in applied), done.stdout


def test_dry_run_refuses_what_the_api_server_refuses(helm, cluster, kube_namespace):
    # The check can fail: a Deployment whose selector misses its template is refused by the
    # server even though helm renders it.
    manifest = helm.template(EXAMPLE_APP, {}, namespace=kube_namespace).stdout.replace(
        "      app.kubernetes.io/instance: rel\n  template:",
        "      app.kubernetes.io/instance: other\n  template:",
    )
    done = cluster.kubectl(
        "apply", "--dry-run=server", "-n", kube_namespace, "-f", "-", input=manifest, check=False
    )
    assert done.returncode != 0
    assert "selector` does not match template `labels`" in done.stderr
