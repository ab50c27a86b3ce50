"""The signer end to end on a real kube-apiserver: ServiceAccounts create CSRs with their own
tokens, the operator (``kopf run``, CLIENTCERT_SIGNER=true) approves or denies them by
ClientCertificatePolicies and signs the approved ones through the real local CA over HTTP."""

from __future__ import annotations

import json
import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography import x509
from support.apimetrics import apiserver_requests
from support.csr_requests import (
    certificates,
    condition,
    policy_manifest,
    signed,
    wait_csr,
)
from support.operator_process import apply, wait_for

from cacore.certinfo import chain_problem, key_matches, san_strings
from cacore.request import San

pytestmark = pytest.mark.timeout(180)


def denied(obj):
    return condition(obj, "Denied")


def test_the_templated_name_is_exactly_what_the_certificate_carries(
    cluster, operator, policy, requester, kube_namespace, signer, ca
):
    policy()
    api = requester("api")
    before = ca.stats()["invocations"]
    wanted = f"api.{kube_namespace}.svc"
    name, key = api.submit(signer, wanted, (San("DNS_NAME", wanted),), days=1)
    obj = wait_csr(cluster, name, signed, message="signed")
    leaf, issuing = certificates(obj)
    assert key_matches(leaf, key)
    assert chain_problem(leaf, [issuing]) is None
    assert leaf.subject.rfc4514_string() == f"CN={wanted}"
    assert san_strings(leaf) == (f"DNS:{wanted}",)
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime.days == 1  # 86400 s asked: one whole day (+ the CA's 5 minutes backdating)
    approved = condition(obj, "Approved")
    assert approved["reason"] == "ApprovedByPolicy"
    assert f'ClientCertificatePolicy "p-{kube_namespace}"' in approved["message"]
    assert condition(obj, "clientcerts.dev/Signing")["reason"] == "Issued"
    assert ca.stats()["invocations"] - before == 1


def test_a_san_outside_the_templates_is_refused_not_dropped(
    cluster, operator, policy, requester, kube_namespace, signer, ca
):
    policy()
    api = requester("api")
    before = ca.stats()["invocations"]
    cn = f"api.{kube_namespace}.svc"
    name, _ = api.submit(signer, cn, (San("DNS_NAME", cn), San("DNS_NAME", "db.example.com")))
    obj = wait_csr(cluster, name, denied, message="denied")
    assert denied(obj)["reason"] == "PolicyViolation"
    assert "spec.sans: the CSR asks for DNS:db.example.com" in denied(obj)["message"]
    assert not signed(obj)
    assert ca.stats()["invocations"] == before


def test_service_account_a_cannot_get_the_name_only_bs_policy_allows(
    cluster, operator, requester, kube_namespace, signer, ca
):
    ns = kube_namespace
    for sa in ("a", "b"):
        apply(
            cluster,
            policy_manifest(
                f"{ns}-{sa}",
                signer,
                requesters={"serviceAccounts": [{"namespace": ns, "name": sa}]},
                subject={"commonName": f"{sa}.{ns}.svc"},
            ),
        )
    try:
        before = ca.stats()["invocations"]
        name, _ = requester("a").submit(signer, f"b.{ns}.svc")
        obj = wait_csr(cluster, name, denied, message="denied")
        assert denied(obj)["reason"] == "PolicyViolation"
        assert (
            f'ClientCertificatePolicy "{ns}-a": spec.subject.commonName' in denied(obj)["message"]
        )
        assert ca.stats()["invocations"] == before
        # B itself gets it.
        name, _ = requester("b").submit(signer, f"b.{ns}.svc")
        wait_csr(cluster, name, signed, message="signed for B")
    finally:
        cluster.kubectl("delete", "clientcertificatepolicy", f"{ns}-a", f"{ns}-b")


def test_a_requester_matching_no_policy_is_denied_with_the_reason(
    cluster, operator, requester, kube_namespace, signer
):
    name, _ = requester("nobody").submit(signer, f"nobody.{kube_namespace}.svc")
    obj = wait_csr(cluster, name, denied, message="denied")
    assert denied(obj)["reason"] == "NoMatchingPolicy"
    assert f"ServiceAccount {kube_namespace}/nobody" in denied(obj)["message"]

    def warned() -> bool:
        events = json.loads(
            cluster.kubectl(
                "get", "events", "-n", "default", "--field-selector",
                f"involvedObject.name={name},involvedObject.kind=CertificateSigningRequest",
                "-o", "json",
            ).stdout
        )["items"]  # fmt: skip
        return any(e["reason"] == "NoMatchingPolicy" and e["type"] == "Warning" for e in events)

    # Events follow the decisions once the signer is idle (signer/outbox.py).
    wait_for(warned, 10, 0.2, "the NoMatchingPolicy event")
    described = cluster.kubectl("describe", "csr", name).stdout
    assert "NoMatchingPolicy" in described


def test_csrs_for_other_signers_are_left_alone(
    cluster, operator, policy, requester, kube_namespace, lambdaca
):
    policy()
    api = requester("api")
    cn = f"api.{kube_namespace}.svc"
    others = [
        "example.com/not-ours",
        f"clientcerts.dev/{lambdaca}-not-opted-in",  # our domain, but no such opted-in LambdaCA
    ]
    names = [api.submit(signer, cn)[0] for signer in others]
    # A CSR for our signer, made after them, is decided: the operator has seen them all.
    ours, _ = api.submit(f"clientcerts.dev/{lambdaca}", cn)
    wait_csr(cluster, ours, signed, message="signed")
    for name in names:
        obj = cluster.get_json("csr", name)
        assert (obj.get("status") or {}).get("conditions") in (None, []), obj["status"]
        assert obj["metadata"].get("annotations") is None


def test_the_ca_refusal_reaches_the_failed_condition_verbatim(
    cluster, operator, policy, requester, kube_namespace, signer, ca
):
    policy()
    refusal = f"Refused for the test {secrets.token_hex(4)}"
    ca.inject("refuse", message=refusal)
    name, _ = requester("api").submit(signer, f"api.{kube_namespace}.svc")
    obj = wait_csr(cluster, name, lambda o: condition(o, "Failed"), message="failed")
    assert condition(obj, "Failed")["reason"] == "CARefused"
    assert condition(obj, "Failed")["message"] == refusal
    assert not signed(obj)


def test_the_trust_bundle_is_published_in_the_namespace_and_as_a_cluster_trust_bundle(
    cluster, operator, policy, requester, kube_namespace, signer, lambdaca
):
    policy()
    name, _ = requester("api").submit(signer, f"api.{kube_namespace}.svc")
    leaf, issuing = certificates(wait_csr(cluster, name, signed, message="signed"))
    configmap = cluster.get_json("configmap", "clientcert-ca-bundle", "-n", kube_namespace)
    bundle = x509.load_pem_x509_certificates(configmap["data"][f"{lambdaca}.crt"].encode())
    assert [c.subject for c in bundle][0] == issuing.subject  # issuing CA, then the root
    root = bundle[-1]
    assert root.subject == root.issuer
    assert chain_problem(leaf, [issuing, root]) is None
    assert configmap["metadata"]["labels"]["clientcerts.dev/trust-bundle"] == "true"
    ctb = cluster.get_json("clustertrustbundle", f"clientcerts.dev:{lambdaca}:bundle")
    assert ctb["spec"]["signerName"] == signer
    assert ctb["spec"]["trustBundle"] == configmap["data"][f"{lambdaca}.crt"]


def test_a_burst_from_one_namespace_reads_its_bundle_configmap_once(
    cluster, operator, policy, requester, kube_namespace, signer
):
    """The CSRs of a burst queue behind the first one's write of the namespace's bundle; none of
    them reads the ConfigMap again (each did, one after another, holding the others up)."""
    policy()
    api = requester("api")
    before = apiserver_requests(cluster)[("GET", "configmaps", "")]
    with ThreadPoolExecutor(12) as pool:
        names = list(pool.map(lambda _: api.submit(signer, f"api.{kube_namespace}.svc")[0],
                              range(12)))  # fmt: skip
    for name in names:
        wait_csr(cluster, name, signed, message="signed")
    reads = apiserver_requests(cluster)[("GET", "configmaps", "")] - before
    assert reads <= 1, f"{reads} reads of the bundle ConfigMap for one namespace"
    assert cluster.get_json("configmap", "clientcert-ca-bundle", "-n", kube_namespace)["data"]
