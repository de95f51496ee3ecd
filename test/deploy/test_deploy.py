"""TrainingStack deployed into moto's server with the real CDK CLI, then destroyed.

    .venv/bin/python -m pytest -q test/deploy        # also: make test-deploy

`cdk bootstrap`, `cdk deploy TrainingStack -c createInstance=true -c runConfig=...` and
`cdk destroy` run against the emulator (AWS_ENDPOINT_URL, dummy credentials), and the resources
moto implements are checked through boto3. Emulator gaps are bridged here, and only here:

- moto serves no public `/aws/service/...` SSM parameters and refuses to create them, and its
  CloudFormation resolves every SSM-typed parameter default before applying overrides. So the
  synthesized template's Deep Learning AMI parameter default is pointed at a parameter this test
  creates (holding one of moto's AMIs) before deploying that same cloud assembly.
- moto's CloudFormation derives a missing ECR RepositoryName from the logical id, upper-case
  letters included, and then rejects it; real CloudFormation generates a lower-case name. The
  test gives the repository a lower-case name in the template.
- moto's UpdateStack cannot reuse the previous value of an SSM-typed parameter (the CLI's
  default on update), so the update names both SSM parameters explicitly.
- moto's CloudFormation cannot delete route tables, so the dedicated VPC outlives the first
  `cdk destroy`; the test deletes the left-over route tables and destroys again.
- a stack created by moto's ExecuteChangeSet has no Outputs, so deploys use `--method direct`.
- moto's CloudFormation finds a TemplateURL's bucket only for path-style URLs on `localhost`, so
  the endpoint is given as http://localhost:PORT rather than 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from testing.moto_server import MotoServer

# moto warns for every resource type its CloudFormation skips (alarms, budgets, policies...).
# Also for the route-table gap below (its error has no shape in moto's service models).
pytestmark = [
    pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning"),
    pytest.mark.filterwarnings("ignore:Exception\\(DependencyViolationError\\):UserWarning"),
]

ROOT = Path(__file__).resolve().parents[2]
CDK = str(ROOT / "node_modules" / ".bin" / "cdk")
STACK = "TrainingStack"
ACCOUNT = "123456789012"
REGION = "us-east-1"
AMI_PARAMETER = "/tuning-lab-test/dlami-id"
SETTINGS = {
    "runConfig": "configs/tiny-llama-lora.yaml",
    "githubRepo": "acme/llm",
    "alertEmail": "me@example.com",
    "maxRunCostUsd": "20",
}


def context(**overrides: str) -> list[str]:
    return [
        arg for key, value in {**SETTINGS, **overrides}.items() for arg in ("-c", f"{key}={value}")
    ]


@dataclass
class Deployment:
    env: dict[str, str]
    outputs: dict[str, str]
    template: dict
    assembly: Path
    session: boto3.Session

    def client(self, service: str):
        return self.session.client(service, endpoint_url=self.env["AWS_ENDPOINT_URL"])


def cdk(
    env: dict[str, str], *args: str, timeout: int = 600, check: bool = True
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [CDK, *args, "--no-notices", "--no-version-reporting"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check:
        assert result.returncode == 0, f"cdk {args[0]} failed:\n{result.stdout}\n{result.stderr}"
    return result


def vpc_of(deployment: Deployment) -> str:
    resources = deployment.client("cloudformation").list_stack_resources(StackName=STACK)
    [vpc] = [
        r["PhysicalResourceId"]
        for r in resources["StackResourceSummaries"]
        if r["ResourceType"] == "AWS::EC2::VPC"
    ]
    return vpc


def delete_unassociated_route_tables(ec2, vpc_id: str) -> None:
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])
    for table in tables["RouteTables"]:
        if not any(a.get("Main") for a in table["Associations"]):
            ec2.delete_route_table(RouteTableId=table["RouteTableId"])


def bridge_emulator_gaps(assembly: Path, ami_parameter: str) -> dict:
    """Apply the two template edits the module docstring explains; return the template."""
    path = assembly / f"{STACK}.template.json"
    template = json.loads(path.read_text())
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::ECR::Repository":
            resource["Properties"].setdefault("RepositoryName", logical_id.lower())
    dlami = [
        p for p in template["Parameters"].values()
        if p.get("Default", "").startswith("/aws/service/deeplearning/")
    ]  # fmt: skip
    assert len(dlami) == 1, "the template resolves exactly one Deep Learning AMI parameter"
    dlami[0]["Default"] = ami_parameter
    path.write_text(json.dumps(template))
    return template


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    with MotoServer() as moto, tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, **moto.env(REGION), "CI": "true"}
        env["AWS_ENDPOINT_URL"] = moto.url.replace("127.0.0.1", "localhost")
        env.pop("CDK_DEFAULT_REGION", None)
        session = boto3.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            aws_session_token="testing",
            region_name=REGION,
        )
        ec2 = session.client("ec2", endpoint_url=moto.url)
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        session.client("ssm", endpoint_url=moto.url).put_parameter(
            Name=AMI_PARAMETER, Value=image, Type="String"
        )

        cdk(env, "bootstrap", f"aws://{ACCOUNT}/{REGION}")
        assembly = Path(tmp) / "cdk.out"
        cdk(
            env,
            "synth",
            STACK,
            "--quiet",
            "--output",
            str(assembly),
            *context(createInstance="true"),
        )
        template = bridge_emulator_gaps(assembly, AMI_PARAMETER)
        outputs_file = Path(tmp) / "outputs.json"
        cdk(
            env, "deploy", STACK, "--app", str(assembly), "--require-approval", "never",
            "--method", "direct", "--outputs-file", str(outputs_file),
        )  # fmt: skip
        outputs = json.loads(outputs_file.read_text())[STACK]
        yield Deployment(
            env=env, outputs=outputs, template=template, assembly=assembly, session=session
        )


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
    assembly = deployment.assembly.parent / "cdk.out.no-instance"
    cdk(
        deployment.env, "synth", STACK, "--quiet", "--output", str(assembly),
        *context(createInstance="false"),
    )  # fmt: skip
    template = bridge_emulator_gaps(assembly, AMI_PARAMETER)
    ssm_parameters = [
        arg
        for key, parameter in template["Parameters"].items()
        if parameter["Type"].startswith("AWS::SSM::Parameter::Value")
        for arg in ("--parameters", f"{key}={parameter['Default']}")
    ]
    cdk(
        deployment.env, "deploy", STACK, "--app", str(assembly), "--require-approval", "never",
        "--method", "direct", *ssm_parameters,
    )  # fmt: skip
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
    deployment.assembly = assembly  # destroy what is deployed now


def test_destroy_removes_the_stack_and_keeps_the_data(deployment: Deployment) -> None:
    vpc_id = vpc_of(deployment)
    first = cdk(
        deployment.env, "destroy", STACK, "--force", "--app", str(deployment.assembly), check=False
    )
    if first.returncode != 0:
        # moto's CloudFormation cannot delete AWS::EC2::RouteTable, so the VPC is left behind
        # with its route tables; remove those by hand and let CloudFormation finish the rest.
        assert "has dependencies and cannot be deleted" in first.stderr, first.stderr
        delete_unassociated_route_tables(deployment.client("ec2"), vpc_id)
        cdk(deployment.env, "destroy", STACK, "--force", "--app", str(deployment.assembly))
    cloudformation = deployment.client("cloudformation")
    remaining = [
        s["StackStatus"]
        for s in cloudformation.list_stacks()["StackSummaries"]
        if s["StackName"] == STACK
    ]
    assert remaining == [] or all(status == "DELETE_COMPLETE" for status in remaining)
    names = {b["Name"] for b in deployment.client("s3").list_buckets()["Buckets"]}
    assert deployment.outputs["OutputsBucketName"] in names  # RemovalPolicy.RETAIN
