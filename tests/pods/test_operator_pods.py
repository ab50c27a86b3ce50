"""The operator as users run it: `helm install charts/clientcert-operator` with the image built
here, in a namespace enforcing PodSecurity `restricted`, on the node (the `operator` fixture,
conftest.py); it talks to the API server through the `kubernetes` Service and to the local CA
on the node's bridge address."""

from __future__ import annotations

import base64
import json
import time

import pytest
from chartpods import OPERATOR_RELEASE, OPERATOR_SELECTOR, json_lines, operator_pod
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from support import pods

pytestmark = pytest.mark.timeout(420)


def certificate(name, namespace, **spec):
    return {
        "apiVersion": "clientcerts.dev/v1alpha1",
        "kind": "ClientCertificate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"commonName": f"{name}.example.com", "secretName": f"{name}-tls", **spec},
    }


def apply_all(kube, items):
    """One server-side apply: every object arrives at once, as in a burst."""
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    kube.kubectl("apply", "--server-side", "-f", "-", input=body)


def ready_names(kube, namespace):
    items = kube.get_json("clientcertificates", "-n", namespace)["items"]
    return {
        item["metadata"]["name"]
        for item in items
        for c in item.get("status", {}).get("conditions", [])
        if c["type"] == "Ready" and c["status"] == "True"
    }


def wait_all_ready(kube, namespace, names, timeout):
    try:
        kube.wait_for(
            lambda: ready_names(kube, namespace) >= set(names),
            timeout=timeout,
            interval=1,
            message=f"{len(names)} ClientCertificates to be Ready",
        )
    except TimeoutError as err:
        logs = kube.kubectl("logs", "-A", "-l", OPERATOR_SELECTOR, "--tail=30", check=False)
        raise AssertionError(f"{err}\noperator log:\n{logs.stdout}{logs.stderr}") from None


def secret_certificate(kube, namespace, name):
    data = kube.get_json("secret", name, "-n", namespace)["data"]
    decoded = {k: base64.b64decode(v) for k, v in data.items()}
    return decoded, x509.load_pem_x509_certificates(decoded["tls.crt"])


def test_the_operator_pod_is_ready_through_its_probes_and_issues(node, operator, pod_namespace,
                                                                 pod_ca):  # fmt: skip
    kube = node.kube
    obj = operator_pod(node, operator)
    container = obj["spec"]["containers"][0]
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    status = pods.container_status(obj, "operator")
    assert status["started"] and status["ready"] and status["restartCount"] == 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True

    before = pod_ca.stats()
    pods.apply(kube, certificate("payments", pod_namespace))
    wait_all_ready(kube, pod_namespace, ["payments"], timeout=90)

    files, chain = secret_certificate(kube, pod_namespace, "payments-tls")
    assert (
        kube.get_json("secret", "payments-tls", "-n", pod_namespace)["type"] == "kubernetes.io/tls"
    )
    leaf, issuing = chain[0], chain[1]
    assert leaf.subject.rfc4514_string() == "CN=payments.example.com"
    issuing.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes,
                                ec.ECDSA(leaf.signature_hash_algorithm))  # fmt: skip
    assert files["ca.crt"].startswith(issuing.public_bytes(Encoding.PEM))
    assert pod_ca.stats()["issued"] == before["issued"] + 1


def assert_none_lost_none_doubled(kube, namespace, names, before, after):
    """All Ready with distinct certificates, every invocation issued (none lost), each
    ClientCertificate issued exactly once (none doubled: the calls in flight when the operator
    Pod stopped finish and are written, never made again by the next Pod; issue 15)."""
    issued = after["issued"] - before["issued"]
    invocations = after["invocations"] - before["invocations"]
    serials = {secret_certificate(kube, namespace, f"{n}-tls")[1][0].serial_number for n in names}
    assert len(serials) == len(names)
    assert invocations == issued, f"{invocations} invocations but {issued} certificates issued"
    assert issued == len(names), f"{issued} issuances for {len(names)} ClientCertificates"


def test_a_rollout_restart_during_a_burst_of_50_loses_nothing(
    node, operator, pod_namespace, pod_ca
):
    kube = node.kube
    first = operator_pod(node, operator)["metadata"]["name"]
    names = [f"burst-{i:02d}" for i in range(50)]
    # Each issuance takes 1 s, so the burst (8 at a time) is still going when the restart lands.
    pod_ca.inject("delay", count=50, seconds=1)
    before = pod_ca.stats()
    try:
        apply_all(kube, [certificate(n, pod_namespace) for n in names])
        kube.wait_for(lambda: pod_ca.stats()["invocations"] - before["invocations"] >= 8,
                      timeout=60, message="the burst to be under way")  # fmt: skip
        kube.kubectl("rollout", "restart", f"deployment/{OPERATOR_RELEASE}", "-n", operator)
        ready_at_restart = len(ready_names(kube, pod_namespace))
        operator_pod(node, operator, not_named=first)
        wait_all_ready(kube, pod_namespace, names, timeout=300)
        time.sleep(3)  # an invocation still in flight would show in the counts now
    finally:
        pod_ca.clear_faults()

    assert ready_at_restart < len(names), "the restart came after the burst"
    assert_none_lost_none_doubled(kube, pod_namespace, names, before, pod_ca.stats())


def test_a_deleted_operator_pod_leaves_its_issuances_to_the_next(
    node, operator, pod_namespace, pod_ca
):
    kube = node.kube
    first = operator_pod(node, operator)["metadata"]["name"]
    names = [f"slow-{i:02d}" for i in range(12)]
    pod_ca.inject("delay", count=12, seconds=3)  # every issuance takes 3 s: some are in flight
    before = pod_ca.stats()
    try:
        apply_all(kube, [certificate(n, pod_namespace) for n in names])
        kube.wait_for(lambda: pod_ca.stats()["invocations"] > before["invocations"], timeout=60,
                      message="the first invocations")  # fmt: skip
        kube.kubectl("delete", "pod", first, "-n", operator, "--wait=false")
        operator_pod(node, operator, not_named=first)
        wait_all_ready(kube, pod_namespace, names, timeout=300)
        time.sleep(4)  # a delayed invocation still in flight would show in the counts now
    finally:
        pod_ca.clear_faults()

    assert_none_lost_none_doubled(kube, pod_namespace, names, before, pod_ca.stats())


def test_a_pod_mounting_the_secret_sees_the_renewed_certificate(
    node, operator, pod_namespace, pod_ca, sidecar_on_node
):
    kube = node.kube
    # Renewed 15 s after issuance: the CA gives exactly 1 day from the time of issuance.
    pods.apply(kube, certificate("rotating", pod_namespace, lifetimeDays=1, renewBefore="86385s"))
    wait_all_ready(kube, pod_namespace, ["rotating"], timeout=90)
    mount = {"name": "tls", "mountPath": "/tls", "readOnly": True}
    app = pods.pod(
        "reader", pod_namespace,
        [pods.container("reader", sidecar_on_node, ["python", "-c", READ_SERIAL], mounts=[mount])],
        volumes=[{"name": "tls", "secret": {"secretName": "rotating-tls"}}],
    )  # fmt: skip
    pods.apply(kube, app)
    pods.wait_ready(kube, pod_namespace, "reader")

    def serials_seen():
        return [r["serial"] for r in json_lines(pods.logs(kube, pod_namespace, "reader"))]

    def renewed_and_read():
        seen = serials_seen()
        annotations = pods.get(kube, "secret", "rotating-tls", pod_namespace)["metadata"]
        current = annotations["annotations"]["clientcerts.dev/serial-number"]
        return len(set(seen)) >= 2 and seen[-1] == current

    # The operator renews the Secret, the kubelet refreshes the volume, the app reads it.
    kube.wait_for(renewed_and_read, timeout=150, interval=2,
                  message="the app to read the renewed certificate the Secret holds")  # fmt: skip
    events = kube.get_json("events", "-n", pod_namespace,
                           "--field-selector", "involvedObject.name=rotating")["items"]  # fmt: skip
    assert "Renewed" in {e["reason"] for e in events}
    kube.kubectl("delete", "clientcertificate", "rotating", "-n", pod_namespace)


READ_SERIAL = """
import json, os, signal, time
from cryptography import x509
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
while True:
    cert = x509.load_pem_x509_certificate(open('/tls/tls.crt', 'rb').read())
    print(json.dumps({'serial': str(cert.serial_number)}), flush=True)
    time.sleep(1)
"""
