"""TrainingStack deployed into moto's server with the real CDK CLI, then destroyed.

    .venv/bin/python -m pytest -q test/deploy/test_deploy.py      # also: make test-deploy

`cdk bootstrap`, `cdk deploy TrainingStack -c createInstance=true -c runConfig=...` and
`cdk destroy` run against the emulator (testing/emulated_stack.py, which bridges the emulator's
gaps and explains each), and the resources moto implements are checked through boto3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from testing.emulated_stack import ROOT, STACK, Deployment, EmulatedAws

# moto warns for every resource type its CloudFormation skips (alarms, budgets, policies...).
# Also for the route-table gap (its error has no shape in moto's service models).
pytestmark = [
    pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning"),
    pytest.mark.filterwarnings("ignore:Exception\\(DependencyViolationError\\):UserWarning"),
]

SETTINGS = {
    "runConfig": "configs/tiny-llama-lora.yaml",
    "githubRepo": "acme/llm",
    "alertEmail": "me@example.com",
    "maxRunCostUsd": "20",
}


def context(**overrides: str) -> dict[str, str]:
    return {**SETTINGS, **overrides}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with EmulatedAws() as emulator:
        yield emulator.deploy(context(createInstance="true"), tmp_path_factory.mktemp("deploy"))


def test_stack_is_created(deployment: Deployment) -> None:
    stacks = deployment.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"]
    assert stacks[0]["StackStatus"] in {"CREATE_COMPLETE", "UPDATE_COMPLETE"}


def test_outputs_name_the_resources_a_user_needs(deployment: Deployment) -> None:
    assert set(deployment.outputs) >= {
        "DataBucketName", "OutputsBucketName", "RepositoryUri", "GitHubRoleArn", "GpuGroupName",
        "SsmSessionCommand", "LogGroupName", "AlertsTopicArn", "RunId",
    }  # fmt: skip
    assert deployment.outputs["SsmSessionCommand"].startswith("aws ssm start-session")


def test_buckets_are_encrypted(deployment: Deployment) -> None:
    # moto's CloudFormation applies neither versioning nor the public access block: jest
    # asserts those in the template.
    s3 = deployment.client("s3")
    for output in ("DataBucketName", "OutputsBucketName"):
        bucket = deployment.outputs[output]
        encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
        assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == (
            "AES256"
        )


def test_repository_exists(deployment: Deployment) -> None:
    # moto's CloudFormation ignores ImageScanningConfiguration; jest asserts it in the template.
    name = deployment.outputs["RepositoryUri"].split("/", 1)[1]
    [repository] = deployment.client("ecr").describe_repositories(repositoryNames=[name])[
        "repositories"
    ]
    assert repository["repositoryUri"] == deployment.outputs["RepositoryUri"]


def test_launch_template_requires_imdsv2_and_encrypts_the_root_volume(
    deployment: Deployment,
) -> None:
    ec2 = deployment.client("ec2")
    [template] = ec2.describe_launch_templates()["LaunchTemplates"]
    data = ec2.describe_launch_template_versions(LaunchTemplateId=template["LaunchTemplateId"])[
        "LaunchTemplateVersions"
    ][0]["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 2
    [volume] = data["BlockDeviceMappings"]
    assert volume["Ebs"]["Encrypted"] is True
    assert volume["Ebs"]["VolumeType"] == "gp3"
    assert volume["Ebs"]["VolumeSize"] == 200
    assert data["InstanceInitiatedShutdownBehavior"] == "terminate"


def test_group_runs_one_instance_of_the_run(deployment: Deployment) -> None:
    name = deployment.outputs["GpuGroupName"]
    [group] = deployment.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[name]
    )["AutoScalingGroups"]
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == (0, 1, 1)
    [instance] = group["Instances"]
    reservations = deployment.client("ec2").describe_instances(
        InstanceIds=[instance["InstanceId"]]
    )["Reservations"]
    tags = {t["Key"]: t["Value"] for t in reservations[0]["Instances"][0]["Tags"]}
    assert tags["tuning-lab:stack"] == STACK
    assert tags["tuning-lab:run-id"] == deployment.outputs["RunId"]
    assert tags["tuning-lab:max-runtime-hours"] == "12"
    assert tags["tuning-lab:max-run-cost-usd"] == "20"


def test_safety_lambda_is_deployed(deployment: Deployment) -> None:
    function = deployment.client("lambda").get_function(
        FunctionName=deployment.outputs["SafetyFunctionName"]
    )["Configuration"]
    assert function["Runtime"] == "nodejs24.x"
    assert function["Timeout"] == 120
    assert function["Environment"]["Variables"]["TUNING_LAB_STACK_NAME"] == STACK


def test_alerts_topic_is_encrypted(deployment: Deployment) -> None:
    attributes = deployment.client("sns").get_topic_attributes(
        TopicArn=deployment.outputs["AlertsTopicArn"]
    )["Attributes"]
    assert attributes.get("KmsMasterKeyId")


def test_run_settings_parameter_holds_the_contract_document(deployment: Deployment) -> None:
    value = deployment.client("ssm").get_parameter(Name=f"/tuning-lab/{STACK}/run-settings")[
        "Parameter"
    ]["Value"]
    settings = json.loads(value)
    run_id = deployment.outputs["RunId"]
    assert settings["runId"] == run_id
    assert settings["outputUri"] == f"s3://{deployment.outputs['OutputsBucketName']}/runs/{run_id}"
    assert settings["dataRootUri"] == f"s3://{deployment.outputs['DataBucketName']}/"
    assert settings["topicArn"] == deployment.outputs["AlertsTopicArn"]
    assert settings["imageUri"] == f"{deployment.outputs['RepositoryUri']}:latest"
    assert settings["runConfig"]["model"]["base_model"] == "builtin:tiny-llama"
    assert settings["maxRunCostUsd"] == 20


def test_run_settings_pass_the_instance_runtime_check(
    deployment: Deployment, tmp_path: Path
) -> None:
    """The document the stack wrote is one the host supervisor accepts (contract section 1)."""
    value = deployment.client("ssm").get_parameter(Name=f"/tuning-lab/{STACK}/run-settings")[
        "Parameter"
    ]["Value"]
    document = tmp_path / "run-settings.json"
    document.write_text(value)
    result = subprocess.run(
        [sys.executable, "-m", "tuning_runtime", "check-settings", str(document)],
        cwd=ROOT / "runtime",
        env={**os.environ, "PYTHONPATH": str(ROOT / "runtime")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_deploy_without_instance_removes_it_and_keeps_the_rest(deployment: Deployment) -> None:
    updated = deployment.emulator.deploy(
        context(createInstance="false"), deployment.assembly.parent
    )
    # moto replaces the group on this update (real CloudFormation updates it in place), so the
    # group is looked up by the stack's current output.
    stack = deployment.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    group_name = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}["GpuGroupName"]
    [group] = deployment.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[group_name]
    )["AutoScalingGroups"]
    assert group["DesiredCapacity"] == 0
    running = deployment.client("ec2").describe_instances(
        Filters=[
            {"Name": "tag:tuning-lab:stack", "Values": [STACK]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )["Reservations"]
    assert running == []
    names = {b["Name"] for b in deployment.client("s3").list_buckets()["Buckets"]}
    assert deployment.outputs["DataBucketName"] in names
    deployment.assembly = updated.assembly  # destroy what is deployed now


def test_destroy_removes_the_stack_and_keeps_the_data(deployment: Deployment) -> None:
    # (moto's CloudFormation cannot delete route tables: destroy() bridges that gap)
    deployment.destroy()
    cloudformation = deployment.client("cloudformation")
    remaining = [
        s["StackStatus"]
        for s in cloudformation.list_stacks()["StackSummaries"]
        if s["StackName"] == STACK
    ]
    assert remaining == [] or all(status == "DELETE_COMPLETE" for status in remaining)
    names = {b["Name"] for b in deployment.client("s3").list_buckets()["Buckets"]}
    assert deployment.outputs["OutputsBucketName"] in names  # RemovalPolicy.RETAIN
