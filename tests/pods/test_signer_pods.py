"""The CSR signer in running Pods: the operator chart with its signer on (the session `operator`
fixture and its ClientCertificatePolicy, conftest.py) and charts/example-app whose cert-sidecar
uses the kubernetes issuer, with no AWS settings at all. The app's Pod gets the name its
ServiceAccount is allowed by the policy's templates and renews it; a Pod of a ServiceAccount
that no policy names is denied, says why and is not ready; the CA certificates are published in
the namespace and reach the Pods."""

from __future__ import annotations

import pytest
from chartpods import (
    ALLOWED_RELEASE,
    FAST_RENEWAL,
    OPERATOR_SELECTOR,
    SIDECAR,
    SIGNER_NAMESPACE_LABEL,
    SIGNER_POLICY,
    app_pod,
    app_values,
    install_app,
    issued_lines,
    json_lines,
    restricted_namespace,
)
from cryptography import x509
from support import pods
from support.csr_requests import certificates, condition
from support.kube_fixtures import delete_namespace_and_its_pods

pytestmark = pytest.mark.timeout(300)

ALLOWED, DENIED = ALLOWED_RELEASE, "denied"
BUNDLE, BUNDLE_DIR = "clientcert-ca-bundle", "/var/run/clientcert-ca-bundle"
POD_NAME = "authentication.kubernetes.io/pod-name"
READ = "import sys; sys.stdout.write(open(sys.argv[1]).read())"
READYZ = """
import urllib.error, urllib.request
try:
    print(urllib.request.urlopen('http://127.0.0.1:8081/readyz', timeout=5).status)
except urllib.error.HTTPError as error:
    print(error.code)
"""


@pytest.fixture(scope="module")
def apps(node, charts, operator, sidecar_on_node, tmp_path_factory):
    """One namespace the policy covers, with two releases of the example app installed at once:
    `example-app` (its ServiceAccount is the policy's; renewing every 8 s) and `denied` (no
    policy names its ServiceAccount). Yields the namespace once the allowed Pod is Ready."""
    kube = node.kube
    namespace = restricted_namespace(node, "signer-pods")
    kube.kubectl("label", "namespace", namespace, f"{SIGNER_NAMESPACE_LABEL}=signer")
    scratch = tmp_path_factory.mktemp("signer-apps")
    for release, renewal in ((ALLOWED, FAST_RENEWAL), (DENIED, None)):
        values = app_values(namespace, release, None, sidecar_on_node, renewal=renewal)
        values["service"] = {"enabled": release == ALLOWED}
        done, _ = install_app(node, charts, namespace, release, values, scratch)
        assert "PodSecurity" not in done.stderr, done.stderr
    try:
        app_pod(node, namespace, ALLOWED, timeout=180)
    except AssertionError as error:
        log = kube.kubectl("logs", "-n", operator, "-l", OPERATOR_SELECTOR, "--tail=30",
                           check=False).stdout  # fmt: skip
        raise AssertionError(f"{error}\noperator log:\n{log}") from None
    yield namespace
    for release in (ALLOWED, DENIED):  # their ClusterRoles outlive the namespace otherwise
        kube.helm("uninstall", release, "--namespace", namespace, check=False)
    delete_namespace_and_its_pods(kube, namespace)


def release_pod(node, namespace, release) -> dict:
    return pods.pods(node.kube, namespace, f"app.kubernetes.io/instance={release}")[0]


def csrs_of(node, namespace, service_account) -> list[dict]:
    user = f"system:serviceaccount:{namespace}:{service_account}"
    return [c for c in node.kube.get_json("csr")["items"] if c["spec"]["username"] == user]


def read_in(node, namespace, pod_name, path, container) -> str:
    return pods.exec_in(node.kube, namespace, pod_name, "python", "-c", READ, path,
                        container=container).stdout  # fmt: skip


def test_a_pod_without_aws_settings_gets_its_serviceaccounts_name_and_renews_it(node, apps):
    kube, namespace = node.kube, apps
    obj = release_pod(node, namespace, ALLOWED)
    name = obj["metadata"]["name"]
    sidecar = next(c for c in obj["spec"]["initContainers"] if c["name"] == SIDECAR)
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert env["CERT_SIDECAR_ISSUER"] == "kubernetes"
    assert not [k for k in env if k.startswith("AWS_") or k in ("CERT_SIDECAR_FUNCTION",
                "CERT_SIDECAR_ENDPOINT_URL", "CERT_SIDECAR_ROLE_ARN")], env  # fmt: skip
    assert not [v for v in obj["spec"]["volumes"] if "secret" in v], "no credentials mounted"

    def renewed():
        lines = issued_lines(pods.logs(kube, namespace, name, SIDECAR))
        return len({r["serial"] for r in lines}) >= 2 and lines

    issued = kube.wait_for(renewed, timeout=120, interval=1, message="a renewal in the Pod")

    # The certificate carries exactly the names the policy's templates give this ServiceAccount.
    expected = f"{ALLOWED}.{namespace}.svc"
    on_disk = x509.load_pem_x509_certificates(
        read_in(node, namespace, name, "/certs/tls.crt", "app").encode()
    )[0]
    assert on_disk.subject.rfc4514_string() == f"CN={expected}"
    sans = on_disk.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [expected]
    # Each certificate came from a CSR the API server recorded as made by this Pod's
    # ServiceAccount, with the Pod's bound token, approved by the policy.
    signed = {}
    for csr in csrs_of(node, namespace, ALLOWED):
        if (csr.get("status") or {}).get("certificate"):
            assert csr["spec"]["extra"][POD_NAME] == [name]
            approved = condition(csr, "Approved")
            assert approved and SIGNER_POLICY["name"] in approved["message"], approved
            signed[str(certificates(csr)[0].serial_number)] = csr
    assert {r["serial"] for r in issued} <= signed.keys()
    assert str(on_disk.serial_number) in signed
    statuses = kube.get_json("pod", name, "-n", namespace)["status"]
    assert all(
        s["restartCount"] == 0
        for s in statuses["containerStatuses"] + statuses["initContainerStatuses"]
    ), "renewed inside the running Pod"


def test_a_pod_whose_serviceaccount_no_policy_names_is_denied_and_not_ready(node, apps):
    kube, namespace = node.kube, apps
    name = release_pod(node, namespace, DENIED)["metadata"]["name"]

    def denial():
        lines = json_lines(pods.logs(kube, namespace, name, SIDECAR))
        return [r for r in lines if r.get("message") == "certificate request denied"]

    found = kube.wait_for(denial, timeout=90, interval=1, message="the denied sidecar's log")[0]
    assert found["reason"] == "NoMatchingPolicy"
    assert "spec.requesters" in found["detail"]
    assert f"ServiceAccount {namespace}/{DENIED}-example-app (Pod {name})" in found["detail"]
    readyz = pods.exec_in(kube, namespace, name, "python", "-c", READYZ, container=SIDECAR)
    assert readyz.stdout.strip() == "503"
    obj = kube.get_json("pod", name, "-n", namespace)
    assert not pods.is_ready(obj)
    assert "running" not in pods.container_status(obj, "app")["state"], "the app never started"
    assert pods.container_status(obj, SIDECAR)["restartCount"] == 0, "denied, not crashing"
    mine = csrs_of(node, namespace, f"{DENIED}-example-app")
    assert mine and all(condition(c, "Denied")["reason"] == "NoMatchingPolicy" for c in mine
                        if condition(c, "Denied"))  # fmt: skip
    assert not [c for c in mine if (c.get("status") or {}).get("certificate")]


def test_the_trust_bundle_configmap_is_in_the_namespace_and_the_pod_chains_to_it(node, apps):
    kube, namespace = node.kube, apps
    name = release_pod(node, namespace, ALLOWED)["metadata"]["name"]
    data = kube.get_json("configmap", BUNDLE, "-n", namespace)["data"]
    issuing, root = x509.load_pem_x509_certificates(data["default.crt"].encode())
    assert root.subject == root.issuer and issuing.issuer == root.subject
    # The kubelet projected it into the sidecar, which wrote the same CA certificates to /certs.
    assert (
        read_in(node, namespace, name, f"{BUNDLE_DIR}/default.crt", SIDECAR)
        == (data["default.crt"])
    )
    ca_file = x509.load_pem_x509_certificates(
        read_in(node, namespace, name, "/certs/ca.crt", "app").encode()
    )
    assert ca_file == [issuing, root]
    leaf = x509.load_pem_x509_certificates(
        read_in(node, namespace, name, "/certs/tls.crt", "app").encode()
    )[0]
    leaf.verify_directly_issued_by(issuing)
    # Any Pod of the namespace mounts it, even one that holds no certificate: the denied Pod's
    # volume was empty at its start, and the kubelet fills it once the operator has written it.
    denied = release_pod(node, namespace, DENIED)["metadata"]["name"]
    path = f"{BUNDLE_DIR}/default.crt"
    probe = ["python", "-c", f"import os; print(os.path.exists({path!r}))"]
    kube.wait_for(
        lambda: (
            pods.exec_in(kube, namespace, denied, *probe, container=SIDECAR).stdout.strip()
            == "True"
        ),
        timeout=60,
        message="the bundle in the denied Pod's volume",
    )
    assert read_in(node, namespace, denied, path, SIDECAR) == data["default.crt"]
