"""The operator chart's ClusterRole is exactly enough. The chart is installed for real with
`helm install`; the operator runs on the host (no kubelet here) with the chart's Deployment
args and environment and the chart ServiceAccount's own token, and completes a scenario that
uses every permission it claims: create -> Ready with an owned Secret (overwriting a foreign
one), an Issued event, a secretTemplate change copied without re-issuing, a deleted Secret
re-created, the finalizer an earlier version added removed, and the operator announced in its
kopf peering. Then each rule is removed in turn
and the same scenario breaks."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from chart_tools import (
    OPERATOR,
    Helm,
    ScenarioBroke,
    Steps,
    broken_step_seconds,
    default_ca_values,
    env_of,
    find,
    wait_until_started,
)
from support.operator_process import condition, free_port, get, install_crds

from cacore.certinfo import key_matches
from cacore.keys import load_private_key

pytestmark = pytest.mark.timeout(120)

# A working operator needs well under 2 s per step here; the margin is for a loaded CI machine.
STEP_SECONDS = 15.0
OPERATOR_BIN = Path(sys.executable).with_name("clientcert-operator")


@pytest.fixture(scope="module")
def helm(tmp_path_factory) -> Helm:
    return Helm.prepare(tmp_path_factory.mktemp("charts"))


@pytest.fixture(scope="module")
def cluster(kube):
    install_crds(kube)
    return kube


@dataclass
class Release:
    kube: object
    helm: Helm
    namespace: str
    name: str
    log: Path
    proc: subprocess.Popen | None = None
    step_seconds: float = STEP_SECONDS
    steps: Steps | None = None

    def manifest(self) -> list[dict]:
        text = self.helm.run(
            "get",
            "manifest",
            self.name,
            "-n",
            self.namespace,
            "--kubeconfig",
            str(self.kube.kubeconfig),
        ).stdout
        return [d for d in yaml.safe_load_all(text) if d]

    def drop_rule(self, index: int) -> dict:
        role = self.kube.get_json("clusterrole", self.name + "-clientcert-operator")
        removed = role["rules"].pop(index)
        self.kube.kubectl("replace", "-f", "-", input=json.dumps(role))
        return removed

    def start_operator(self, local_ca, tmp: Path) -> None:
        """The chart's Deployment container as a host process, as the chart's ServiceAccount."""
        container = find(self.manifest(), "Deployment")["spec"]["template"]["spec"]["containers"][0]
        account = find(self.manifest(), "ServiceAccount")["metadata"]["name"]
        kubeconfig = self.kube.kubeconfig_for(self.namespace, account, tmp / "sa.kubeconfig")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KUBE"))}
        env.update({k: v for k, v in local_ca.env.items() if k.startswith("AWS_")})
        env.update(env_of(container))
        # Listen on loopback only; the pod would listen on all its interfaces.
        env.update(
            CLIENTCERT_METRICS_ADDRESS="127.0.0.1",
            KUBECONFIG=str(kubeconfig),
            NO_PROXY="127.0.0.1,localhost",
        )
        args = [a.replace("0.0.0.0", "127.0.0.1") for a in container["args"]]
        assert container["command"] == ["clientcert-operator"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(OPERATOR_BIN), *args], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_until_started(self.proc, next(a for a in args if a.startswith("--liveness=")))
        self.steps = Steps(self.proc, self.step_seconds)

    def stop_operator(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])


def install(helm, kube, local_ca, namespace: str, tmp: Path) -> Release:
    name = f"r{namespace[-8:]}"
    values = {
        "defaultCA": default_ca_values(f"{name}-ca", local_ca),
        "peering": {"name": f"{name}-peering"},
        "liveness": {"port": free_port()},
        "metrics": {"port": free_port()},
        "settings": {"retryBaseSeconds": 0.5, "retryCapSeconds": 2, "renewalJitter": 0},
    }
    helm.run(
        "install", name, helm.chart(OPERATOR), "--namespace", namespace, "--skip-crds",
        "--kubeconfig", str(kube.kubeconfig), *helm.values_args(values),
    )  # fmt: skip
    return Release(kube, helm, namespace, name, tmp / "operator.log")


def uninstall(release: Release) -> None:
    release.stop_operator()
    kube = release.kube
    # The operator is gone: take kopf's finalizers off so the namespace can go.
    for item in kube.get_json("clientcertificates", "-n", release.namespace)["items"]:
        kube.kubectl(
            "patch", "clientcertificate", item["metadata"]["name"], "-n", release.namespace,
            "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False,
        )  # fmt: skip
        kube.kubectl("delete", "clientcertificate", item["metadata"]["name"], "-n",
                     release.namespace, "--wait=false", check=False)  # fmt: skip
    release.helm.run(
        "uninstall",
        release.name,
        "-n",
        release.namespace,
        "--kubeconfig",
        str(kube.kubeconfig),
        check=False,
    )


def scenario(kube, release: Release) -> None:
    """Raises ScenarioBroke naming the first step that did not happen."""
    ns = release.namespace
    assert release.steps is not None
    step = release.steps.wait
    foreign = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": "client-tls", "namespace": ns},
        "data": {"tls.crt": "", "tls.key": ""},
    }
    kube.kubectl("apply", "-f", "-", input=json.dumps(foreign))
    cert = {
        "apiVersion": "clientcerts.dev/v1alpha1",
        "kind": "ClientCertificate",
        "metadata": {"name": "client", "namespace": ns},
        "spec": {
            "commonName": "client.example.com",
            "secretName": "client-tls",
            "secretTemplate": {"labels": {"stage": "one"}},
        },
    }
    kube.kubectl("apply", "-f", "-", input=json.dumps(cert))

    def ready():
        obj = get(kube, "clientcertificate", "client", ns)
        return obj if condition(obj).get("status") == "True" else None

    obj = step("Ready", ready)

    def owned_secret():
        secret = get(kube, "secret", "client-tls", ns)
        owners = (secret or {}).get("metadata", {}).get("ownerReferences") or []
        if not any(o["uid"] == obj["metadata"]["uid"] for o in owners):
            return None
        data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
        from cryptography import x509

        leaf = x509.load_pem_x509_certificates(data["tls.crt"])[0]
        return secret if key_matches(leaf, load_private_key(data["tls.key"])) else None

    first = step("the foreign Secret overwritten with an owned one", owned_secret)

    def issued_event():
        events = kube.get_json("events", "-n", ns, "--field-selector", "involvedObject.name=client")
        # Reissued: the foreign Secret was taken over.
        return any(e.get("reason") in ("Issued", "Reissued") for e in events["items"])

    step("an Issued event", issued_event)

    cert["spec"]["secretTemplate"]["labels"]["stage"] = "two"
    kube.kubectl("apply", "-f", "-", input=json.dumps(cert))

    def relabelled():
        secret = get(kube, "secret", "client-tls", ns) or {}
        labels = secret.get("metadata", {}).get("labels") or {}
        same_key = secret.get("data", {}).get("tls.key") == first["data"]["tls.key"]
        return labels.get("stage") == "two" and same_key

    step("the secretTemplate change copied without re-issuing", relabelled)

    kube.kubectl("delete", "secret", "client-tls", "-n", ns)
    step("the deleted Secret re-created", owned_secret)

    # An object as earlier versions of the operator left it (with their finalizer): released.
    legacy = {
        "apiVersion": "clientcerts.dev/v1alpha1",
        "kind": "ClientCertificate",
        "metadata": {
            "name": "legacy",
            "namespace": ns,
            "finalizers": ["clientcerts.dev/finalizer"],
        },
        "spec": {"commonName": "legacy.example.com", "secretName": "legacy-tls"},
    }
    kube.kubectl("apply", "-f", "-", input=json.dumps(legacy))

    def released():
        found = get(kube, "clientcertificate", "legacy", ns) or {}
        return found and not found["metadata"].get("finalizers")

    step("the finalizer an earlier version added removed", released)

    def announced():
        peering = get(kube, "clusterkopfpeering", f"{release.name}-peering") or {}
        return bool(peering.get("status"))

    step("the operator announced in its peering", announced)


def run_scenario(
    helm, kube, local_ca, namespace, tmp_path, drop: int | None = None, step_seconds=STEP_SECONDS
):
    """(the rule removed, the step that broke or None, the operator's log, its slowest step)."""
    release = install(helm, kube, local_ca, namespace, tmp_path)
    release.step_seconds = step_seconds
    try:
        removed = release.drop_rule(drop) if drop is not None else None
        release.start_operator(local_ca, tmp_path)
        try:
            scenario(kube, release)
        except ScenarioBroke as broke:
            return removed, str(broke), release.log_tail(), release.steps.slowest
        return removed, None, release.log_tail(), release.steps.slowest
    finally:
        uninstall(release)


@pytest.fixture(scope="module")
def baseline(helm, cluster, local_ca, tmp_path_factory):
    """The whole scenario with the chart's ClusterRole untouched; the per-rule tests need it to
    pass first, or a rule removal would "break" a scenario that never worked."""
    namespace = cluster.new_namespace_name("rbac-baseline")
    cluster.kubectl("create", "namespace", namespace)
    try:
        tmp = tmp_path_factory.mktemp("rbac-baseline")
        _, broke, log, slowest = run_scenario(helm, cluster, local_ca, namespace, tmp)
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    return broke, log, slowest


def test_operator_under_the_charts_service_account_completes_the_scenario(baseline):
    broke, log, _ = baseline
    assert broke is None, f"{broke}\noperator log:\n{log}"


RULES = [
    "clientcertificates: get, list, watch",
    "clientcertificates: patch",
    "clientcertificates/status: patch",
    "lambdacas: list, watch",
    "secrets: list, watch",
    "secrets: create, update",
    "secrets: patch",
    "events: create",
    "namespaces: list, watch",
    "clusterkopfpeerings: get, list, watch, patch",
]


def test_the_rule_list_is_the_charts(helm):
    role = find(helm.render(OPERATOR, {}), "ClusterRole")
    assert [f"{r['resources'][0]}: {', '.join(r['verbs'])}" for r in role["rules"]] == RULES


@pytest.mark.parametrize("index", range(len(RULES)), ids=[f"without {r}" for r in RULES])
def test_removing_any_one_rule_breaks_the_scenario(
    helm, cluster, local_ca, kube_namespace, tmp_path, index, baseline
):
    assert baseline[0] is None, f"the full role does not work either: {baseline[0]}"
    seconds = broken_step_seconds(baseline[2], STEP_SECONDS)
    removed, broke, log, _ = run_scenario(
        helm, cluster, local_ca, kube_namespace, tmp_path, index, seconds
    )
    assert f"{removed['resources'][0]}: {', '.join(removed['verbs'])}" == RULES[index]
    assert broke is not None, f"the scenario passed without {RULES[index]}:\n{log}"
    print(f"without {RULES[index]}: {broke}")


def test_sigterm_after_helm_uninstall_removed_the_role_does_not_wait_out_the_budget(
    helm, cluster, local_ca, kube_namespace, tmp_path
):
    """`helm uninstall` deletes the role and the Pod together: kopf's last peering write is then
    refused (403), which kopf retries like an outage. The exit must not wait for the watchdog."""
    release = install(helm, cluster, local_ca, kube_namespace, tmp_path)
    try:
        release.start_operator(local_ca, tmp_path)
        peering = f"{release.name}-peering"
        assert release.steps is not None
        step = release.steps.wait
        step("announced", lambda: (get(cluster, "clusterkopfpeering", peering) or {}).get("status"))
        account = find(release.manifest(), "ServiceAccount")["metadata"]["name"]
        cluster.kubectl("delete", "clusterrolebinding", f"{release.name}-clientcert-operator")

        def refused() -> bool:
            answer = cluster.kubectl(
                "auth", "can-i", "patch", "clusterkopfpeerings.kopf.dev",
                f"--as=system:serviceaccount:{kube_namespace}:{account}", check=False,
            )  # fmt: skip
            return answer.stdout.strip() == "no"

        step("the role's binding gone", refused)
        assert release.proc is not None
        release.proc.terminate()
        code = release.proc.wait(60)
        log = release.log.read_text()
        assert "did not stop within" not in log, release.log_tail()
        assert code == 0, release.log_tail()
    finally:
        uninstall(release)
