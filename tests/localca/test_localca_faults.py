"""Faults injected on demand, seen by an unmodified boto3 client."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError
from support.localca_fixtures import invoke, issue_event


def test_throttle_is_a_429_too_many_requests_then_the_next_call_succeeds(ca):
    client = ca.lambda_client()
    ca.inject("throttle")

    with pytest.raises(ClientError) as excinfo:
        invoke(client, issue_event("throttle.example.com"))
    _, payload = invoke(client, issue_event("throttle.example.com"))

    err = excinfo.value.response
    assert err["Error"]["Code"] == "TooManyRequestsException"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert err["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert payload["CertificateInfo"]["CommonName"] == "throttle.example.com"


def test_crash_fault_is_a_function_error(ca):
    ca.inject("crash")

    response, payload = invoke(ca.lambda_client(), issue_event("crash.example.com"))

    assert response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Runtime.ExitError"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        pytest.param(
            {},
            "Private key has already been used for a certificate",
            id="a refusal without a message uses a realistic default",
        ),
        pytest.param(
            {"message": "CA serverless-issuing-ca-dev not found"},
            "CA serverless-issuing-ca-dev not found",
            id="a refusal with a message",
        ),
    ],
)
def test_refuse_fault_is_a_normal_error_payload(ca, params, message):
    ca.inject("refuse", **params)

    response, payload = invoke(ca.lambda_client(), issue_event("refuse.example.com"))

    assert "FunctionError" not in response
    assert payload == {"error": message}


def test_unavailable_is_a_service_exception(ca):
    ca.inject("unavailable")

    with pytest.raises(ClientError) as excinfo:
        invoke(ca.lambda_client(), issue_event("down.example.com"))

    assert excinfo.value.response["Error"]["Code"] == "ServiceException"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500


def test_delay_longer_than_the_read_timeout_times_the_client_out(ca):
    issued_before = ca.stats()["issued"]
    ca.inject("delay", seconds=1.0)
    impatient = ca.lambda_client(
        config=Config(read_timeout=0.2, connect_timeout=2, retries={"max_attempts": 0})
    )

    with pytest.raises(ReadTimeoutError):
        invoke(impatient, issue_event("slow.example.com"))

    # Like Lambda, the CA still finishes the abandoned invocation.
    deadline = time.monotonic() + 30
    while ca.stats()["issued"] == issued_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ca.stats()["issued"] == issued_before + 1


def test_a_delay_still_issues_when_the_client_waits(ca):
    ca.inject("delay", seconds=0.05)

    _, payload = invoke(ca.lambda_client(), issue_event("wait.example.com"))

    assert payload["CertificateInfo"]["CommonName"] == "wait.example.com"


def test_clearing_faults_ends_a_delay_in_progress_and_running_counts_it(ca):
    ca.inject("delay", seconds=300)
    answers: list[dict] = []
    caller = threading.Thread(
        target=lambda: answers.append(
            invoke(ca.lambda_client(), issue_event("cleared.example.com"))[1]
        )
    )
    caller.start()
    deadline = time.monotonic() + 30
    while ca.stats()["running"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ca.stats()["running"] == 1

    ca.clear_faults()
    caller.join(timeout=30)

    assert not caller.is_alive(), "clearing the faults did not end the 300 s delay"
    assert answers[0]["CertificateInfo"]["CommonName"] == "cleared.example.com"
    assert ca.stats()["running"] == 0


def test_count_minus_one_repeats_until_cleared(ca):
    client = ca.lambda_client()
    ca.inject("throttle", count=-1)

    for _ in range(3):
        with pytest.raises(ClientError):
            invoke(client, issue_event("sticky.example.com"))
    ca.clear_faults()
    _, payload = invoke(client, issue_event("sticky.example.com"))

    assert payload["CertificateInfo"]["CommonName"] == "sticky.example.com"


def test_faults_are_consumed_in_order(ca):
    client = ca.lambda_client()
    ca.inject("refuse", count=2)
    ca.inject("crash")

    outcomes = []
    for _ in range(4):
        response, payload = invoke(client, issue_event("order.example.com"))
        outcomes.append(response.get("FunctionError") or next(iter(payload)))

    assert outcomes == ["error", "error", "Unhandled", "CertificateInfo"]


def test_stats_count_each_outcome(ca):
    client = ca.lambda_client()
    before = ca.stats()
    ca.inject("throttle")
    with pytest.raises(ClientError):
        invoke(client, issue_event("stats.example.com"))
    invoke(client, issue_event("stats.example.com"))
    invoke(client, issue_event("stats.example.com", lifetime=0))
    invoke(client, {"lifetime": 1})

    after = ca.stats()

    delta = {
        k: after[k] - before[k] for k in before if k not in ("connections", "running")
    }  # gauges
    assert delta == {
        "invocations": 4,
        "issued": 1,
        "refused": 1,
        "crashed": 1,
        "throttled": 1,
        "unavailable": 0,
        "denied": 0,
        "rejected": 0,
    }


@pytest.mark.parametrize(
    ("fault", "field"),
    [
        pytest.param({"kind": "explode"}, "kind", id="an unknown kind names the field"),
        pytest.param({"kind": "throttle", "count": 0}, "count", id="a zero count names the field"),
        pytest.param({"kind": "delay"}, "seconds", id="a delay without seconds names the field"),
    ],
)
def test_a_bad_fault_is_rejected_with_a_clear_message(ca, fault, field):
    request = urllib.request.Request(
        f"{ca.endpoint_url}/_localca/faults", data=json.dumps(fault).encode(), method="POST"
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    with pytest.raises(urllib.error.HTTPError) as excinfo:
        opener.open(request, timeout=10)

    assert excinfo.value.code == 400
    assert json.loads(excinfo.value.read())["error"].startswith(field)


def test_faults_can_be_set_at_start(local_ca_factory):
    private = local_ca_factory("--fault", '{"kind": "throttle", "count": 1}')

    with pytest.raises(ClientError) as excinfo:
        invoke(private.lambda_client(), issue_event("boot.example.com"))

    assert excinfo.value.response["Error"]["Code"] == "TooManyRequestsException"
