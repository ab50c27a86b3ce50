"""The signer across faults and people: the CA down while CSRs wait, a restart with CSRs
pending, an operator killed during the CA call, and approval by hand. Each test runs its own
operator (``kopf run``, CLIENTCERT_SIGNER=true) so it can stop and start it."""

from __future__ import annotations

import json
import time

import pytest
from support.csr_requests import (
    REQUESTER_RULES,
    condition,
    signed,
    start_signer_operator,
    wait_csr,
)
from support.operator_process import apply, wait_for

pytestmark = pytest.mark.timeout(240)
KEY_REUSED = "Private key has already been used for a certificate"


def marker(obj):
    return condition(obj, "clientcerts.dev/Signing") or {}


@pytest.fixture
def operator_log(tmp_path):
    return tmp_path / "operator.log"


def test_csrs_waiting_while_the_ca_is_down_are_signed_when_it_returns_one_call_each(
    cluster, ca, lambdaca, signer, policy, requester, kube_namespace, operator_log
):
    op = start_signer_operator(cluster, ca, operator_log).start()
    try:
        policy()
        ca.stop()
        names = [
            requester(f"w{i}").submit(signer, f"w{i}.{kube_namespace}.svc")[0] for i in range(3)
        ]
        for name in names:
            obj = wait_csr(
                cluster, name, lambda o: marker(o).get("reason") == "CAUnavailable", 30, "waiting"
            )
            assert condition(obj, "Approved") is not None
            assert "TransportError" in marker(obj)["message"]
        ca.start()  # a restarted local CA counts invocations from zero
        for name in names:
            wait_csr(cluster, name, signed, 30, "signed after the CA returned")
        assert ca.stats()["invocations"] == 3
        assert ca.stats()["issued"] == 3
    finally:
        op.stop()


def test_after_a_restart_with_csrs_pending_each_is_signed_exactly_once(
    cluster, ca, lambdaca, signer, policy, requester, kube_namespace, operator_log
):
    policy()
    # No operator yet: CSRs pile up, and one is approved by hand meanwhile (a name no policy
    # gives: whoever may approve for the signer decides).
    names = [requester(f"r{i}").submit(signer, f"r{i}.{kube_namespace}.svc")[0] for i in range(4)]
    by_hand, _ = requester("hand").submit(signer, "hand-picked.example.com")
    cluster.kubectl("certificate", "approve", by_hand)
    before = ca.stats()
    op = start_signer_operator(cluster, ca, operator_log).start()
    try:
        for name in [*names, by_hand]:
            wait_csr(cluster, name, signed, 30, "signed")
        assert ca.stats()["invocations"] - before["invocations"] == 5
    finally:
        op.stop()
    # A second restart finds nothing to do.
    op = start_signer_operator(cluster, ca, operator_log).start()
    try:
        time.sleep(3)
        assert ca.stats()["invocations"] - before["invocations"] == 5
    finally:
        op.stop()
    hand = cluster.get_json("csr", by_hand)
    assert condition(hand, "Approved")["reason"] == "KubectlApprove"


def test_an_operator_killed_during_the_ca_call_never_gets_one_key_certified_twice(
    cluster, ca, lambdaca, signer, policy, requester, kube_namespace, operator_log
):
    policy()
    before = ca.stats()
    ca.inject("delay", seconds=4)  # the CA answers after 4 s; the operator dies before that
    op = start_signer_operator(cluster, ca, operator_log).start()
    name, _ = requester("api").submit(signer, f"api.{kube_namespace}.svc")
    try:
        obj = wait_csr(cluster, name, lambda o: marker(o).get("reason") == "CAInvoked", 30)
        assert marker(obj)["message"].startswith("attempt 1:")
        wait_for(lambda: ca.stats()["invocations"] > before["invocations"], 10, 0.05, "the call")
        op.proc.kill()
        op.proc.wait(10)
    finally:
        op.stop()
    time.sleep(5)  # the first call completes at the CA, and nobody records its certificate
    assert ca.stats()["issued"] - before["issued"] == 1
    op = start_signer_operator(cluster, ca, operator_log).start()
    try:
        obj = wait_csr(cluster, name, lambda o: condition(o, "Failed"), 30, "failed")
    finally:
        op.stop()
    # The second attempt sent the same CSR; the CA's key-reuse guard refused it.
    assert condition(obj, "Failed")["reason"] == "CARefused"
    assert condition(obj, "Failed")["message"] == KEY_REUSED
    assert marker(obj)["message"].startswith("attempt 2:")
    assert ca.stats()["issued"] - before["issued"] == 1
    assert ca.stats()["invocations"] - before["invocations"] == 2
    assert not signed(obj)


def _role(cluster, namespace, account, rules):
    name = f"{namespace}-{account}"
    objects = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": account, "namespace": namespace},
        },
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": name}, "rules": rules},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        },
    ]  # fmt: skip
    apply(cluster, *objects)
    return f"--as=system:serviceaccount:{namespace}:{account}"


def test_manual_approval_stays_pending_with_the_reason_until_an_approver_approves(
    cluster, ca, lambdaca, signer, policy, requester, kube_namespace, operator_log
):
    ns = kube_namespace
    name_of_policy = policy(approval="Manual")
    op = start_signer_operator(cluster, ca, operator_log).start()
    try:
        before = ca.stats()["invocations"]
        api = requester("api")
        name, _ = api.submit(signer, f"api.{ns}.svc")
        obj = wait_csr(
            cluster, name, lambda o: condition(o, "clientcerts.dev/AwaitingApproval"), 30
        )
        waiting = condition(obj, "clientcerts.dev/AwaitingApproval")
        assert waiting["reason"] == "ManualApprovalRequired"
        assert f'ClientCertificatePolicy "{name_of_policy}"' in waiting["message"]
        assert f"kubectl certificate approve {name}" in waiting["message"]

        # The requester itself cannot approve (the sidecar's role has no approval).
        own = cluster.kubectl("certificate", "approve", name, f"--as={api.username}", check=False)
        assert own.returncode != 0 and "forbidden" in own.stderr.lower()
        # Nor can someone who may create CSRs and write approvals but lacks `approve` for
        # this signer: the API server's CertificateApproval admission refuses.
        creator = _role(
            cluster, ns, "creator",
            [*REQUESTER_RULES,
             {"apiGroups": ["certificates.k8s.io"],
              "resources": ["certificatesigningrequests/approval"], "verbs": ["update"]}],
        )  # fmt: skip
        refused = cluster.kubectl("certificate", "approve", name, creator, check=False)
        assert refused.returncode != 0
        assert f'not permitted to approve requests with signerName "{signer}"' in refused.stderr
        time.sleep(1)
        obj = cluster.get_json("csr", name)
        assert condition(obj, "Approved") is None and not signed(obj)
        assert ca.stats()["invocations"] == before

        # Someone who holds `approve` for this signer approves; the operator signs.
        approver = _role(
            cluster, ns, "approver",
            [{"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests"],
              "verbs": ["get"]},
             {"apiGroups": ["certificates.k8s.io"],
              "resources": ["certificatesigningrequests/approval"], "verbs": ["update"]},
             {"apiGroups": ["certificates.k8s.io"], "resources": ["signers"],
              "resourceNames": [signer], "verbs": ["approve"]}],
        )  # fmt: skip
        cluster.kubectl("certificate", "approve", name, approver)
        obj = wait_csr(cluster, name, signed, 30, "signed")
        assert ca.stats()["invocations"] - before == 1
        assert condition(obj, "clientcerts.dev/AwaitingApproval") is None
    finally:
        op.stop()
        cluster.kubectl(
            "delete", "clusterrole,clusterrolebinding", f"{ns}-creator", f"{ns}-approver",
            "--ignore-not-found",
        )  # fmt: skip
    events = json.loads(cluster.kubectl("get", "events", "-n", "default", "-o", "json").stdout)
    assert any(
        e["involvedObject"].get("name") == name and e["reason"] == "ManualApprovalRequired"
        for e in events["items"]
    )
