"""Pure parts of a reconciliation pass: the Secret written, and the failure state read back
from status after a restart."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from certoperator.api import ANNOTATION_ISSUED_AT, ANNOTATION_SPEC_HASH, LABEL_CERTIFICATE
from certoperator.conditions import format_time
from certoperator.policy import retry_rand
from certoperator.secrets import secret_body
from certoperator.spec import parse_spec
from certoperator.status import failure_from_status
from cryptography.hazmat.primitives.asymmetric import ec
from operator_builders import ISSUING, NOW, ROOT, issued_data, pem

from cacore import renewal
from cacore.edge.client import Issuance
from cacore.response import IssuedCertificate

META = {"name": "app", "namespace": "team", "uid": "uid-9"}


def _issuance():
    key = ec.generate_private_key(ec.SECP256R1())
    _, leaf = issued_data(not_before=NOW, days=30, key=key)
    issued = IssuedCertificate(
        certificate_pem=pem(leaf),
        issuing_ca_pem=pem(ISSUING),
        root_ca_pem=pem(ROOT),
        serial=leaf.serial_number,
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        subject="CN=app.example.com",
        common_name="app.example.com",
    )
    return Issuance(key=key, certificate=issued, seconds=0.01)


def test_the_secret_is_a_controlled_tls_secret_with_template_and_facts():
    cert = parse_spec(
        {
            "commonName": "app.example.com",
            "secretName": "app-tls",
            "secretTemplate": {"labels": {"team": "a"}, "annotations": {"note": "n"}},
        }
    )
    issuance = _issuance()
    body = secret_body(META, cert, issuance, "hash-1", "prod", NOW)
    meta = body["metadata"]
    assert body["type"] == "kubernetes.io/tls"
    assert (meta["name"], meta["namespace"]) == ("app-tls", "team")
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "clientcerts.dev/v1alpha1",
            "kind": "ClientCertificate",
            "name": "app",
            "uid": "uid-9",
            "controller": True,
        }
    ]
    assert meta["labels"]["team"] == "a" and meta["labels"][LABEL_CERTIFICATE] == "app"
    assert meta["annotations"]["note"] == "n"
    assert meta["annotations"][ANNOTATION_SPEC_HASH] == "hash-1"
    assert meta["annotations"][ANNOTATION_ISSUED_AT] == format_time(NOW)
    data = {k: base64.b64decode(v) for k, v in body["data"].items()}
    assert set(data) == {"tls.crt", "tls.key", "ca.crt"}
    assert data["tls.crt"] == issuance.certificate.chain_pem
    assert data["ca.crt"] == issuance.certificate.ca_bundle_pem
    assert data["tls.key"].startswith(b"-----BEGIN PRIVATE KEY-----")


def _status(message):
    return {
        "failedIssuanceAttempts": 3,
        "lastFailureTime": format_time(NOW),
        "conditions": [
            {"type": "Issuing", "status": "True", "reason": "DoesNotExist", "message": message}
        ],
    }


@pytest.mark.parametrize(
    "status, reason, transient",
    [
        (_status("Refused: Private key has already been used"), renewal.REFUSED, False),
        (_status("Failed: TransportError: cannot reach the CA"), renewal.FAILED, True),
    ],
    ids=[
        "a refusal read back after a restart keeps its long backoff",
        "a transient failure read back keeps its exponential backoff",
    ],
)
def test_failure_state_survives_a_restart(status, reason, transient):
    failure = failure_from_status(status)
    assert failure.attempts == 3 and failure.last_failure == NOW
    assert failure.reason == reason and failure.transient is transient


def test_no_failure_in_status_means_none_restored():
    assert failure_from_status({}) is None


def test_a_retry_time_is_the_same_on_every_pass():
    failure = failure_from_status(_status("Failed: x"))
    assert retry_rand(failure) == retry_rand(failure)
    later = failure_from_status(
        {**_status("Failed: x"), "lastFailureTime": format_time(NOW + timedelta(seconds=1))}
    )
    assert retry_rand(later) != retry_rand(failure)
