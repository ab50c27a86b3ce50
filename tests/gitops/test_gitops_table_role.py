"""certs-gitops reads the CA's DynamoDB table as the role given with --role-arn (or CA_ROLE_ARN),
assumed through STS, exactly as the Lambda calls are (tests/core does the same for those).
moto's server plays STS and DynamoDB."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops import commands
from gitops.layout import EnvLayout
from gitops.main import parser
from localca.store import DynamoRecorder

ROLE = "arn:aws:iam::123456789012:role/certs-gitops-reader"
TABLE = "RoletestCADev"


@pytest.fixture
def table(dynamodb_server, monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "base-access-key",
        "AWS_SECRET_ACCESS_KEY": "base-secret",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_STS": dynamodb_server,
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    # The CA's table, made the way the local CA makes it (the contract's key schema).
    client = DynamoRecorder(dynamodb_server, TABLE, "us-east-1").client
    client.put_item(
        TableName=TABLE,
        Item={"CommonName": {"S": "partner.example.com"}, "SerialNumber": {"S": "42"}},
    )
    return dynamodb_server


def _table_for(argv, endpoint):
    args = parser().parse_args(
        ["fetch", "--env", "dev", "partner.example.com", "--table", TABLE,
         "--dynamodb-endpoint-url", endpoint, *argv]
    )  # fmt: skip
    return commands._table(args, EnvLayout(Path("certs"), "dev"))


def _signing_credentials(ca_table):
    return ca_table.client._request_signer._credentials.get_frozen_credentials()


def test_table_reads_use_the_role_given_with_role_arn(table):
    ca_table = _table_for(["--role-arn", ROLE], table)
    records = ca_table.records("partner.example.com")
    assert [r.serial for r in records] == ["42"]
    credentials = _signing_credentials(ca_table)
    assert credentials.access_key != "base-access-key", "the base identity signed the query"
    assert credentials.token, "assumed-role credentials carry a session token"


def test_table_reads_use_the_role_from_ca_role_arn(table, monkeypatch):
    monkeypatch.setenv("CA_ROLE_ARN", ROLE)
    ca_table = _table_for([], table)
    assert ca_table.record("partner.example.com", "42") is not None
    assert _signing_credentials(ca_table).token


def test_without_a_role_the_base_identity_reads_the_table(table):
    ca_table = _table_for([], table)
    assert ca_table.record("partner.example.com", "42") is not None
    credentials = _signing_credentials(ca_table)
    assert credentials.access_key == "base-access-key" and not credentials.token
