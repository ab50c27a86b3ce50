"""The sidecar in running Pods, installed with charts/example-app and its cert-sidecar library in
each of its three forms, in namespaces that enforce PodSecurity `restricted`, against the local
CA on the node's bridge address."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import yaml
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from chartpods import (
    ca_credentials_secret,
    credentials_env,
    image_values,
    install,
    json_lines,
    moto_assumed_roles,
    render,
    values_file,
)
from support import pods
from support.localca_fixtures import invoke, issue_event

pytestmark = pytest.mark.timeout(300)

FORMS = ("native", "classic", "init")
SIDECAR = "cert-sidecar"
# Renew as soon as the sidecar's minimum interval allows: the CA backdates notBefore by 5 minutes,
# so a point this close to the 1-day lifetime is always due (docs/sidecar.md).
FAST_RENEWAL = {"point": "86690s", "jitter": 0, "minRenewalInterval": "8s"}

CLIENT_LOOP = """
import json, os, signal, socket, ssl, sys, time
from cryptography import x509
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # PID 1 has no default action for it
host, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for i in range(2400):
    version = os.path.join('/certs', os.readlink('/certs/..data'))
    crt, key, ca = (os.path.join(version, f) for f in ('tls.crt', 'tls.key', 'ca.crt'))
    record = {'i': i, 'client_serial': str(x509.load_pem_x509_certificate(
        open(crt, 'rb').read()).serial_number)}
    try:
        context = ssl.create_default_context(cafile=ca)
        context.load_cert_chain(crt, key)
        with socket.create_connection((host, port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=name) as tls:
                record['server_serial'] = tls.getpeercert()['serialNumber']
                record['greeting'] = tls.recv(200).decode().strip()
        record['ok'] = record['greeting'].startswith('hello')
    except Exception as error:
        record.update(ok=False, error=repr(error))
    print(json.dumps(record), flush=True)
    time.sleep(0.25)
time.sleep(10**9)
"""


def fullname(release: str) -> str:
    return release if "example-app" in release else f"{release}-example-app"


BOTH = ("client_auth", "server_auth")


def app_values(namespace, release, ca, image, form="native", purposes=BOTH, renewal=None,
               app_command=None):  # fmt: skip
    name = f"{fullname(release)}.{namespace}.svc"
    sidecar = {
        "form": form,
        "image": image_values(image),
        "ca": {"function": ca.function_name, "region": ca.region, "endpointUrl": ca.endpoint_url},
        "certificate": {
            "commonName": name, "sans": [name], "purposes": list(purposes), "lifetimeDays": 1,
        },
        "extraEnv": credentials_env(ca),
    }  # fmt: skip
    if renewal:
        sidecar["renewal"] = renewal
    values = {"image": image_values(image), "cert-sidecar": sidecar}
    if app_command:
        values["app"] = {"command": app_command}
    return values


def install_app(node, charts, namespace, release, values, tmp_path):
    path = values_file(tmp_path, release, values)
    done = install(node, release, charts / "example-app", namespace, path)
    return done, render(node, release, charts / "example-app", namespace, path)


def app_pod(node, namespace, release, timeout=120):
    selector = f"app.kubernetes.io/instance={release}"
    node.kube.wait_for(lambda: pods.pods(node.kube, namespace, selector), timeout=60)
    name = pods.pods(node.kube, namespace, selector)[0]["metadata"]["name"]
    return pods.wait_ready(node.kube, namespace, name, timeout)


def deployment_template(rendered: str) -> dict:
    for doc in yaml.safe_load_all(rendered):
        if doc and doc["kind"] == "Deployment":
            return doc["spec"]["template"]["spec"]
    raise AssertionError("the chart rendered no Deployment")


def assert_admitted_unchanged(template: dict, pod: dict, helm_stderr: str) -> None:
    """PodSecurity `restricted` admitted the chart's Pod as the chart wrote it, with no
    warning: same containers, same security settings."""
    assert "PodSecurity" not in helm_stderr, helm_stderr
    live = pod["spec"]
    assert live["securityContext"] == template["securityContext"]
    for kind in ("initContainers", "containers"):
        want = {c["name"]: c for c in template.get(kind, [])}
        got = {c["name"]: c for c in live.get(kind, [])}
        assert want.keys() == got.keys(), kind
        for name, container in want.items():
            for key in ("image", "command", "args", "securityContext", "restartPolicy"):
                assert got[name].get(key) == container.get(key), (kind, name, key)


def issued_lines(text: str) -> list[dict]:
    return [r for r in json_lines(text) if r.get("message") == "certificate issued"]


@pytest.mark.parametrize("form", FORMS)
def test_the_app_is_ready_only_once_certs_hold_a_valid_set(
    form, node, charts, pod_namespace, sidecar_on_node, ca_in_pods, tmp_path
):
    kube, ca = node.kube, ca_in_pods
    pods.apply(kube, ca_credentials_secret(pod_namespace, ca))
    before = ca.stats()
    ca.inject("unavailable", count=3)  # the sidecar backs off 1 s, 2 s, 4 s before it issues
    values = app_values(pod_namespace, "example-app", ca, sidecar_on_node, form)
    done, rendered = install_app(node, charts, pod_namespace, "example-app", values, tmp_path)

    seen_waiting = 0
    deadline = time.monotonic() + 120
    while True:
        items = pods.pods(kube, pod_namespace, "app.kubernetes.io/instance=example-app")
        obj = items[0] if items else None
        if obj and pods.is_ready(obj):
            break
        if obj and obj.get("status", {}).get("containerStatuses"):
            app = pods.container_status(obj, "app")
            # While the CA fails there is no valid set, and the app has not even started.
            if ca.stats()["issued"] == before["issued"]:
                assert "running" not in app["state"], app
                seen_waiting += 1
        assert time.monotonic() < deadline, "the Pod did not become Ready"
        time.sleep(0.2)

    after = ca.stats()
    assert after["unavailable"] - before["unavailable"] == 3
    assert after["issued"] - before["issued"] == 1, "one certificate, however many containers"
    assert seen_waiting > 0, "the Pod was observed while the CA was failing"
    name = obj["metadata"]["name"]
    check = pods.exec_in(kube, pod_namespace, name, "cert-sidecar", "check", "--output-dir",
                         "/certs", container="app", check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert_admitted_unchanged(deployment_template(rendered), obj, done.stderr)
    if form == "init":
        assert not obj["spec"]["containers"][1:], "the init form adds no long-running container"


def test_mutual_tls_between_pods_survives_three_renewals_without_a_failure(
    node, charts, pod_namespace, sidecar_on_node, ca_in_pods, tmp_path
):
    kube, ca = node.kube, ca_in_pods
    pods.apply(kube, ca_credentials_secret(pod_namespace, ca))
    server_values = app_values(pod_namespace, "example-app", ca, sidecar_on_node,
                               renewal=FAST_RENEWAL)  # fmt: skip
    install_app(node, charts, pod_namespace, "example-app", server_values, tmp_path)
    server = app_pod(node, pod_namespace, "example-app")
    service_ip = pods.get(kube, "service", "example-app", pod_namespace)["spec"]["clusterIP"]
    server_name = f"example-app.{pod_namespace}.svc"
    client_command = ["python", "-c", CLIENT_LOOP, service_ip, "8443", server_name]
    client_values = app_values(
        pod_namespace, "client", ca, sidecar_on_node, purposes=("client_auth",),
        renewal=FAST_RENEWAL, app_command=client_command,
    )  # fmt: skip
    client_values["service"] = {"enabled": False}
    install_app(node, charts, pod_namespace, "client", client_values, tmp_path)
    client = app_pod(node, pod_namespace, "client")
    client_name = client["metadata"]["name"]

    def handshakes():
        return json_lines(pods.logs(kube, pod_namespace, client_name, container="app"))

    def renewed_enough():
        records = handshakes()
        return (
            len({r["client_serial"] for r in records if r["ok"]}) >= 4
            and len(
                issued_lines(pods.logs(kube, pod_namespace, server["metadata"]["name"], SIDECAR))
            )
            >= 4
        )

    kube.wait_for(renewed_enough, timeout=150, interval=2, message="three renewals on each side")

    records = handshakes()
    failures = [r for r in records if not r["ok"]]
    assert not failures, failures[:3]
    assert len(records) >= 40
    # The client presented each renewed certificate, and the server greeted it by name.
    assert len({r["client_serial"] for r in records}) >= 4
    assert all(r["greeting"] == f"hello client-example-app.{pod_namespace}.svc, your "
               "certificate was accepted" for r in records)  # fmt: skip
    # Renewals happened inside the running Pods: no container was restarted.
    for name in (server["metadata"]["name"], client_name):
        obj = pods.get(kube, "pod", name, pod_namespace)
        statuses = obj["status"]["containerStatuses"] + obj["status"]["initContainerStatuses"]
        assert all(s["restartCount"] == 0 for s in statuses), statuses


def test_a_killed_sidecar_is_restarted_and_reuses_the_valid_set_on_disk(
    node, charts, pod_namespace, sidecar_on_node, ca_in_pods, tmp_path
):
    kube, ca = node.kube, ca_in_pods
    pods.apply(kube, ca_credentials_secret(pod_namespace, ca))
    values = app_values(pod_namespace, "example-app", ca, sidecar_on_node)
    install_app(node, charts, pod_namespace, "example-app", values, tmp_path)
    obj = app_pod(node, pod_namespace, "example-app")
    name = obj["metadata"]["name"]

    def serial_in_app():
        return pods.exec_in(
            kube, pod_namespace, name, "python", "-c", SERIAL, container="app"
        ).stdout

    serial_before = serial_in_app()
    before = ca.stats()

    os.kill(pods.host_pid(node.node.runtime, obj, SIDECAR), signal.SIGKILL)

    def restarted_and_ready():
        now = pods.get(kube, "pod", name, pod_namespace)
        status = pods.container_status(now, SIDECAR)
        return status["restartCount"] >= 1 and status.get("started") and pods.is_ready(now) and now

    obj = kube.wait_for(restarted_and_ready, timeout=90, message="the sidecar to be restarted")
    kube.wait_for(
        lambda: any(r.get("message") == "certificate up to date"
                    for r in json_lines(pods.logs(kube, pod_namespace, name, SIDECAR))),
        timeout=30, message="the restarted sidecar to look at the set on disk",
    )  # fmt: skip
    assert pods.container_status(obj, SIDECAR)["lastState"]["terminated"]["exitCode"] == 137
    after = ca.stats()
    assert after["invocations"] == before["invocations"], "no new issuance after the restart"
    assert not issued_lines(pods.logs(kube, pod_namespace, name, SIDECAR))
    assert serial_in_app() == serial_before


def test_irsa_the_sidecar_assumes_its_role_with_the_projected_token(
    node, charts, pod_namespace, sidecar_on_node, ca_in_pods, pod_sts, tmp_path
):
    """What EKS does for a ServiceAccount annotated with a role: its Pod Identity webhook adds
    a projected token (audience sts.amazonaws.com), AWS_ROLE_ARN and
    AWS_WEB_IDENTITY_TOKEN_FILE to every container. No webhook runs here, so the test makes the
    same change to the chart's rendered Pod template; boto3 then assumes the role through STS
    (moto's server) and the CA accepts the temporary credentials. No keys are given."""
    kube, ca = node.kube, ca_in_pods
    role = "arn:aws:iam::123456789012:role/example-app-certs"
    values = app_values(pod_namespace, "example-app", ca, sidecar_on_node)
    values["cert-sidecar"]["extraEnv"] = [{"name": "AWS_ENDPOINT_URL_STS", "value": pod_sts}]
    values["serviceAccount"] = {"annotations": {"eks.amazonaws.com/role-arn": role}}
    rendered = render(node, "example-app", charts / "example-app", pod_namespace,
                      values_file(tmp_path, "irsa", values))  # fmt: skip
    objects = [doc for doc in yaml.safe_load_all(rendered) if doc]
    for doc in objects:
        if doc["kind"] == "Deployment":
            eks_pod_identity_webhook(doc["spec"]["template"]["spec"], role, ca.region)
    for doc in objects:
        doc["metadata"]["namespace"] = pod_namespace
    before = ca.stats()
    warnings = pods.apply(kube, *objects)
    obj = app_pod(node, pod_namespace, "example-app")
    name = obj["metadata"]["name"]

    assert "PodSecurity" not in warnings
    assert ca.stats()["issued"] == before["issued"] + 1
    token_claims = pods.exec_in(kube, pod_namespace, name, "python", "-c", JWT_CLAIMS,
                                TOKEN_FILE, container=SIDECAR).stdout  # fmt: skip
    claims = json.loads(token_claims)
    assert claims["aud"] == ["sts.amazonaws.com"]
    assert claims["sub"] == f"system:serviceaccount:{pod_namespace}:example-app"
    assert claims["kubernetes.io"]["pod"]["name"] == name
    env = {e["name"] for c in obj["spec"]["initContainers"] for e in c.get("env", [])}
    assert not env & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assumed = [r for r in moto_assumed_roles(pod_sts) if r["role_arn"] == role]
    assert assumed, "STS handed out the role"
    accepted = [
        r for r in json_lines(ca.log_path.read_text())
        if r.get("event") == "sts_credentials" and r.get("role_arn") == role
    ]  # fmt: skip
    assert {r["access_key_id"] for r in accepted} <= {r["access_key_id"] for r in assumed}
    assert accepted

    # The CA still refuses the same access key id signed with another secret, and no signature.
    key = assumed[-1]
    wrong = ca.lambda_client(aws_access_key_id=key["access_key_id"],
                             aws_secret_access_key="not-the-secret",
                             aws_session_token=key["session_token"])  # fmt: skip
    with pytest.raises(ClientError) as refused:
        invoke(wrong, issue_event("irsa.example.com"))
    assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"
    unsigned = ca.lambda_client(config=Config(signature_version=UNSIGNED))
    with pytest.raises(ClientError) as refused:
        invoke(unsigned, issue_event("irsa.example.com"))
    assert refused.value.response["Error"]["Code"] == "MissingAuthenticationTokenException"


SERIAL = (
    "from cryptography import x509\n"
    "print(x509.load_pem_x509_certificate(open('/certs/tls.crt', 'rb').read()).serial_number)\n"
)
TOKEN_DIR = "/var/run/secrets/eks.amazonaws.com/serviceaccount"
TOKEN_FILE = f"{TOKEN_DIR}/token"
JWT_CLAIMS = (
    "import base64, json, sys\n"
    "payload = open(sys.argv[1]).read().split('.')[1]\n"
    "print(base64.urlsafe_b64decode(payload + '=' * (-len(payload) % 4)).decode())\n"
)


def eks_pod_identity_webhook(spec: dict, role: str, region: str) -> None:
    """The mutation amazon-eks-pod-identity-webhook makes to a Pod whose ServiceAccount has
    the eks.amazonaws.com/role-arn annotation."""
    spec.setdefault("volumes", []).append({
        "name": "aws-iam-token",
        "projected": {"sources": [{"serviceAccountToken": {
            "audience": "sts.amazonaws.com", "expirationSeconds": 86400, "path": "token",
        }}]},
    })  # fmt: skip
    for container in spec.get("initContainers", []) + spec["containers"]:
        container.setdefault("env", []).extend([
            {"name": "AWS_ROLE_ARN", "value": role},
            {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": TOKEN_FILE},
            {"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"},
            {"name": "AWS_DEFAULT_REGION", "value": region},
            {"name": "AWS_REGION", "value": region},
        ])  # fmt: skip
        container.setdefault("volumeMounts", []).append(
            {"name": "aws-iam-token", "mountPath": TOKEN_DIR, "readOnly": True}
        )
