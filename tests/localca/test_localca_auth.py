"""SigV4 and the service errors AWS answers before the function runs."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError
from support.localca_fixtures import invoke, issue_event

FUNCTION = "serverless-tls-cert-dev"


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    err = excinfo.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        pytest.param(
            {"aws_access_key_id": "AKIAUNKNOWNKEY000000"},
            "UnrecognizedClientException",
            id="an unknown access key id is unrecognized",
        ),
        pytest.param(
            {"aws_secret_access_key": "not-the-secret"},
            "InvalidSignatureException",
            id="a wrong secret gives a bad signature",
        ),
        pytest.param(
            {"region_name": "eu-west-2"},
            "InvalidSignatureException",
            id="a signature scoped to another region is invalid",
        ),
    ],
)
def test_bad_credentials_get_403_with_the_aws_error_code(ca, overrides, code):
    client = ca.lambda_client(**overrides)

    with pytest.raises(ClientError) as excinfo:
        invoke(client, issue_event("auth.example.com"))

    assert error_of(excinfo) == (code, 403)


def test_a_session_token_is_accepted_without_validation(ca):
    client = ca.lambda_client(aws_session_token="any-session-token")

    _, payload = invoke(client, issue_event("token.example.com"))

    assert payload["CertificateInfo"]["CommonName"] == "token.example.com"


def test_an_unsigned_request_is_refused(ca):
    request = urllib.request.Request(
        f"{ca.endpoint_url}/2015-03-31/functions/{FUNCTION}/invocations",
        data=json.dumps(issue_event("unsigned.example.com")).encode(),
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    with pytest.raises(urllib.error.HTTPError) as excinfo:
        opener.open(request, timeout=10)

    assert excinfo.value.code == 403
    assert excinfo.value.headers["x-amzn-ErrorType"].startswith(
        "MissingAuthenticationTokenException"
    )


@pytest.mark.parametrize(
    "function_name",
    [
        pytest.param("serverless-tls-cert-prod", id="another function name"),
        pytest.param(
            "arn:aws:lambda:us-east-1:999999999999:function:serverless-tls-cert-dev",
            id="the right name in another account",
        ),
        pytest.param("serverless-tls-cert-dev:live", id="an alias that does not exist"),
    ],
)
def test_unknown_function_is_resource_not_found(ca, function_name):
    client = ca.lambda_client()

    with pytest.raises(ClientError) as excinfo:
        invoke(client, issue_event("nf.example.com"), function_name=function_name)

    assert error_of(excinfo) == ("ResourceNotFoundException", 404)
    assert "Function not found" in excinfo.value.response["Error"]["Message"]


def test_several_credential_pairs_and_a_denied_identity(local_ca_factory):
    private = local_ca_factory(
        "--access-key-id",
        "LOCALCASECONDKEY0000",
        "--secret-access-key",
        "second-secret",
        "--denied-access-key-id",
        "LOCALCADENIEDKEY0000",
        "--denied-secret-access-key",
        "denied-secret",
    )
    second = private.lambda_client(
        aws_access_key_id="LOCALCASECONDKEY0000", aws_secret_access_key="second-secret"
    )
    denied = private.lambda_client(
        aws_access_key_id="LOCALCADENIEDKEY0000", aws_secret_access_key="denied-secret"
    )

    _, first_payload = invoke(private.lambda_client(), issue_event("first.example.com"))
    _, second_payload = invoke(second, issue_event("second.example.com"))
    with pytest.raises(ClientError) as excinfo:
        invoke(denied, issue_event("denied.example.com"))

    assert first_payload["CertificateInfo"]["CommonName"] == "first.example.com"
    assert second_payload["CertificateInfo"]["CommonName"] == "second.example.com"
    assert error_of(excinfo) == ("AccessDeniedException", 403)
    assert "lambda:InvokeFunction" in excinfo.value.response["Error"]["Message"]


def test_denied_and_failed_requests_do_not_count_as_invocations(ca):
    before = ca.stats()
    with pytest.raises(ClientError):
        invoke(ca.lambda_client(aws_secret_access_key="nope"), issue_event("count.example.com"))

    after = ca.stats()

    assert after["invocations"] == before["invocations"]
    assert after["denied"] == before["denied"] + 1
