"""The operator chart's signer ClusterRole is exactly enough. The chart is installed for real with
`signer.enabled`; the operator runs on the host with the chart's Deployment args and environment
as the chart's ServiceAccount, and completes a scenario that uses every rule of the signer's role:
a CSR approved by a policy with namespace and ServiceAccount selectors, signed after one
throttled CA call (read again after the retry delay), the trust bundle created in the requester's
namespace and brought up to date in another one found by listing, a ClusterTrustBundle created
for one signer and updated for another. Then each rule is removed in turn and the same scenario
breaks. (The base role is proven by tests/charts/test_chart_rbac.py.)"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from datetime import UTC, datetime, timedelta
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
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from support.csr_requests import Requester, condition, signed, signer_lambdaca
from support.operator_process import free_port, install_crds

pytestmark = pytest.mark.timeout(600)

STEP_SECONDS = 8.0  # a started operator needs about a second per step here
OPERATOR_BIN = Path(sys.executable).with_name("clientcert-operator")

RULES = [
    "certificatesigningrequests: list, watch",
    "certificatesigningrequests: get",
    "certificatesigningrequests/approval: update",
    "certificatesigningrequests/status: update",
    "signers: approve",
    "signers: sign",
    "signers: attest",
    "clientcertificatepolicies: list, watch",
    "namespaces: get",
    "serviceaccounts: get",
    "configmaps: create",
    "configmaps: get, update",
    "configmaps: list",
    "clustertrustbundles: create",
    "clustertrustbundles: get, update",
]


def rule_label(rule: dict) -> str:
    return f"{rule['resources'][0]}: {', '.join(rule['verbs'])}"


def stale_ca_pem() -> str:
    """A CA certificate the operator must replace wherever it finds it under its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stale test CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def release(kube, local_ca, tmp_path_factory):
    """The chart installed once with the signer on; each scenario run replaces its role."""
    install_crds(kube)
    helm = Helm.prepare(tmp_path_factory.mktemp("charts"))
    namespace = kube.new_namespace_name("signer-rbac")
    kube.kubectl("create", "namespace", namespace)
    name = f"s{namespace[-8:]}"
    values = {
        "defaultCA": default_ca_values(f"{name}-ca", local_ca),
        "signer": {"enabled": True},
        "peering": {"enabled": False},
        "liveness": {"port": free_port()},
        "metrics": {"port": free_port()},
        "settings": {"retryBaseSeconds": 0.5, "retryCapSeconds": 1},
    }
    helm.run(
        "install", name, helm.chart(OPERATOR), "--namespace", namespace, "--skip-crds",
        "--kubeconfig", str(kube.kubeconfig), *helm.values_args(values),
    )  # fmt: skip
    manifest = [
        d
        for d in yaml.safe_load_all(
            helm.run(
                "get", "manifest", name, "-n", namespace, "--kubeconfig", str(kube.kubeconfig)
            ).stdout
        )
        if d
    ]
    role = find(manifest, "ClusterRole", f"{name}-clientcert-operator-signer")
    yield {"kube": kube, "helm": helm, "namespace": namespace, "name": name,
           "manifest": manifest, "role": role}  # fmt: skip
    helm.run("uninstall", name, "-n", namespace, "--kubeconfig", str(kube.kubeconfig), check=False)
    kube.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_the_rule_list_is_the_charts(release):
    assert [rule_label(r) for r in release["role"]["rules"]] == RULES
    signers = [r for r in release["role"]["rules"] if r["resources"] == ["signers"]]
    assert all(r["resourceNames"] == ["clientcerts.dev/*"] for r in signers)
    named = [r for r in release["role"]["rules"] if r["resources"] == ["configmaps"]][1:]
    assert all(r["resourceNames"] == ["clientcert-ca-bundle"] for r in named)


def test_naming_the_lambdacas_narrows_the_signer_names(tmp_path):
    helm = Helm.prepare(tmp_path)
    docs = helm.render(OPERATOR, {"signer": {"enabled": True, "lambdaCAs": ["prod"]}})
    role = find(docs, "ClusterRole", "rel-clientcert-operator-signer")
    names = {rule_label(r): r.get("resourceNames") for r in role["rules"]}
    assert names["signers: sign"] == ["clientcerts.dev/prod"]
    assert names["clustertrustbundles: get, update"] == ["clientcerts.dev:prod:bundle"]
    assert "CLIENTCERT_SIGNER" not in json.dumps(helm.render(OPERATOR, {}))


def run_scenario(
    release, local_ca, tmp: Path, drop: int | None, step_seconds: float = STEP_SECONDS
) -> tuple[str | None, str, float]:
    """(the step that broke or None, the operator's log, its slowest step)."""
    kube = release["kube"]
    role = json.loads(json.dumps(release["role"]))
    role["metadata"] = {"name": role["metadata"]["name"]}
    if drop is not None:
        role["rules"].pop(drop)
    kube.kubectl("replace", "-f", "-", input=json.dumps(role))
    tag = secrets.token_hex(3)
    ca1 = f"{release['name']}-ca"
    ca2 = f"rbac2-{tag}"
    ns_a, ns_b = f"rbac-a-{tag}", f"rbac-b-{tag}"
    stale = stale_ca_pem()
    for ns in (ns_a, ns_b):
        kube.kubectl("create", "namespace", ns)
    kube.kubectl("label", "namespace", ns_a, "signer-rbac=yes")
    # The second signer's ClusterTrustBundle and another namespace's ConfigMap are out of date.
    objects = [
        signer_lambdaca(ca2, local_ca),
        {"apiVersion": "certificates.k8s.io/v1beta1", "kind": "ClusterTrustBundle",
         "metadata": {"name": f"clientcerts.dev:{ca2}:bundle"},
         "spec": {"signerName": f"clientcerts.dev/{ca2}", "trustBundle": stale}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "clientcert-ca-bundle", "namespace": ns_b},
         "data": {f"{ca1}.crt": stale}},
        {"apiVersion": "clientcerts.dev/v1alpha1", "kind": "ClientCertificatePolicy",
         "metadata": {"name": f"rbac-{tag}"},
         "spec": {"signerNames": [f"clientcerts.dev/{ca1}", f"clientcerts.dev/{ca2}"],
                  "requesters": {"namespaceSelector": {"matchLabels": {"signer-rbac": "yes"}},
                                 "serviceAccountSelector": {"matchLabels": {"certs": "yes"}}},
                  "subject": {"commonName": "{serviceAccount}.{namespace}.svc"}}},
    ]  # fmt: skip
    kube.kubectl(
        "delete", "clustertrustbundle", f"clientcerts.dev:{ca1}:bundle", "--ignore-not-found"
    )
    kube.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    )
    api = Requester(kube, ns_a, "api", tmp)
    kube.kubectl("label", "serviceaccount", "api", "-n", ns_a, "certs=yes")

    container = find(release["manifest"], "Deployment")["spec"]["template"]["spec"]["containers"][0]
    account = find(release["manifest"], "ServiceAccount")["metadata"]["name"]
    kubeconfig = kube.kubeconfig_for(release["namespace"], account, tmp / "sa.kubeconfig")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KUBE"))}
    env.update({k: v for k, v in local_ca.env.items() if k.startswith("AWS_")})
    env.update(env_of(container))
    env.update(CLIENTCERT_METRICS_ADDRESS="127.0.0.1", KUBECONFIG=str(kubeconfig),
               NO_PROXY="127.0.0.1,localhost")  # fmt: skip
    args = [a.replace("0.0.0.0", "127.0.0.1") for a in container["args"]]
    log_path = tmp / "operator.log"
    local_ca.inject("throttle")  # the first call is throttled: the retry reads the CSR again
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [str(OPERATOR_BIN), *args], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    wait_until_started(proc, next(a for a in args if a.startswith("--liveness=")))
    steps = Steps(proc, step_seconds)
    step = steps.wait

    def configmap(ns):
        found = kube.kubectl("get", "configmap", "clientcert-ca-bundle", "-n", ns, "-o", "json",
                             check=False)  # fmt: skip
        return json.loads(found.stdout)["data"] if found.returncode == 0 else {}

    def ctb(ca):
        found = kube.kubectl("get", "clustertrustbundle", f"clientcerts.dev:{ca}:bundle", "-o",
                             "json", check=False)  # fmt: skip
        return json.loads(found.stdout)["spec"]["trustBundle"] if found.returncode == 0 else None

    made = []  # CSRs are cluster-scoped: one left pending would take the next run's throttle
    try:
        first, _ = api.submit(f"clientcerts.dev/{ca1}", f"api.{ns_a}.svc")
        made.append(first)
        step("approved by the policy's selectors",
             lambda: condition(kube.get_json("csr", first), "Approved"))  # fmt: skip
        step("signed after a throttled call", lambda: signed(kube.get_json("csr", first)))
        bundle = step("the bundle created in the requester's namespace",
                      lambda: configmap(ns_a).get(f"{ca1}.crt"))  # fmt: skip
        step("another namespace's bundle updated",
             lambda: configmap(ns_b).get(f"{ca1}.crt") == bundle)  # fmt: skip
        step("a ClusterTrustBundle created", lambda: ctb(ca1) == bundle)
        second, _ = api.submit(f"clientcerts.dev/{ca2}", f"api.{ns_a}.svc")
        made.append(second)
        step("signed for the second signer", lambda: signed(kube.get_json("csr", second)))
        step("its out-of-date ClusterTrustBundle updated", lambda: ctb(ca2) == bundle)
        return None, "", steps.slowest
    except ScenarioBroke as broke:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-12:])
        return str(broke), tail, steps.slowest
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        local_ca.clear_faults()
        for name in made:
            kube.kubectl("delete", "csr", name, "--ignore-not-found", check=False)
        for ns in (ns_a, ns_b):
            kube.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        kube.kubectl("delete", "clientcertificatepolicy", f"rbac-{tag}", "--ignore-not-found")
        kube.kubectl("delete", "lambdaca", ca2, "--ignore-not-found")
        kube.kubectl(
            "delete", "clustertrustbundle", f"clientcerts.dev:{ca2}:bundle", "--ignore-not-found"
        )


@pytest.fixture(scope="module")
def baseline(release, local_ca, tmp_path_factory):
    return run_scenario(release, local_ca, tmp_path_factory.mktemp("signer-rbac-full"), None)


def test_the_charts_signer_role_completes_the_scenario(baseline):
    broke, log, _ = baseline
    assert broke is None, f"{broke}\noperator log:\n{log}"


@pytest.mark.parametrize("index", range(len(RULES)), ids=[f"without {r}" for r in RULES])
def test_removing_any_one_rule_breaks_the_scenario(release, local_ca, tmp_path, index, baseline):
    assert baseline[0] is None, f"the full role does not work either: {baseline[0]}"
    assert rule_label(release["role"]["rules"][index]) == RULES[index]
    seconds = broken_step_seconds(baseline[2], STEP_SECONDS)
    broke, log, _ = run_scenario(release, local_ca, tmp_path, index, seconds)
    assert broke is not None, f"the scenario passed without {RULES[index]}:\n{log}"
    print(f"without {RULES[index]}: {broke}")
