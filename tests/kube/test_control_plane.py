"""The Kubernetes API the e2e tests run against behaves like a real cluster's.

These run unchanged against the local control plane or, with LCC_USE_EXISTING_CLUSTER=1 and
KUBECONFIG, against any existing cluster.
"""

import json
import os
import re

from kubelocal.binaries import read_versions
from kubelocal.handle import use_existing_cluster

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.lcc-test.example.com
spec:
  group: lcc-test.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [size]
              properties:
                size: {type: integer, minimum: 1}
"""


def widget(name, size):
    return json.dumps(
        {
            "apiVersion": "lcc-test.example.com/v1",
            "kind": "Widget",
            "metadata": {"name": name},
            "spec": {"size": size},
        }
    )


def deployment(name, selector_app, template_app):
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": selector_app}},
                "template": {
                    "metadata": {"labels": {"app": template_app}},
                    "spec": {"containers": [{"name": "c", "image": "example.invalid/none:1"}]},
                },
            },
        }
    )


def test_api_server_reports_a_real_release_version(kube):
    version = json.loads(kube.kubectl("version", "-o", "json").stdout)["serverVersion"]
    assert re.fullmatch(r"v1\.\d+\.\d+.*", version["gitVersion"])
    if not use_existing_cluster():
        assert version["gitVersion"] == read_versions()["KUBE_VERSION"]
        assert version["major"] == "1"


def test_a_crd_and_a_custom_resource_apply_and_the_schema_is_enforced(kube, kube_namespace):
    kube.kubectl("apply", "-f", "-", input=CRD)
    kube.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/widgets.lcc-test.example.com",
    )
    kube.kubectl("apply", "-n", kube_namespace, "-f", "-", input=widget("w1", 3))

    stored = kube.get_json("widgets.lcc-test.example.com", "w1", "-n", kube_namespace)
    assert stored["spec"] == {"size": 3}
    refused = kube.kubectl(
        "apply", "-n", kube_namespace, "-f", "-", input=widget("w2", 0), check=False
    )
    assert refused.returncode != 0
    assert "spec.size" in refused.stderr
    assert "should be greater than or equal to 1" in refused.stderr


def test_server_side_dry_run_refuses_an_invalid_deployment_with_the_servers_message(
    kube, kube_namespace
):
    bad = kube.kubectl(
        "apply",
        "--dry-run=server",
        "-n",
        kube_namespace,
        "-f",
        "-",
        input=deployment("bad", selector_app="a", template_app="b"),
        check=False,
    )
    assert bad.returncode != 0
    assert 'The Deployment "bad" is invalid: spec.template.metadata.labels' in bad.stderr
    assert "`selector` does not match template `labels`" in bad.stderr

    good = kube.kubectl(
        "apply",
        "--dry-run=server",
        "-n",
        kube_namespace,
        "-f",
        "-",
        input=deployment("good", selector_app="a", template_app="a"),
    )
    assert "(server dry run)" in good.stdout
    missing = kube.kubectl("get", "deployment", "good", "-n", kube_namespace, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr


def test_deleting_an_owner_garbage_collects_the_secret_it_owns(kube, kube_namespace):
    kube.kubectl("create", "configmap", "owner", "-n", kube_namespace, "--from-literal=k=v")
    kube.kubectl("create", "configmap", "bystander", "-n", kube_namespace)
    owner_uid = kube.get_json("configmap", "owner", "-n", kube_namespace)["metadata"]["uid"]
    owned = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "owned",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}
            ],
        },
        "stringData": {"tls.key": "not-a-real-key"},
    }
    kube.kubectl("apply", "-n", kube_namespace, "-f", "-", input=json.dumps(owned))
    kube.kubectl("get", "secret", "owned", "-n", kube_namespace)

    kube.kubectl("delete", "configmap", "owner", "-n", kube_namespace)

    def secret_gone():
        got = kube.kubectl("get", "secret", "owned", "-n", kube_namespace, check=False)
        return got.returncode != 0 and "NotFound" in got.stderr

    kube.wait_for(secret_gone, timeout=90, message="the garbage collector to delete the Secret")
    kube.kubectl("get", "configmap", "bystander", "-n", kube_namespace)


def test_deleting_a_namespace_removes_it_and_its_objects(kube):
    name = kube.new_namespace_name("t-ns-deletion")
    kube.kubectl("create", "namespace", name)
    kube.kubectl("create", "configmap", "inside", "-n", name)
    kube.kubectl("delete", "namespace", name, "--wait=false")

    def namespace_gone():
        got = kube.kubectl("get", "namespace", name, check=False)
        return got.returncode != 0 and "NotFound" in got.stderr

    kube.wait_for(namespace_gone, timeout=90, message=f"namespace {name} to be finalized")


RBAC = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: reader}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: configmap-reader}
rules:
  - apiGroups: [""]
    resources: [configmaps]
    verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader-reads-configmaps}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: configmap-reader}
subjects:
  - {kind: ServiceAccount, name: reader}
"""


def test_a_service_account_with_a_narrow_role_is_refused_what_it_lacks(
    kube, kube_namespace, tmp_path
):
    ns = kube_namespace
    kube.kubectl("apply", "-n", ns, "-f", "-", input=RBAC)
    kube.kubectl("create", "configmap", "visible", "-n", ns)
    kube.kubectl("create", "secret", "generic", "hidden", "-n", ns, "--from-literal=k=v")
    as_reader = kube.kubeconfig_for(ns, "reader", tmp_path / "reader.kubeconfig")
    assert oct(os.stat(as_reader).st_mode & 0o777) == "0o600"

    def kubectl_as_reader(*args):
        return kube.kubectl(f"--kubeconfig={as_reader}", *args, check=False)

    allowed = kubectl_as_reader("get", "configmap", "visible", "-o", "name")
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.strip() == "configmap/visible"

    denied = kubectl_as_reader("get", "secret", "hidden")
    assert denied.returncode != 0
    assert "Forbidden" in denied.stderr
    assert f'"system:serviceaccount:{ns}:reader" cannot get resource "secrets"' in denied.stderr

    not_in_other_namespace = kubectl_as_reader("get", "configmaps", "-n", "default")
    assert not_in_other_namespace.returncode != 0 and "Forbidden" in not_in_other_namespace.stderr

    impersonated = kube.kubectl(
        "auth",
        "can-i",
        "delete",
        "configmaps",
        "-n",
        ns,
        *kube.as_service_account(ns, "reader"),
        check=False,
    )
    assert impersonated.stdout.strip() == "no"


def test_a_service_account_token_is_a_signed_jwt_for_that_account(kube, kube_namespace):
    kube.kubectl("create", "serviceaccount", "someone", "-n", kube_namespace)
    token = kube.token_for(kube_namespace, "someone")
    review = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    }
    result = json.loads(
        kube.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(review)).stdout
    )
    assert result["status"]["authenticated"] is True
    username = result["status"]["user"]["username"]
    assert username == f"system:serviceaccount:{kube_namespace}:someone"


def test_helm_talks_to_the_same_cluster(kube, kube_namespace):
    assert kube.helm("list", "-n", kube_namespace, "-o", "json").stdout.strip() == "[]"
