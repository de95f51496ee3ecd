"""TrainingStack with ``backend=sagemaker`` deployed into moto's server with the real CDK CLI.

    .venv/bin/python -m pytest -q test/deploy/test_deploy_sagemaker.py

What moto's CloudFormation creates is checked through boto3: no EC2 capacity, the execution role,
the job settings, the job controller and its EventBridge rule. Then IAM is enforced and the
controller, bundled as deployed, does a whole pass under its own role: it starts the run's
training job (moto's SageMaker, kept running by testing/sagemaker_jobs.py) with the execution
role and writes the ledger; a second pass starts nothing more.

What the emulator cannot show (docs/architecture.md, "The SageMaker backend"): moto's IAM does
not check ``iam:PassRole`` or identity-policy conditions (jest evaluates those in the template),
nothing fires the schedule or the rule, no container runs, and the job guard's custom resource
is answered by testing/sagemaker_jobs.py on Create (moto runs a custom resource's Lambda only in
Docker) and never run on update or delete (test/jobs-lambda.test.ts runs those in-process).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from testing.emulated_stack import REGION, STACK, Deployment, EmulatedAws
from testing.job_controller import bundle_job_controller, run_job_controller
from testing.safety_lambda import NodeMissingError

pytestmark = [
    pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning"),
]

SETTINGS = {
    "backend": "sagemaker",
    "createInstance": "true",
    "runConfig": "configs/tiny-llama-lora.yaml",
    "instanceTypes": "ml.g5.2xlarge",
    "instanceCount": "2",
    "maxRunCostUsd": "20",
}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with EmulatedAws() as emulator:
        yield emulator.deploy(SETTINGS, tmp_path_factory.mktemp("deploy-sagemaker"))


def test_the_stack_has_the_controller_and_no_ec2_capacity(deployment: Deployment) -> None:
    assert deployment.outputs["Backend"] == "sagemaker"
    assert deployment.outputs["LogGroupName"] == "/aws/sagemaker/TrainingJobs"
    assert deployment.outputs["TrainingJobPrefix"].startswith("tl-")
    kinds = {kind for _, kind, _ in deployment.resources}
    assert not kinds & {
        "AWS::AutoScaling::AutoScalingGroup",
        "AWS::EC2::LaunchTemplate",
        "AWS::EC2::VPC",
    }
    function = deployment.client("lambda").get_function(
        FunctionName=deployment.outputs["JobControllerFunctionName"]
    )["Configuration"]
    assert function["Environment"]["Variables"]["TUNING_LAB_STACK_NAME"] == STACK


def test_the_rule_matches_this_stacks_job_state_changes(deployment: Deployment) -> None:
    events = deployment.client("events")
    patterns = [
        json.loads(rule["EventPattern"])
        for rule in events.list_rules()["Rules"]
        if rule.get("EventPattern")
    ]
    assert {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Training Job State Change"],
        "detail": {"TrainingJobName": [{"prefix": deployment.outputs["TrainingJobPrefix"]}]},
    } in patterns


def test_the_job_settings_name_the_execution_role_and_the_price(deployment: Deployment) -> None:
    value = deployment.client("ssm").get_parameter(Name=f"/tuning-lab/{STACK}/job-settings")[
        "Parameter"
    ]["Value"]
    settings = json.loads(value)
    assert settings["executionRoleArn"] == deployment.role_arn("ExecutionRole")
    assert settings["imageUri"] == f"{deployment.outputs['RepositoryUri']}:latest"
    assert settings["outputUri"] == (
        f"s3://{deployment.outputs['OutputsBucketName']}/runs/{deployment.outputs['RunId']}"
    )
    assert (settings["instanceType"], settings["instanceCount"], settings["createJob"]) == (
        "ml.g5.2xlarge", 2, True,
    )  # fmt: skip
    assert settings["usdPerHour"] == 1.515


def test_the_controller_starts_the_run_under_its_own_role(
    deployment: Deployment, tmp_path: Path
) -> None:
    try:
        bundle = bundle_job_controller(tmp_path / "jobs-handler.js")
    except NodeMissingError as missing:
        pytest.skip(str(missing))
    deployment.push_image()
    function_env = deployment.client("lambda").get_function(
        FunctionName=deployment.outputs["JobControllerFunctionName"]
    )["Configuration"]["Environment"]["Variables"]
    stack_id = deployment.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0][
        "StackId"
    ]
    assert function_env["TUNING_LAB_STACK_ID"] == stack_id
    credentials = deployment.role_credentials("ControllerRole")
    deployment.emulator.enforce_iam()
    bucket = deployment.outputs["OutputsBucketName"]

    def one_pass() -> dict:
        return run_job_controller(
            bundle,
            function_env=function_env,
            region=REGION,
            env={**os.environ, **deployment.emulator.sdk_env(credentials)},
        )

    first = one_pass()
    second = one_pass()

    # <stack prefix><8 hex digits of the stack id's hash>-<run id>-a1
    job = first["started"]
    prefix, run = deployment.outputs["TrainingJobPrefix"], deployment.outputs["RunId"]
    assert re.fullmatch(rf"{re.escape(prefix)}[0-9a-f]{{8}}-{re.escape(run)}-a1", job), job
    assert first["failures"] == []
    # Every call the start made was allowed, its own stack's status included.
    assert not [line for line in first["log"] if "unknown" in line or "denied" in line.lower()]
    assert (second.get("started"), second["failures"]) == (None, [])
    described = deployment.client("sagemaker").describe_training_job(TrainingJobName=job)
    assert described["RoleArn"] == deployment.role_arn("ExecutionRole")
    assert described["ResourceConfig"]["InstanceCount"] == 2
    ledger = json.loads(
        deployment.client("s3")
        .get_object(Bucket=bucket, Key=f"runs/{deployment.outputs['RunId']}/ledger.json")["Body"]
        .read()
    )
    assert (ledger["status"], ledger["instanceId"], ledger["backend"]) == (
        "running",
        job,
        "sagemaker",
    )


def test_destroy_removes_the_stack(deployment: Deployment) -> None:
    deployment.destroy()
    assert deployment.emulator.stack_status() is None
