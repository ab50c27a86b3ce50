"""With --sts-endpoint the local CA accepts the temporary credentials that STS (moto's server)
issued for a role, as Lambda accepts STS's: with their session token, correctly signed."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from support.localca_fixtures import invoke, issue_event

ROLE = "arn:aws:iam::123456789012:role/cert-issuer"


@pytest.fixture
def sts_ca(local_ca_factory, dynamodb_server):
    return local_ca_factory("--sts-endpoint", dynamodb_server)


def assumed(sts_url: str) -> dict:
    sts = boto3.client(
        "sts", endpoint_url=sts_url, region_name="us-east-1",
        aws_access_key_id="anything", aws_secret_access_key="anything",
    )  # fmt: skip
    return sts.assume_role_with_web_identity(
        RoleArn=ROLE, RoleSessionName="pod-session", WebIdentityToken="a-projected-token"
    )["Credentials"]


def client(ca, creds: dict, **overrides):
    keys = {
        "aws_access_key_id": creds["AccessKeyId"],
        "aws_secret_access_key": creds["SecretAccessKey"],
        "aws_session_token": creds["SessionToken"],
    }
    return ca.lambda_client(**{**keys, **overrides})


def code_of(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def test_temporary_credentials_from_the_sts_are_accepted(sts_ca, dynamodb_server):
    creds = assumed(dynamodb_server)
    issued_before = sts_ca.stats()["issued"]

    _, payload = invoke(client(sts_ca, creds), issue_event("irsa.example.com"))

    assert payload["CertificateInfo"]["CommonName"] == "irsa.example.com"
    assert sts_ca.stats()["issued"] == issued_before + 1
    assert creds["AccessKeyId"] in sts_ca.log_path.read_text()  # the sts_credentials line


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        pytest.param({"aws_session_token": "not-the-session-token"},
                     "UnrecognizedClientException", id="another session token"),
        pytest.param({"aws_secret_access_key": "not-the-secret"},
                     "InvalidSignatureException", id="signed with the wrong secret"),
    ],
)  # fmt: skip
def test_temporary_credentials_still_need_their_token_and_signature(
    sts_ca, dynamodb_server, overrides, code
):
    creds = assumed(dynamodb_server)
    with pytest.raises(ClientError) as excinfo:
        invoke(client(sts_ca, creds, **overrides), issue_event("irsa.example.com"))
    assert code_of(excinfo) == code


def test_without_an_sts_endpoint_temporary_credentials_are_unknown(ca, dynamodb_server):
    with pytest.raises(ClientError) as excinfo:
        invoke(client(ca, assumed(dynamodb_server)), issue_event("irsa.example.com"))
    assert code_of(excinfo) == "UnrecognizedClientException"
