"""What the signer sends to the CA for an approved CSR, its lifetime rule, the status it writes,
identity parsing and templates: the pure parts besides the approval chain."""

from __future__ import annotations

import pytest
from certoperator.signer import names, templates
from certoperator.signer.identity import requester_of
from certoperator.signer.policyspec import parse_policy
from certoperator.signer.settings import signer_ca
from certoperator.signer.signing import ca_request, replace_conditions
from cryptography import x509
from signer_builders import csr, csr_pem, dns, pod_extra, service_account

from cacore.csr import load_csr
from cacore.errors import InvalidRequest
from cacore.kubecsr import lifetime_days

LIFETIMES = [
    ("use the signer's default when the CSR asks for nothing", None, 30, 30),
    ("give one day to the API's shortest request, ten minutes", 600, 30, 1),
    ("give one day to a request just under a day", 86399, 30, 1),
    ("give exactly the days of a whole-day request", 7 * 86400, 30, 7),
    ("round 36 hours down to one day, never up", 36 * 3600, 30, 1),
    ("round 47 hours down to one day", 47 * 3600, 30, 1),
]


@pytest.mark.parametrize(
    "seconds,default,days", [c[1:] for c in LIFETIMES], ids=[c[0] for c in LIFETIMES]
)
def test_lifetime_in_whole_days(seconds, default, days):
    assert lifetime_days(seconds, default) == days


def test_the_ca_request_carries_the_csr_subject_sans_and_usages():
    parsed = load_csr(csr_pem({"CN": "api.payments.svc", "O": "Example"}, dns("api.payments.svc")))
    request = ca_request(
        parsed, ["digital signature", "client auth", "server auth", "code signing"], 7
    )
    assert request.subject.common_name == "api.payments.svc"
    assert request.subject.organization == "Example"
    assert [(s.type, s.value) for s in request.sans] == [("DNS_NAME", "api.payments.svc")]
    assert request.purposes == ("client_auth", "server_auth")
    assert request.extended_key_usages == ("CODE_SIGNING",)
    assert request.lifetime_days == 7


@pytest.mark.parametrize(
    "usages,field",
    [(["client auth", "crl sign"], "spec.usages"), (["digital signature"], "spec.usages")],
    ids=["a usage the CA cannot issue", "no purpose at all"],
)
def test_the_ca_request_refuses_what_the_ca_cannot_issue(usages, field):
    with pytest.raises(InvalidRequest) as raised:
        ca_request(load_csr(csr_pem()), usages, 1)
    assert raised.value.field == field


def test_replacing_conditions_keeps_the_others_and_their_timestamps():
    approved = {"type": "Approved", "status": "True", "reason": "R", "lastUpdateTime": "t0"}
    marker = {"type": names.SIGNING, "status": "True", "reason": names.CA_INVOKED, "message": "m"}
    done = {"type": names.SIGNING, "status": "False", "reason": names.ISSUED, "message": "d"}
    assert replace_conditions([approved, marker], done) == [approved, done]


def test_the_attempt_count_survives_in_the_marker():
    marker = {
        "type": names.SIGNING,
        "status": "True",
        "reason": names.CA_INVOKED,
        "message": "attempt 3: asked LambdaCA local to sign at 2026-01-01T00:00:00Z",
    }
    assert csr(conditions=[marker]).attempts == 3
    assert csr().attempts == 0


IDENTITIES = [
    (
        "read a ServiceAccount's namespace and name",
        service_account("ns", "sa"),
        {},
        ("ns", "sa", None),
    ),
    (
        "read the Pod of a bound token",
        service_account(),
        pod_extra(),
        ("payments", "api", "api-7d9f"),
    ),
    ("treat a user as no ServiceAccount", "alice", {}, (None, None, None)),
    ("refuse a malformed ServiceAccount name", "system:serviceaccount:ns", {}, (None, None, None)),
    (
        "ignore a Pod name recorded twice",
        service_account(),
        {"authentication.kubernetes.io/pod-name": ["a", "b"]},
        ("payments", "api", None),
    ),
]


@pytest.mark.parametrize(
    "username,extra,expected", [c[1:] for c in IDENTITIES], ids=[c[0] for c in IDENTITIES]
)
def test_identity(username, extra, expected):
    who = requester_of(username, extra)
    assert (who.namespace, who.service_account, who.pod_name) == expected


def test_templates_render_only_known_variables():
    values = {"namespace": "payments", "serviceAccount": "api"}
    assert templates.render("{serviceAccount}.{namespace}.svc", values) == "api.payments.svc"
    assert templates.missing("{podName}.{namespace}", values) == ("podName",)
    for bad in ("{secret}", "{namespace", "{namespace.__class__}", "a}b"):
        with pytest.raises(templates.TemplateError):
            templates.check(bad)


POLICY_PROBLEMS = [
    ("refuse a policy without signers", {"signerNames": []}, "spec.signerNames"),
    ("refuse another signer domain", {"signerNames": ["example.com/x"]}, "spec.signerNames[0]"),
    (
        "refuse an unknown template variable",
        {"subject": {"commonName": "{user}"}},
        "spec.subject.commonName",
    ),
    ("refuse a usage the CA cannot issue", {"usages": ["cert sign"]}, "spec.usages[0]"),
    (
        "refuse a bad selector operator",
        {
            "requesters": {
                "namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}
            }
        },
        "operator",
    ),
    ("refuse an unknown approval mode", {"approval": "Sometimes"}, "spec.approval"),
]


@pytest.mark.parametrize(
    "change,field", [c[1:] for c in POLICY_PROBLEMS], ids=[c[0] for c in POLICY_PROBLEMS]
)
def test_invalid_policies_allow_nothing_and_say_why(change, field):
    spec = {
        "signerNames": ["clientcerts.dev/local"],
        "requesters": {"serviceAccounts": [{"namespace": "payments"}]},
        "subject": {"commonName": "{namespace}"},
        **change,
    }
    found = parse_policy("p", spec)
    assert found.problem is not None and field in found.problem


def test_a_lambdaca_serves_as_signer_only_when_it_opts_in():
    assert signer_ca("local", {"functionName": "f"}) is None
    assert signer_ca("local", {"functionName": "f", "signer": {"enabled": False}}) is None
    ca = signer_ca(
        "local",
        {
            "functionName": "f",
            "maxLifetimeDays": 10,
            "signer": {"enabled": True, "defaultLifetimeDays": 30},
        },
    )
    assert ca is not None and ca.default_lifetime_days == 10  # never above the CA's cap
    assert names.lambdaca_of("clientcerts.dev/local") == "local"
    assert names.lambdaca_of("kubernetes.io/kube-apiserver-client") is None
    assert names.lambdaca_of("clientcerts.dev/a/b") is None


def test_the_ip_san_of_a_csr_reaches_the_request_typed():
    import ipaddress

    parsed = load_csr(csr_pem(sans=[x509.IPAddress(ipaddress.ip_address("10.0.0.1"))]))
    assert [(s.type, s.value) for s in ca_request(parsed, ["client auth"], 1).sans] == [
        ("IP_ADDRESS", "10.0.0.1")
    ]
