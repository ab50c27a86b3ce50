"""The GitOps side: records in the contract's DynamoDB table, and csr_file requests."""

from __future__ import annotations

import base64
import os
import time

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from support.localca_fixtures import csr_pem, invoke, issue_event


def test_issued_certificates_are_recorded_in_dynamodb(local_ca_factory, dynamodb_server):
    private = local_ca_factory(
        "--dynamodb-endpoint", dynamodb_server, "--dynamodb-table", "GitopsCADev"
    )
    _, payload = invoke(private.lambda_client(), issue_event("ddb.example.com"))
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=dynamodb_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )

    table = dynamodb.describe_table(TableName="GitopsCADev")["Table"]
    items = dynamodb.query(
        TableName="GitopsCADev",
        KeyConditionExpression="CommonName = :cn",
        ExpressionAttributeValues={":cn": {"S": "ddb.example.com"}},
    )["Items"]

    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {
        "CommonName": "HASH",
        "SerialNumber": "RANGE",
    }
    assert len(items) == 1
    item = items[0]
    info = payload["CertificateInfo"]
    assert item["SerialNumber"] == {"S": info["SerialNumber"]}
    assert item["Issued"] == {"S": info["Issued"]}
    assert item["Expires"] == {"S": info["Expires"]}
    pem = base64.b64decode(item["Certificate"]["B"])
    assert pem == base64.b64decode(payload["Base64Certificate"])
    assert x509.load_pem_x509_certificate(pem).serial_number == int(info["SerialNumber"])


@pytest.fixture
def gitops_ca(local_ca_factory, tmp_path):
    csr_dir = tmp_path / "csrs"
    csr_dir.mkdir()
    private = local_ca_factory("--csr-dir", str(csr_dir))
    return private, csr_dir


def test_csr_file_issues_once_then_reports_already_issued(gitops_ca):
    private, csr_dir = gitops_ca
    (csr_dir / "app.csr").write_bytes(csr_pem("gitops.example.com"))
    client = private.lambda_client()
    event = {"common_name": "gitops.example.com", "csr_file": "app.csr"}

    _, first = invoke(client, event)
    _, second = invoke(client, event)
    _, forced = invoke(client, {**event, "force_issue": True})

    assert first["CertificateInfo"]["CommonName"] == "gitops.example.com"
    assert second == {"error": "Certificate already issued"}
    assert "CertificateInfo" in forced


def test_a_csr_file_rewritten_days_later_with_the_same_key_is_still_already_issued(gitops_ca):
    # Upstream v4 `certificate_already_issued` matches the public key under the common name,
    # whatever the file's date; only force_issue skips it.
    private, csr_dir = gitops_ca
    key = ec.generate_private_key(ec.SECP256R1())
    path = csr_dir / "old.csr"
    path.write_bytes(csr_pem("olddate.example.com", key))
    client = private.lambda_client()
    event = {"common_name": "olddate.example.com", "csr_file": "old.csr"}
    invoke(client, event)

    two_days_ago = time.time() - 2 * 86400
    os.utime(path, (two_days_ago, two_days_ago))
    _, payload = invoke(client, event)

    assert payload == {"error": "Certificate already issued"}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("missing.csr", id="a file that does not exist"),
        pytest.param("../outside.csr", id="a name that escapes the csrs directory"),
    ],
)
def test_a_missing_csr_file_is_refused_naming_the_bucket(gitops_ca, name):
    private, csr_dir = gitops_ca
    (csr_dir.parent / "outside.csr").write_bytes(csr_pem("outside.example.com"))

    _, payload = invoke(private.lambda_client(), {"common_name": "x.example.com", "csr_file": name})

    assert payload == {
        "error": f"CSR file '{name}' not found in S3 bucket 'serverless-ca-internal-dev'"
    }


def test_csr_file_without_a_csr_dir_is_not_found(ca):
    _, payload = invoke(ca.lambda_client(), {"common_name": "x.example.com", "csr_file": "a.csr"})

    assert payload == {
        "error": "CSR file 'a.csr' not found in S3 bucket 'serverless-ca-internal-dev'"
    }
