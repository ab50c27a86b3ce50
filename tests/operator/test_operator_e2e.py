"""The operator end to end: `kopf run` as a subprocess against a real kube-apiserver and
kube-controller-manager, issuing from the real local CA over HTTP. One operator per module."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from support.operator_process import (
    OperatorProcess,
    apply,
    certificate_manifest,
    condition,
    get,
    lambdaca_manifest,
    wait_for,
)

from cacore.certinfo import chain_problem, key_matches, san_strings
from cacore.keys import load_private_key, private_key_pem

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def operator(cluster, local_ca, tmp_path_factory):
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    op = OperatorProcess.kopf_run(cluster, local_ca, log, "--standalone").start()
    yield op
    op.stop()


def ready(kube, ns, name, other_than_serial=None, timeout=30.0):
    def check():
        obj = get(kube, "clientcertificate", name, ns)
        serial = ((obj or {}).get("status") or {}).get("serialNumber")
        if condition(obj).get("status") == "True" and serial and serial != other_than_serial:
            return obj
        return None

    return wait_for(check, timeout, message=f"{ns}/{name} Ready")


def secret_material(kube, ns, name):
    secret = get(kube, "secret", name, ns)
    assert secret is not None, f"Secret {ns}/{name} is missing"
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    chain = x509.load_pem_x509_certificates(data["tls.crt"])
    cas = x509.load_pem_x509_certificates(data["ca.crt"])
    return secret, chain[0], load_private_key(data["tls.key"]), cas


def events(kube, ns, name):
    out = kube.kubectl(
        "get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}", "-o", "json"
    ).stdout
    return [(e.get("type"), e.get("reason"), e.get("message")) for e in json.loads(out)["items"]]


def test_create_becomes_ready_with_a_verified_owned_secret(cluster, operator, kube_namespace):
    ns = kube_namespace
    apply(
        cluster,
        certificate_manifest(
            "web",
            ns,
            sans=["web.example.com", "IP:10.0.0.7"],
            lifetimeDays=10,
            secretTemplate={"labels": {"team": "payments"}, "annotations": {"owner": "ops"}},
        ),
    )
    obj = ready(cluster, ns, "web")
    secret, leaf, key, cas = secret_material(cluster, ns, "web-tls")
    assert secret["type"] == "kubernetes.io/tls"
    assert key_matches(leaf, key)
    assert chain_problem(leaf, cas) is None
    assert set(san_strings(leaf)) == {"DNS:web.example.com", "IP:10.0.0.7"}
    owner = secret["metadata"]["ownerReferences"][0]
    assert owner["uid"] == obj["metadata"]["uid"] and owner["controller"] is True
    assert secret["metadata"]["labels"]["team"] == "payments"
    assert secret["metadata"]["annotations"]["owner"] == "ops"
    status = obj["status"]
    assert status["serialNumber"] == str(leaf.serial_number)
    assert status["notAfter"] == leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert condition(obj)["reason"] == "Issued"
    assert condition(obj, "Issuing")["status"] == "False"
    table = cluster.kubectl("get", "ccert", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "SECRET", "EXPIRES", "AGE"]
    assert table[1].split()[:3] == ["web", "True", "web-tls"]
    wait_for(
        lambda: ("Normal", "Issued") in [e[:2] for e in events(cluster, ns, "web")],
        15,
        message="an Issued event",
    )
    labels = {"namespace": ns, "name": "web", "secret": "web-tls"}
    assert operator.metric("clientcert_certificate_expiration_timestamp_seconds", **labels) == (
        leaf.not_valid_after_utc.timestamp()
    )
    assert operator.metric("clientcert_certificate_ready_status", condition="True", **labels) == 1


def test_adding_a_san_reissues_with_it(cluster, operator, kube_namespace):
    ns = kube_namespace
    apply(cluster, certificate_manifest("api", ns, sans=["api.example.com"]))
    first = ready(cluster, ns, "api")["status"]["serialNumber"]
    apply(cluster, certificate_manifest("api", ns, sans=["api.example.com", "api2.example.com"]))
    second = ready(cluster, ns, "api", other_than_serial=first)
    _, leaf, _, _ = secret_material(cluster, ns, "api-tls")
    assert "DNS:api2.example.com" in san_strings(leaf)
    assert second["status"]["serialNumber"] == str(leaf.serial_number)
    assert condition(second)["reason"] == "Reissued"


def test_a_deleted_secret_is_recreated(cluster, operator, kube_namespace):
    ns = kube_namespace
    apply(cluster, certificate_manifest("db", ns))
    first = ready(cluster, ns, "db")["status"]["serialNumber"]
    cluster.kubectl("delete", "secret", "db-tls", "-n", ns)
    ready(cluster, ns, "db", other_than_serial=first)
    _, leaf, key, cas = secret_material(cluster, ns, "db-tls")
    assert key_matches(leaf, key) and chain_problem(leaf, cas) is None


def test_a_tampered_key_is_replaced(cluster, operator, kube_namespace):
    ns = kube_namespace
    apply(cluster, certificate_manifest("tamper", ns))
    first = ready(cluster, ns, "tamper")["status"]["serialNumber"]
    foreign = base64.b64encode(private_key_pem(ec.generate_private_key(ec.SECP256R1()))).decode()
    cluster.kubectl(
        "patch",
        "secret",
        "tamper-tls",
        "-n",
        ns,
        "--type=merge",
        "-p",
        json.dumps({"data": {"tls.key": foreign}}),
    )
    ready(cluster, ns, "tamper", other_than_serial=first)
    _, leaf, key, _ = secret_material(cluster, ns, "tamper-tls")
    assert key_matches(leaf, key)


def test_deleting_the_resource_garbage_collects_the_secret(cluster, operator, kube_namespace):
    ns = kube_namespace
    apply(cluster, certificate_manifest("gone", ns))
    ready(cluster, ns, "gone")
    cluster.kubectl("delete", "clientcertificate", "gone", "-n", ns, "--wait=true", "--timeout=30s")
    # The garbage collector learns new CRDs by rediscovery (every 30 s): allow for it.
    wait_for(lambda: get(cluster, "secret", "gone-tls", ns) is None, 90, message="Secret GC")


@pytest.mark.parametrize(
    "spec, field",
    [
        ({"commonName": ""}, "spec.commonName"),
        ({"lifetimeDays": 0}, "spec.lifetimeDays"),
        ({"lifetimeDays": 36501}, "spec.lifetimeDays"),
        ({"purposes": ["code_signing"]}, "spec.purposes"),
        ({"sans": ["not a host"]}, "spec.sans"),
        ({"sans": ["IP:10.0.0.300"]}, "spec.sans"),
        ({"sans": ["EMAIL:nobody"]}, "spec.sans"),
        ({"privateKey": {"algorithm": "ECDSA", "size": 2048}}, "spec.privateKey.size"),
    ],
    ids=[
        "an empty common name is refused",
        "a lifetime of 0 days is refused",
        "a lifetime above 100 years is refused",
        "an unknown purpose is refused",
        "a malformed DNS SAN is refused",
        "a malformed IP SAN is refused",
        "a malformed email SAN is refused",
        "an ECDSA key of RSA size is refused",
    ],
)
def test_invalid_resources_are_refused_at_admission(cluster, kube_namespace, spec, field):
    done = apply(cluster, certificate_manifest("bad", kube_namespace, **spec), check=False)
    assert done.returncode != 0
    assert field in done.stderr, done.stderr
    assert get(cluster, "clientcertificate", "bad", kube_namespace) is None


def test_a_valid_typed_san_list_is_admitted(cluster, kube_namespace):
    sans = [
        "a.example.com",
        "*.b.example.com",
        "IP:10.1.2.3",
        "IP_ADDRESS:::1",
        "EMAIL:team@example.com",
        "URI:https://example.com/id",
    ]
    apply(cluster, certificate_manifest("fine", kube_namespace, issuer="nobody", sans=sans))


def test_a_ca_refusal_shows_the_ca_message(cluster, operator, ca, kube_namespace):
    ns = kube_namespace
    message = "Private key has already been used for a certificate"
    before = ca.stats()["invocations"]
    ca.inject("refuse", count=1, message=message)
    apply(cluster, certificate_manifest("refused", ns))

    def refused():
        obj = get(cluster, "clientcertificate", "refused", ns)
        return obj if condition(obj).get("reason") == "Refused" else None

    obj = wait_for(refused, 30, message="Ready=False Refused")
    assert condition(obj)["status"] == "False"
    assert condition(obj)["message"] == message
    assert obj["status"]["failedIssuanceAttempts"] == 1
    assert get(cluster, "secret", "refused-tls", ns) is None
    wait_for(
        lambda: ("Warning", "Refused", message) in events(cluster, ns, "refused"),
        15,
        message="a Refused warning event",
    )
    # A refusal waits for a long backoff: no retry within this test's lifetime.
    assert ca.stats()["invocations"] - before == 1


def test_issuance_recovers_by_itself_when_the_ca_comes_back(cluster, operator, ca, kube_namespace):
    ns = kube_namespace
    ca.stop()
    try:
        apply(cluster, certificate_manifest("patient", ns))

        def failing():
            obj = get(cluster, "clientcertificate", "patient", ns)
            attempts = ((obj or {}).get("status") or {}).get("failedIssuanceAttempts") or 0
            return obj if attempts >= 2 else None

        obj = wait_for(failing, 30, message="two failed attempts")
        assert condition(obj)["status"] == "False"
        assert condition(obj)["reason"] == "Failed"
        assert "TransportError" in condition(obj)["message"]
    finally:
        ca.start()
    obj = ready(cluster, ns, "patient", timeout=30)
    assert "failedIssuanceAttempts" not in obj["status"]


@pytest.mark.parametrize(
    "kind", ["throttle", "crash"], ids=["throttling is retried", "a crash is retried"]
)
def test_transient_faults_are_retried_with_one_invocation_each(
    cluster, operator, ca, kube_namespace, kind
):
    ns = kube_namespace
    before = ca.stats()["invocations"]
    ca.inject(kind, count=2)
    apply(cluster, certificate_manifest(f"retry-{kind}", ns))
    obj = ready(cluster, ns, f"retry-{kind}", timeout=30)
    assert ca.stats()["invocations"] - before == 3  # two faults, one success, nothing more
    assert "failedIssuanceAttempts" not in obj["status"]
    warnings = [e for e in events(cluster, ns, f"retry-{kind}") if e[:2] == ("Warning", "Failed")]
    assert warnings, "each failed attempt posts a Failed warning"


def test_renewal_point_brings_a_new_serial_and_a_new_key(cluster, operator, kube_namespace):
    ns = kube_namespace
    # Renew 6 seconds after issuance: renewBefore is the lifetime minus 6 s.
    apply(cluster, certificate_manifest("short", ns, lifetimeDays=1, renewBefore="23h59m54s"))
    first = ready(cluster, ns, "short")["status"]["serialNumber"]
    _, leaf1, key1, _ = secret_material(cluster, ns, "short-tls")
    renewed = ready(cluster, ns, "short", other_than_serial=first, timeout=30)
    _, leaf2, key2, _ = secret_material(cluster, ns, "short-tls")
    cluster.kubectl("delete", "clientcertificate", "short", "-n", ns, "--wait=false")
    assert leaf2.serial_number != leaf1.serial_number
    assert key_matches(leaf2, key2) and not key_matches(leaf2, key1)
    assert condition(renewed)["reason"] == "Renewed"


def test_an_unknown_issuer_waits_until_its_lambdaca_appears(
    cluster, operator, local_ca, kube_namespace
):
    ns, issuer = kube_namespace, f"later-{kube_namespace[-8:]}"
    apply(cluster, certificate_manifest("waiting", ns, issuer=issuer))

    def not_found():
        obj = get(cluster, "clientcertificate", "waiting", ns)
        return obj if condition(obj).get("reason") == "IssuerNotFound" else None

    obj = wait_for(not_found, 30, message="Ready=False IssuerNotFound")
    assert "spec.issuerRef.name" in condition(obj)["message"]
    apply(cluster, lambdaca_manifest(issuer, local_ca))
    try:
        ready(cluster, ns, "waiting", timeout=30)
        secret = get(cluster, "secret", "waiting-tls", ns)
        assert secret["metadata"]["annotations"]["clientcerts.dev/issuer"] == issuer
    finally:
        cluster.kubectl("delete", "lambdaca", issuer, "--ignore-not-found")


def test_a_lifetime_above_the_issuers_cap_is_a_condition_naming_the_field(
    cluster, operator, local_ca, kube_namespace
):
    """Admission allows long lifetimes (a CA may be deployed with a higher cap); the operator
    refuses one above its issuer's maxLifetimeDays before calling the CA, in the condition."""
    ns, issuer = kube_namespace, f"capped-{kube_namespace[-8:]}"
    apply(cluster, lambdaca_manifest(issuer, local_ca, maxLifetimeDays=90))
    try:
        apply(cluster, certificate_manifest("long", ns, issuer=issuer, lifetimeDays=400))

        def invalid():
            obj = get(cluster, "clientcertificate", "long", ns)
            return obj if condition(obj).get("reason") == "InvalidSpec" else None

        obj = wait_for(invalid, 30, message="Ready=False InvalidSpec")
        message = condition(obj)["message"]
        assert "spec.lifetimeDays" in message and "90" in message, message
        assert get(cluster, "secret", "long-tls", ns) is None
    finally:
        cluster.kubectl("delete", "lambdaca", issuer, "--ignore-not-found")


def test_the_liveness_endpoint_answers(operator):
    assert operator.healthy()
