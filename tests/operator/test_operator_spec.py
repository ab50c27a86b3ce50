"""Spec -> request mapping, field-named errors, the spec hash, conditions and status patches."""

from __future__ import annotations

from datetime import timedelta

import pytest
from certoperator import status
from certoperator.conditions import Condition, format_time, set_condition
from certoperator.issuers import check_lifetime, resolve_issuer
from certoperator.policy import Facts, FailedAttempts
from certoperator.settings import OperatorSettings, from_env
from certoperator.spec import parse_spec, spec_hash
from operator_builders import NOW

from cacore import renewal
from cacore.errors import InvalidRequest
from cacore.keys import KeySpec
from cacore.request import San

BASE = {"commonName": "app.example.com", "secretName": "app-tls"}


def test_a_full_spec_becomes_the_core_request():
    cert = parse_spec(
        {
            **BASE,
            "sans": [
                "app.example.com",
                "IP:10.0.0.1",
                "EMAIL:team@example.com",
                "URI:https://example.org/app",
            ],
            "subject": {"organization": "Example", "country": "GB"},
            "lifetimeDays": 7,
            "purposes": ["client_auth", "server_auth"],
            "extendedKeyUsages": ["CODE_SIGNING"],
            "privateKey": {"algorithm": "RSA", "size": 3072},
            "renewBeforePercentage": 30,
            "secretTemplate": {"labels": {"team": "a"}, "annotations": {"note": "x"}},
            "issuerRef": {"name": "prod"},
        }
    )
    request = cert.request
    assert request.subject.common_name == "app.example.com"
    assert request.subject.organization == "Example" and request.subject.country == "GB"
    assert request.sans == (
        San("DNS_NAME", "app.example.com"),
        San("IP_ADDRESS", "10.0.0.1"),
        San("EMAIL_ADDRESS", "team@example.com"),
        San("URL", "https://example.org/app"),
    )
    assert request.lifetime_days == 7
    assert request.purposes == ("client_auth", "server_auth")
    assert request.extended_key_usages == ("CODE_SIGNING",)
    assert cert.key == KeySpec("RSA", 3072)
    assert cert.renewal.fraction == pytest.approx(0.7)
    assert cert.issuer == "prod" and cert.secret_name == "app-tls"
    assert cert.labels == {"team": "a"} and cert.annotations == {"note": "x"}


def test_defaults_are_a_30_day_ecdsa_p256_client_certificate():
    cert = parse_spec(BASE)
    assert cert.request.lifetime_days == 30
    assert cert.request.purposes == ("client_auth",)
    assert cert.key == KeySpec("ECDSA", 256)
    assert cert.issuer is None
    assert cert.renewal.before_expiry is None and cert.renewal.fraction is None


@pytest.mark.parametrize(
    "change, field",
    [
        ({"commonName": " "}, "spec.commonName"),
        ({"commonName": None}, "spec.commonName"),
        ({"lifetimeDays": 0}, "spec.lifetimeDays"),
        ({"lifetimeDays": 36501}, "spec.lifetimeDays"),
        ({"purposes": ["code_signing"]}, "spec.purposes"),
        ({"sans": ["ok.example.com", "not a name"]}, "spec.sans[1]"),
        ({"sans": ["IP:10.0.0.300"]}, "spec.sans[0]"),
        ({"extendedKeyUsages": ["FLYING"]}, "spec.extendedKeyUsages"),
        ({"subject": {"country": "gb"}}, "spec.subject.country"),
        ({"subject": {"colour": "blue"}}, "spec.subject.colour"),
        ({"privateKey": {"algorithm": "ECDSA", "size": 521}}, "spec.privateKey.size"),
        ({"privateKey": {"algorithm": "DSA"}}, "spec.privateKey.algorithm"),
        ({"secretName": "Bad_Name"}, "spec.secretName"),
        ({"renewBefore": "soon"}, "spec.renewBefore"),
        ({"renewBefore": "1h", "renewBeforePercentage": 10}, "spec.renewBefore"),
        ({"renewBeforePercentage": 100}, "spec.renewBeforePercentage"),
    ],
    ids=[
        "a blank common name is refused",
        "a missing common name is refused",
        "a lifetime of 0 days is refused",
        "a lifetime over the CRD ceiling of 36500 days is refused",
        "an unknown purpose is refused",
        "a malformed DNS SAN is refused with its index",
        "a malformed IP SAN is refused",
        "an unknown extended key usage is refused",
        "a lower-case country is refused",
        "an unknown subject field is refused",
        "an unsupported curve is refused",
        "an unsupported algorithm is refused",
        "a Secret name that Kubernetes refuses is refused",
        "a renewBefore that is no duration is refused",
        "renewBefore together with a percentage is refused",
        "a percentage of 100 is refused",
    ],
)
def test_invalid_specs_name_the_spec_field(change, field):
    with pytest.raises(InvalidRequest) as caught:
        parse_spec({**BASE, **change})
    assert caught.value.field == field


def test_the_hash_follows_issuance_fields_only():
    base = parse_spec(BASE)
    same = parse_spec(
        {
            **BASE,
            "secretName": "other",
            "renewBefore": "24h",
            "secretTemplate": {"labels": {"a": "b"}},
        }
    )
    assert spec_hash(base, "ca") == spec_hash(same, "ca")
    assert spec_hash(base, "ca") != spec_hash(parse_spec({**BASE, "sans": ["x.example.com"]}), "ca")
    assert spec_hash(base, "ca") != spec_hash(base, "other-ca")
    assert spec_hash(base, "ca") != spec_hash(
        parse_spec({**BASE, "privateKey": {"algorithm": "RSA"}}), "ca"
    )
    # written forms of the same SAN hash the same
    assert spec_hash(parse_spec({**BASE, "sans": ["IP:10.0.0.1"]}), "ca") == spec_hash(
        parse_spec({**BASE, "sans": ["IP_ADDRESS:10.0.0.1"]}), "ca"
    )


@pytest.mark.parametrize(
    "issuer, settings, lambdacas, expected",
    [
        (
            "prod",
            OperatorSettings(),
            {"prod": {"functionName": "serverless-tls-cert-prod", "region": "eu-west-2"}},
            "prod",
        ),
        (
            None,
            OperatorSettings(default_issuer="prod"),
            {"prod": [{"functionName": "serverless-tls-cert-prod"}]},
            "prod",
        ),
        (None, from_env({"CLIENTCERT_CA_FUNCTION": "serverless-tls-cert-dev"}), {}, "(default)"),
    ],
    ids=[
        "issuerRef names a LambdaCA",
        "the default issuer names a LambdaCA (kopf index store)",
        "the operator's default CA from its environment",
    ],
)
def test_issuer_resolution(issuer, settings, lambdacas, expected):
    cert = parse_spec({**BASE, **({"issuerRef": {"name": issuer}} if issuer else {})})
    name, config = resolve_issuer(cert, settings, lambdacas)
    assert name == expected and config.function.startswith("serverless-tls-cert-")


@pytest.mark.parametrize(
    "issuer, settings",
    [("missing", OperatorSettings()), (None, OperatorSettings())],
    ids=["a LambdaCA that does not exist is refused", "no issuer and no default is refused"],
)
def test_issuer_errors_name_issuer_ref(issuer, settings):
    cert = parse_spec({**BASE, **({"issuerRef": {"name": issuer}} if issuer else {})})
    with pytest.raises(InvalidRequest) as caught:
        resolve_issuer(cert, settings, {})
    assert caught.value.field == "spec.issuerRef.name"


@pytest.mark.parametrize(
    "env, message",
    [
        ({"CLIENTCERT_METRICS_PORT": "http"}, "CLIENTCERT_METRICS_PORT"),
        ({"CLIENTCERT_MAX_CONCURRENT_ISSUANCES": "0"}, "CLIENTCERT_MAX_CONCURRENT_ISSUANCES"),
        ({"CLIENTCERT_CA_FUNCTION": "not a function"}, "CLIENTCERT_CA_FUNCTION"),
    ],
    ids=[
        "a non-numeric port is refused",
        "zero concurrency is refused",
        "a bad function name is refused",
    ],
)
def test_bad_settings_name_the_variable(env, message):
    with pytest.raises(Exception) as caught:
        from_env(env)
    assert message in str(caught.value)


def test_set_condition_keeps_transition_time_while_status_holds():
    first = set_condition([], Condition("Ready", "False", "Failed", "down"), NOW)
    later = NOW + timedelta(minutes=5)
    same = set_condition(first, Condition("Ready", "False", "Refused", "no"), later)
    assert same[0]["lastTransitionTime"] == format_time(NOW)
    assert same[0]["reason"] == "Refused" and same[0]["message"] == "no"
    flipped = set_condition(same, Condition("Ready", "True", "Issued", "ok", 3), later)
    assert flipped[0]["lastTransitionTime"] == format_time(later)
    assert flipped[0]["observedGeneration"] == 3


def test_set_condition_leaves_other_types_alone():
    both = set_condition(
        set_condition([], Condition("Ready", "True", "r", "m"), NOW),
        Condition("Issuing", "False", "r", "m"),
        NOW,
    )
    assert [c["type"] for c in both] == ["Issuing", "Ready"]


FACTS = Facts(
    serial=42,
    not_before=NOW,
    not_after=NOW + timedelta(days=30),
    renewal_time=NOW + timedelta(days=20),
)


def test_ready_status_then_a_restart_changes_nothing():
    issued = status.ready({}, FACTS, 1, NOW, reason=renewal.ISSUED)
    assert issued["serialNumber"] == "42" and issued["notAfter"] == format_time(FACTS.not_after)
    again = status.ready(issued, FACTS, 1, NOW + timedelta(hours=1))
    assert status.merge_patch(issued, again) is None


def test_a_refusal_shows_the_ca_message_and_a_success_clears_the_failure():
    failure = FailedAttempts(
        1, NOW, renewal.REFUSED, "Private key has already been used for a certificate", "h", False
    )
    failed = status.failed(
        {}, failure, None, renewal.DOES_NOT_EXIST, NOW + timedelta(hours=1), 1, NOW
    )
    ready = next(c for c in failed["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "Refused"
    assert ready["message"] == "Private key has already been used for a certificate"
    assert failed["failedIssuanceAttempts"] == 1
    recovered = status.ready(failed, FACTS, 1, NOW, reason=renewal.ISSUED)
    patch = status.merge_patch(failed, recovered)
    assert patch["failedIssuanceAttempts"] is None and patch["lastFailureTime"] is None


def test_a_failed_renewal_keeps_ready_true():
    failure = FailedAttempts(2, NOW, renewal.FAILED, "TransportError: down", "h", True)
    failed = status.failed({}, failure, FACTS, renewal.RENEWING, NOW, 1, NOW)
    ready = next(c for c in failed["conditions"] if c["type"] == "Ready")
    issuing = next(c for c in failed["conditions"] if c["type"] == "Issuing")
    assert (
        ready["status"] == "True"
        and issuing["status"] == "True"
        and issuing["reason"] == "Renewing"
    )


@pytest.mark.parametrize(
    "lambdaca, days, refused",
    [
        ({"functionName": "serverless-tls-cert-dev"}, 365, False),
        ({"functionName": "serverless-tls-cert-dev"}, 366, True),
        ({"functionName": "serverless-tls-cert-dev", "maxLifetimeDays": 730}, 730, False),
        ({"functionName": "serverless-tls-cert-dev", "maxLifetimeDays": 730}, 731, True),
    ],
    ids=[
        "365 days fit the default cap",
        "366 days exceed the default cap of 365",
        "a LambdaCA whose CA allows 730 days takes 730",
        "and refuses 731 naming spec.lifetimeDays",
    ],
)
def test_the_lifetime_cap_is_the_issuers_setting(lambdaca, days, refused):
    cert = parse_spec(
        {
            "commonName": "a.example.com",
            "secretName": "s",
            "lifetimeDays": days,
            "issuerRef": {"name": "prod"},
        }
    )
    name, config = resolve_issuer(cert, OperatorSettings(), {"prod": lambdaca})
    if not refused:
        check_lifetime(cert, name, config)
        return
    with pytest.raises(InvalidRequest) as caught:
        check_lifetime(cert, name, config)
    assert caught.value.field == "spec.lifetimeDays"
