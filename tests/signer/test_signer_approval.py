"""The approval decision, one row per rule, named as sentences: deny by default, identity from the
API server's record only, templates give exactly one name, SANs outside the templates refused."""

from __future__ import annotations

import ipaddress

import pytest
from certoperator.signer import names
from certoperator.signer.approval import APPROVE, DENY, PENDING, ApprovalInput, evaluate
from cryptography import x509
from signer_builders import (
    RSA_KEY,
    SIGNER,
    csr,
    csr_pem,
    dns,
    pod_extra,
    policy,
    service_account,
)


def decide(request, policies=None, default_days=30, ca_max=365, ns_labels=None, sa_labels=None):
    return evaluate(
        ApprovalInput(
            csr=request,
            policies=[policy()] if policies is None else policies,
            default_lifetime_days=default_days,
            ca_max_lifetime_days=ca_max,
            namespace_labels=ns_labels,
            service_account_labels=sa_labels,
        )
    )


APPROVED = [
    (
        "approve the exact name the template derives for the requesting ServiceAccount",
        dict(request=csr()),
    ),
    (
        "approve a subset of the templated SANs",
        dict(request=csr(pem=csr_pem(sans=dns("api.payments.svc.cluster.local")))),
    ),
    (
        "approve SANs case-insensitively, as DNS compares them",
        dict(request=csr(pem=csr_pem(sans=dns("API.payments.svc")))),
    ),
    (
        "approve every ServiceAccount of a namespace when the entry has no name",
        dict(
            request=csr(
                pem=csr_pem({"CN": "web.payments.svc"}), username=service_account("payments", "web")
            ),
            policies=[policy(requesters={"serviceAccounts": [{"namespace": "payments"}]})],
        ),
    ),
    (
        "approve a requester whose namespace and ServiceAccount labels match the selectors",
        dict(
            request=csr(),
            policies=[
                policy(
                    requesters={
                        "namespaceSelector": {"matchLabels": {"team": "payments"}},
                        "serviceAccountSelector": {
                            "matchExpressions": [{"key": "certs", "operator": "Exists"}]
                        },
                    }
                )
            ],
            ns_labels={"team": "payments"},
            sa_labels={"certs": "yes"},
        ),
    ),
    (
        "approve a Pod name template for a request made with a Pod-bound token",
        dict(
            request=csr(pem=csr_pem({"CN": "api-7d9f.payments"}), extra=pod_extra()),
            policies=[
                policy(
                    subject={"commonName": "{podName}.{namespace}"},
                    sans=[],
                    requesters={
                        "serviceAccounts": [{"namespace": "payments", "name": "api"}],
                        "requirePod": True,
                    },
                )
            ],
        ),
    ),
    (
        "approve templated subject attributes beside the common name",
        dict(
            request=csr(pem=csr_pem({"CN": "api.payments.svc", "O": "Example", "OU": "payments"})),
            policies=[
                policy(
                    subject={
                        "commonName": "{serviceAccount}.{namespace}.svc",
                        "organization": "Example",
                        "organizationalUnit": "{namespace}",
                    }
                )
            ],
        ),
    ),
    (
        "approve a request of exactly the policy's longest lifetime",
        dict(request=csr(expiration=30 * 86400)),
    ),
    (
        "approve when a later policy allows what the first one does not",
        dict(
            request=csr(usages=["digital signature", "server auth"]),
            policies=[
                policy("a-client-only"),
                policy("b-servers", usages=["digital signature", "server auth"]),
            ],
        ),
    ),
]


@pytest.mark.parametrize("case", [c[1] for c in APPROVED], ids=[c[0] for c in APPROVED])
def test_approved(case):
    decision = decide(**case)
    assert decision.outcome == APPROVE, decision.message
    assert decision.reason == names.APPROVED_BY_POLICY
    assert decision.policy is not None and decision.policy in decision.message


DENIED = [
    (
        "deny a requester that is a user, not a ServiceAccount",
        dict(request=csr(username="alice")),
        names.NOT_A_SERVICE_ACCOUNT,
        "user 'alice'",
    ),
    (
        "deny a ServiceAccount that no policy names",
        dict(request=csr(username=service_account("payments", "batch"))),
        names.NO_MATCHING_POLICY,
        "payments/batch",
    ),
    (
        "deny by default when there is no policy at all",
        dict(request=csr(), policies=[]),
        names.NO_MATCHING_POLICY,
        "add it to a policy's spec.requesters",
    ),
    (
        "deny when the only policy speaks for another signer",
        dict(request=csr(), policies=[policy(signerNames=["clientcerts.dev/other"])]),
        names.NO_MATCHING_POLICY,
        SIGNER,
    ),
    (
        "deny ServiceAccount A the name only B's policy allows",
        dict(
            request=csr(
                pem=csr_pem({"CN": "b.payments.svc"}), username=service_account("payments", "a")
            ),
            policies=[
                policy(
                    "a", requesters={"serviceAccounts": [{"namespace": "payments", "name": "a"}]}
                ),
                policy(
                    "b",
                    requesters={"serviceAccounts": [{"namespace": "payments", "name": "b"}]},
                    subject={"commonName": "b.payments.svc"},
                ),
            ],
        ),
        names.POLICY_VIOLATION,
        "spec.subject.commonName: the CSR asks for 'b.payments.svc'",
    ),
    (
        "deny a SAN outside the templates instead of dropping it",
        dict(request=csr(pem=csr_pem(sans=dns("api.payments.svc", "db.payments.svc")))),
        names.POLICY_VIOLATION,
        "spec.sans: the CSR asks for DNS:db.payments.svc",
    ),
    (
        "deny an IP SAN when the templates give DNS names only",
        dict(request=csr(pem=csr_pem(sans=[x509.IPAddress(ipaddress.ip_address("10.0.0.1"))]))),
        names.POLICY_VIOLATION,
        "IP:10.0.0.1",
    ),
    (
        "deny a subject attribute the policy does not template",
        dict(request=csr(pem=csr_pem({"CN": "api.payments.svc", "O": "Evil"}))),
        names.POLICY_VIOLATION,
        "sets organization",
    ),
    (
        "deny a usage the policy does not allow",
        dict(request=csr(usages=["digital signature", "server auth"])),
        names.POLICY_VIOLATION,
        "spec.usages: the CSR asks for 'server auth'",
    ),
    (
        "deny a key type the policy does not allow",
        dict(
            request=csr(pem=csr_pem(key=RSA_KEY)), policies=[policy(keyAlgorithms=["ecdsa-p256"])]
        ),
        names.POLICY_VIOLATION,
        "spec.keyAlgorithms: the CSR's key is rsa-2048",
    ),
    (
        "deny an expirationSeconds above the policy's longest lifetime",
        dict(request=csr(expiration=90 * 86400)),
        names.POLICY_VIOLATION,
        "asks for 90 days (spec.expirationSeconds 7776000); the policy allows at most 30",
    ),
    (
        "deny a request without expirationSeconds when the signer's default exceeds the policy",
        dict(request=csr(), policies=[policy(maxLifetimeDays=7)]),
        names.POLICY_VIOLATION,
        "set spec.expirationSeconds to at most 604800",
    ),
    (
        "deny a Pod template for a request made with an unbound token",
        dict(request=csr(), policies=[policy(subject={"commonName": "{podName}.{namespace}"})]),
        names.POLICY_VIOLATION,
        "uses {podName}, which the request does not carry",
    ),
    (
        "deny an unbound token when the policy requires a Pod",
        dict(
            request=csr(),
            policies=[
                policy(
                    requesters={
                        "serviceAccounts": [{"namespace": "payments", "name": "api"}],
                        "requirePod": True,
                    }
                )
            ],
        ),
        names.POLICY_VIOLATION,
        "spec.requesters.requirePod",
    ),
    (
        "deny when a selector does not match the namespace's labels",
        dict(
            request=csr(),
            policies=[policy(requesters={"namespaceSelector": {"matchLabels": {"team": "x"}}})],
            ns_labels={"team": "payments"},
        ),
        names.NO_MATCHING_POLICY,
        "payments/api",
    ),
    (
        "deny and name an invalid policy that might have allowed it",
        dict(request=csr(), policies=[policy(subject={"commonName": "{secret}"})]),
        names.NO_MATCHING_POLICY,
        "{secret} is not a variable",
    ),
    (
        "deny a CSR without a common name",
        dict(request=csr(pem=csr_pem({"O": "Example"}))),
        names.INVALID_CSR,
        "no common name",
    ),
    (
        "deny a CSR whose usages include no purpose the CA can set",
        dict(request=csr(usages=["digital signature"])),
        names.INVALID_CSR,
        "client auth or server auth",
    ),
    (
        "deny a CSR asking for a usage the CA cannot issue",
        dict(request=csr(usages=["client auth", "cert sign"])),
        names.INVALID_CSR,
        "cert sign cannot be issued",
    ),
    (
        "deny a SAN the CA would drop silently",
        dict(
            request=csr(pem=csr_pem(sans=dns("*.com"))),
            policies=[policy(sans=["*.com"])],
        ),
        names.INVALID_CSR,
        "*.com",
    ),
]


@pytest.mark.parametrize(
    "case,reason,fragment", [c[1:] for c in DENIED], ids=[c[0] for c in DENIED]
)
def test_denied(case, reason, fragment):
    decision = decide(**case)
    assert decision.outcome == DENY
    assert decision.reason == reason, decision.message
    assert fragment in decision.message


def test_a_policy_violation_names_the_policy_and_the_field():
    decision = decide(csr(pem=csr_pem({"CN": "other.payments.svc"})))
    assert decision.message.startswith(
        'ClientCertificatePolicy "payments": spec.subject.commonName'
    )
    assert "may only have 'api.payments.svc' (template '{serviceAccount}.{namespace}.svc')" in (
        decision.message
    )


def test_manual_approval_leaves_an_allowed_request_pending_and_says_who_may_approve():
    decision = decide(csr(), policies=[policy(approval="Manual")])
    assert decision.outcome == PENDING
    assert decision.reason == names.MANUAL_APPROVAL_REQUIRED
    assert "kubectl certificate approve csr-1" in decision.message


def test_the_identity_comes_from_spec_extra_never_from_the_csr_body():
    # The CSR body claims the Pod's name as its CN; only spec.extra (the API server's record)
    # counts, and here it records a different Pod.
    only_pod = policy(subject={"commonName": "{podName}"}, sans=[])
    forged = csr(pem=csr_pem({"CN": "victim-pod"}), extra=pod_extra(pod="attacker-pod"))
    assert decide(forged, policies=[only_pod]).outcome == DENY
    honest = csr(pem=csr_pem({"CN": "attacker-pod"}), extra=pod_extra(pod="attacker-pod"))
    assert decide(honest, policies=[only_pod]).outcome == APPROVE
