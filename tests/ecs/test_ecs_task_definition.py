"""The ECS task definitions and task-role policy of ecs/: botocore's own ECS model accepts them
(ParamValidator on RegisterTaskDefinition's input shape: the check the AWS CLI runs before it
sends anything), and their ECS semantics hold."""

from __future__ import annotations

import copy
import json
import re
import string

import botocore.session
import pytest
from botocore.validate import ParamValidator
from ecs_task import ECS, EXAMPLE, TASK_DEFINITIONS, container, fill, placeholders

from sidecar.settings import load

FORMS = list(TASK_DEFINITIONS.items())
IDS = list(TASK_DEFINITIONS)
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:serverless-tls-cert-dev"


@pytest.fixture(scope="module")
def register_shape():
    model = botocore.session.get_session().get_service_model("ecs")
    return model.operation_model("RegisterTaskDefinition").input_shape


def validation_errors(shape, params) -> str:
    report = ParamValidator().validate(params, shape)
    return report.generate_report() if report.has_errors() else ""


@pytest.mark.parametrize(("form", "path"), FORMS, ids=IDS)
def test_task_definition_is_accepted_by_botocores_register_task_definition_model(
    register_shape, form, path
):
    assert validation_errors(register_shape, fill(path)) == ""


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (lambda t: t["containerDefinitions"][1].update(dependOn=[]), "Unknown parameter"),
        (lambda t: t.pop("family"), 'Missing required parameter in input: "family"'),
        (lambda t: t.update(cpu=256), "Invalid type for parameter cpu"),
        (
            lambda t: t["containerDefinitions"][0].update(essential="no"),
            "Invalid type for parameter containerDefinitions[0].essential",
        ),
    ],
    ids=[
        "a misspelled dependsOn is refused",
        "a task without a family is refused",
        "a numeric task cpu is refused",
        "a string essential flag is refused",
    ],
)
def test_the_model_check_refuses_a_broken_task_definition(register_shape, mutation, expected):
    task = copy.deepcopy(fill(TASK_DEFINITIONS[IDS[0]]))
    mutation(task)
    assert expected in validation_errors(register_shape, task)


@pytest.mark.parametrize(("form", "path"), FORMS, ids=IDS)
def test_task_is_a_hardened_fargate_task_with_one_shared_task_volume(form, path):
    task = fill(path)
    assert task["networkMode"] == "awsvpc" and task["requiresCompatibilities"] == ["FARGATE"]
    # Fargate accepts 512 MiB with 0.25 vCPU; values are strings in the API.
    assert (task["cpu"], task["memory"]) == ("256", "512")
    assert task["volumes"] == [{"name": "certs"}]  # a task volume: no host path on Fargate
    sidecar, app = container(task, "cert-sidecar"), container(task, "app")
    assert sidecar["mountPoints"] == [
        {"sourceVolume": "certs", "containerPath": "/certs", "readOnly": False}
    ]
    assert app["mountPoints"] == [
        {"sourceVolume": "certs", "containerPath": "/certs", "readOnly": True}
    ]
    for c in (sidecar, app):
        assert c["user"] == "65532:65532"
        assert c["readonlyRootFilesystem"] is True
        assert c["linuxParameters"]["capabilities"]["drop"] == ["ALL"]
        assert c["logConfiguration"]["logDriver"] == "awslogs"
    assert app["essential"] is True


def test_one_shot_form_runs_once_and_the_app_waits_for_its_success():
    task = fill(TASK_DEFINITIONS[IDS[0]])
    sidecar, app = container(task, "cert-sidecar"), container(task, "app")
    assert sidecar["essential"] is False  # exiting after issuance must not stop the task
    assert sidecar["command"] == ["once"]
    assert "healthCheck" not in sidecar
    assert app["dependsOn"] == [{"containerName": "cert-sidecar", "condition": "SUCCESS"}]


def test_long_running_form_is_health_checked_and_the_app_waits_until_healthy():
    task = fill(TASK_DEFINITIONS[IDS[1]])
    sidecar, app = container(task, "cert-sidecar"), container(task, "app")
    assert sidecar["essential"] is True
    assert sidecar["command"] == ["run"]
    check = sidecar["healthCheck"]
    assert check["command"] == ["CMD", "cert-sidecar", "check"]
    # ECS limits: interval 5-300 s, timeout 2-60 s, retries 1-10, startPeriod 0-300 s.
    assert 5 <= check["interval"] <= 300 and 2 <= check["timeout"] <= 60
    assert 1 <= check["retries"] <= 10 and 0 <= check["startPeriod"] <= 300
    assert app["dependsOn"] == [{"containerName": "cert-sidecar", "condition": "HEALTHY"}]


@pytest.mark.parametrize(("form", "path"), FORMS, ids=IDS)
def test_sidecar_environment_is_accepted_by_the_sidecars_own_settings_parser(form, path):
    sidecar = container(fill(path), "cert-sidecar")
    environ = {pair["name"]: pair["value"] for pair in sidecar["environment"]}
    settings = load(sidecar["command"], environ)
    assert settings.mode == sidecar["command"][0]
    assert settings.ca.function == FUNCTION_ARN
    assert settings.request.common_name == EXAMPLE["COMMON_NAME"]
    assert str(settings.output_dir) == "/certs"
    assert settings.request.purposes == ("client_auth",)


def test_task_role_policy_allows_invoking_the_ca_function_and_nothing_else():
    policy = fill(ECS / "task-role-policy.json")
    assert policy["Version"] == "2012-10-17"
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "lambda:InvokeFunction"
    assert statement["Resource"] == FUNCTION_ARN
    assert "*" not in json.dumps(policy)
    for path in TASK_DEFINITIONS.values():
        env = container(fill(path), "cert-sidecar")["environment"]
        assert {"name": "CERT_SIDECAR_FUNCTION", "value": statement["Resource"]} in env


def test_task_role_trust_lets_only_ecs_tasks_of_the_account_assume_it():
    (statement,) = fill(ECS / "task-role-trust.json")["Statement"]
    assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == EXAMPLE["AWS_ACCOUNT_ID"]


def test_every_placeholder_is_documented_in_the_readme():
    used = set().union(*(placeholders(p) for p in ECS.glob("*.json")))
    readme = (ECS / "README.md").read_text()
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", readme))
    assert used == set(EXAMPLE)
    assert used <= documented, f"undocumented: {sorted(used - documented)}"


def test_a_missing_placeholder_value_is_an_error_not_an_empty_string():
    with pytest.raises(KeyError, match="COMMON_NAME"):
        string.Template((ECS / "task-definition-once.json").read_text()).substitute(
            {k: v for k, v in EXAMPLE.items() if k != "COMMON_NAME"}
        )
