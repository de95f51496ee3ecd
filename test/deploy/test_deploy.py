"""TrainingStack deployed into moto's server with the real CDK CLI, then destroyed.

    .venv/bin/python -m pytest -q test/deploy/test_deploy.py      # also: make test-deploy

`cdk bootstrap`, `cdk deploy TrainingStack -c createInstance=true -c runConfig=...` and
`cdk destroy` run against the emulator (testing/emulated_stack.py, which bridges the emulator's
gaps and explains each), and the resources moto implements are checked through boto3.

Then IAM is enforced (testing/iam_enforcement.py) and the stack's own roles, as CloudFormation
created them from the synthesized policies, act: the trainer role must not reach the safety
controls, the safety Lambda (bundled as deployed) does a whole pass under its role, and the image
workflow's existence check and push run under the GitHub role. A missing or an excessive
permission fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from testing import ecr_images
from testing.emulated_instance import EmulatedInstance
from testing.emulated_stack import REGION, ROOT, STACK, Deployment, EmulatedAws
from testing.safety_lambda import NodeMissingError, bundle_safety_lambda, run_safety_lambda

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
    assert "aws ssm start-session --region" in deployment.outputs["SsmSessionCommand"]


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
    assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1  # the host, not a container
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


# -- IAM enforced: the stack's own roles act ----------------------------------------------------


def denied(call) -> bool:
    """Whether the call is refused by IAM (any other error is the test's problem)."""
    try:
        call()
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code in ("AccessDenied", "AccessDeniedException", "403"):
            return True
        raise
    return False


@pytest.fixture(scope="module")
def enforced(deployment: Deployment) -> Deployment:
    deployment.client("s3").put_object(
        Bucket=deployment.outputs["DataBucketName"], Key="datasets/x/train.jsonl", Body=b"{}\n"
    )
    deployment.push_image(tag="latest", build="build-1")
    deployment.emulator.enforce_iam()
    return deployment


@pytest.fixture(scope="module")
def trainer_session(enforced: Deployment) -> boto3.Session:
    """The trainer's credentials the way the supervisor gets them: the instance role assumes the
    trainer role (identity policy and trust policy both checked)."""
    instance = enforced.role_client("sts", "InstanceRole")
    keys = instance.assume_role(
        RoleArn=enforced.role_arn("TrainerRole"), RoleSessionName="trainer-i-1"
    )["Credentials"]
    return boto3.Session(
        aws_access_key_id=keys["AccessKeyId"],
        aws_secret_access_key=keys["SecretAccessKey"],
        aws_session_token=keys["SessionToken"],
        region_name=REGION,
    )


SETTINGS_PARAMETER = f"/tuning-lab/{STACK}/run-settings"


def run_key(deployment: Deployment, name: str) -> str:
    return f"runs/{deployment.outputs['RunId']}/{name}"


def test_enforcement_refuses_what_no_policy_allows(enforced: Deployment) -> None:
    outputs = enforced.client("cloudformation")  # the admin may; a made-up key may not
    assert outputs.describe_stacks(StackName=STACK)["Stacks"]
    stranger = boto3.client(
        "s3", endpoint_url=enforced.emulator.url, region_name=REGION,
        aws_access_key_id="AKIAFAKEFAKEFAKEFAKE", aws_secret_access_key="fake",
    )  # fmt: skip
    with pytest.raises(ClientError):
        stranger.list_buckets()


def test_the_trainer_may_read_data_and_write_its_run(
    enforced: Deployment, trainer_session: boto3.Session
) -> None:
    s3 = trainer_session.client("s3", endpoint_url=enforced.emulator.url)
    outputs, data = enforced.outputs["OutputsBucketName"], enforced.outputs["DataBucketName"]
    assert s3.get_object(Bucket=data, Key="datasets/x/train.jsonl")["Body"].read() == b"{}\n"
    s3.put_object(Bucket=outputs, Key=run_key(enforced, "checkpoints/step-1/x.bin"), Body=b"w")
    s3.delete_object(Bucket=outputs, Key=run_key(enforced, "checkpoints/step-1/x.bin"))
    assert s3.list_objects_v2(Bucket=outputs, Prefix=run_key(enforced, ""))["KeyCount"] >= 0


def test_the_trainer_cannot_reach_what_the_safety_controls_rely_on(
    enforced: Deployment, trainer_session: boto3.Session
) -> None:
    url = enforced.emulator.url
    s3 = trainer_session.client("s3", endpoint_url=url)
    autoscaling = trainer_session.client("autoscaling", endpoint_url=url)
    ec2 = trainer_session.client("ec2", endpoint_url=url)
    ssm = trainer_session.client("ssm", endpoint_url=url)
    group = enforced.outputs["GpuGroupName"]
    instance = enforced.group()["Instances"][0]["InstanceId"]
    outputs = enforced.outputs["OutputsBucketName"]
    refused = {
        "write the ledger": lambda: s3.put_object(
            Bucket=outputs, Key=run_key(enforced, "ledger.json"), Body=b"{}"
        ),
        "write the lease": lambda: s3.put_object(
            Bucket=outputs, Key=run_key(enforced, "lease.json"), Body=b"{}"
        ),
        "write a safety meter": lambda: s3.put_object(
            Bucket=outputs, Key=f"safety/meters/{enforced.outputs['RunId']}.json", Body=b"{}"
        ),
        "write another run": lambda: s3.put_object(
            Bucket=outputs, Key="runs/run-other/checkpoints/x", Body=b"x"
        ),
        "write the data": lambda: s3.put_object(
            Bucket=enforced.outputs["DataBucketName"], Key="datasets/x/evil", Body=b"x"
        ),
        "set capacity": lambda: autoscaling.set_desired_capacity(
            AutoScalingGroupName=group, DesiredCapacity=2
        ),
        "detach the instance": lambda: autoscaling.detach_instances(
            AutoScalingGroupName=group, InstanceIds=[instance], ShouldDecrementDesiredCapacity=False
        ),
        "terminate an instance": lambda: ec2.terminate_instances(InstanceIds=[instance]),
        "read the run settings": lambda: ssm.get_parameter(Name=SETTINGS_PARAMETER),
    }
    assert [what for what, call in refused.items() if not denied(call)] == []


def test_the_instance_role_does_its_job_and_no_more(enforced: Deployment) -> None:
    url, session = (
        enforced.emulator.url,
        boto3.Session(**enforced.role_credentials("InstanceRole"), region_name=REGION),
    )
    s3, ssm = session.client("s3", endpoint_url=url), session.client("ssm", endpoint_url=url)
    outputs = enforced.outputs["OutputsBucketName"]
    ssm.get_parameter(Name=f"/tuning-lab/{STACK}/run-settings")
    s3.put_object(Bucket=outputs, Key=run_key(enforced, "logs/i-1/supervisor.log"), Body=b"x")
    repository = enforced.outputs["RepositoryUri"].split("/", 1)[1]
    session.client("ecr", endpoint_url=url).describe_images(
        repositoryName=repository, imageIds=[{"imageTag": "latest"}]
    )
    refused = {
        "read the data": lambda: s3.get_object(
            Bucket=enforced.outputs["DataBucketName"], Key="datasets/x/train.jsonl"
        ),
        "write a safety meter": lambda: s3.put_object(
            Bucket=outputs, Key=f"safety/meters/{enforced.outputs['RunId']}.json", Body=b"{}"
        ),
        "write another run": lambda: s3.put_object(
            Bucket=outputs, Key="runs/run-other/ledger.json", Body=b"{}"
        ),
        "delete a checkpoint": lambda: s3.delete_object(
            Bucket=outputs, Key=run_key(enforced, "checkpoints/step-1/manifest.json")
        ),
        "terminate instances": lambda: session.client("ec2", endpoint_url=url).terminate_instances(
            InstanceIds=[enforced.group()["Instances"][0]["InstanceId"]]
        ),
        "change the run settings": lambda: ssm.put_parameter(
            Name=f"/tuning-lab/{STACK}/run-settings", Value="{}", Overwrite=True
        ),
    }
    assert [what for what, call in refused.items() if not denied(call)] == []


def test_only_the_host_and_the_lambda_report_on_the_run(
    enforced: Deployment, trainer_session: boto3.Session
) -> None:
    """Progress, metrics and messages (contracts sections 11 and 12) are the supervisor's word,
    messages also the safety Lambda's; the trainer may forge none of them."""
    url, outputs = enforced.emulator.url, enforced.outputs["OutputsBucketName"]
    host = enforced.role_client("s3", "InstanceRole")
    lambda_s3 = enforced.role_client("s3", "SafetyFunctionRole")
    trainer = trainer_session.client("s3", endpoint_url=url)
    reports = ["progress.json", "metrics.json", "messages/20261201T000000.000Z-i-1-started.json"]
    for name in reports:
        host.put_object(Bucket=outputs, Key=run_key(enforced, name), Body=b"{}")
    safety_message = run_key(enforced, "messages/20261201T000001.000Z-safety-x.json")
    lambda_s3.put_object(Bucket=outputs, Key=safety_message, Body=b"{}")
    refused = {
        f"trainer writes {name}": (
            lambda name=name: trainer.put_object(
                Bucket=outputs, Key=run_key(enforced, name), Body=b"{}"
            )
        )
        for name in reports
    }
    refused["trainer deletes a message"] = lambda: trainer.delete_object(
        Bucket=outputs, Key=run_key(enforced, reports[2])
    )
    refused["the Lambda writes progress"] = lambda: lambda_s3.put_object(
        Bucket=outputs, Key=run_key(enforced, "progress.json"), Body=b"{}"
    )
    assert [what for what, call in refused.items() if not denied(call)] == []


def workflow_check(enforced: Deployment, credentials: dict, tag: str):
    """The image workflow's "does this commit's image exist" step, as its runner runs it."""
    repository = enforced.outputs["RepositoryUri"].split("/", 1)[1]
    return subprocess.run(
        [str(ROOT / ".github" / "scripts" / "image-exists.sh"), repository, tag],
        env={
            **os.environ,
            **enforced.emulator.sdk_env(credentials),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        },
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_image_workflow_checks_pushes_and_reruns_under_the_github_role(
    enforced: Deployment,
) -> None:
    github = enforced.role_credentials("GitHubImageRole")
    sha = "0123456789abcdef0123456789abcdef01234567"
    first = workflow_check(enforced, github, sha)
    assert (first.returncode, first.stdout.strip()) == (0, "false"), first.stderr
    ecr = boto3.client("ecr", endpoint_url=enforced.emulator.url, region_name=REGION, **github)
    repository = enforced.outputs["RepositoryUri"].split("/", 1)[1]
    ecr.get_authorization_token()  # what amazon-ecr-login does
    ecr_images.push_image(ecr, repository, sha, build="commit-0123456")

    rerun = workflow_check(enforced, github, sha)

    assert (rerun.returncode, rerun.stdout.strip()) == (0, "true"), rerun.stderr


def test_a_denied_existence_check_fails_the_workflow_instead_of_rebuilding(
    enforced: Deployment,
) -> None:
    done = workflow_check(enforced, enforced.role_credentials("TrainerRole"), "latest")

    assert done.returncode == 1 and done.stdout == ""
    assert "describe-images of" in done.stderr and "AccessDenied" in done.stderr


def test_the_safety_lambda_does_a_whole_pass_under_its_role(
    enforced: Deployment, tmp_path: Path
) -> None:
    try:
        bundle = bundle_safety_lambda(tmp_path / "safety-handler.js")
    except NodeMissingError as missing:
        pytest.skip(str(missing))
    run_id = enforced.outputs["RunId"]

    def one_pass() -> dict:
        return run_safety_lambda(
            bundle,
            stack_name=STACK,
            topic_arn=enforced.outputs["AlertsTopicArn"],
            outputs_bucket=enforced.outputs["OutputsBucketName"],
            region=REGION,
            env={**os.environ, **enforced.emulator.sdk_env(
                enforced.role_credentials("SafetyFunctionRole")
            )},
        )  # fmt: skip

    within = one_pass()
    assert (within["failures"], within["stopped"], len(within["kept"])) == ([], [], 1)
    s3 = enforced.client("s3")
    meter = json.loads(
        s3.get_object(
            Bucket=enforced.outputs["OutputsBucketName"], Key=f"safety/meters/{run_id}.json"
        )["Body"].read()
    )
    instance = enforced.group()["Instances"][0]["InstanceId"]
    assert list(meter["instances"]) == [instance]

    enforced.client("ec2").create_tags(
        Resources=[instance], Tags=[{"Key": "tuning-lab:max-runtime-hours", "Value": "0.00001"}]
    )
    stopped = one_pass()

    assert stopped["failures"] == []
    assert [(s["instanceId"], s["reason"]) for s in stopped["stopped"]] == [
        (instance, "max-runtime")
    ]
    assert enforced.group()["DesiredCapacity"] == 0
    ledger_object = s3.get_object(
        Bucket=enforced.outputs["OutputsBucketName"], Key=run_key(enforced, "ledger.json")
    )
    ledger = json.loads(ledger_object["Body"].read())
    assert (ledger["status"], ledger["reason"]) == ("stopped-by-safety", "max-runtime")
    messages = s3.list_objects_v2(
        Bucket=enforced.outputs["OutputsBucketName"], Prefix=run_key(enforced, "messages/")
    )
    kept = [o["Key"] for o in messages.get("Contents", [])]
    assert sum(key.endswith("-safety-stopped-by-safety.json") for key in kept) == 1


@pytest.fixture
def long_run(enforced: Deployment) -> Iterator[Deployment]:
    """The deployed run started afresh on a new instance of the group, as a redeploy would, but
    with 10,000 steps so that it is still training when it is stopped: its ledger and lease
    (ended by the safety Lambda's test above) removed, the sample data uploaded, the run
    settings' max_steps raised, the group back at 1. The settings are restored afterwards."""
    s3, ssm = enforced.client("s3"), enforced.client("ssm")
    outputs = enforced.outputs["OutputsBucketName"]
    for name in ("ledger.json", "lease.json", "control/stop-request.json"):
        s3.delete_object(Bucket=outputs, Key=run_key(enforced, name))
    for name in ("train.jsonl", "eval.jsonl"):
        s3.upload_file(
            str(ROOT / "datasets" / "sample" / name),
            enforced.outputs["DataBucketName"],
            f"datasets/sample/{name}",
        )
    saved = ssm.get_parameter(Name=SETTINGS_PARAMETER)["Parameter"]["Value"]
    settings = json.loads(saved)
    settings["runConfig"]["training"].update(max_steps=10_000, save_steps=5_000, eval_steps=5_000)
    ssm.put_parameter(
        Name=SETTINGS_PARAMETER, Value=json.dumps(settings), Type="String", Overwrite=True
    )
    enforced.client("autoscaling").set_desired_capacity(
        AutoScalingGroupName=enforced.outputs["GpuGroupName"], DesiredCapacity=1
    )
    try:
        yield enforced
    finally:
        ssm.put_parameter(Name=SETTINGS_PARAMETER, Value=saved, Type="String", Overwrite=True)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)
    return value


def test_tuning_lab_stop_ends_a_running_run_under_the_stacks_roles(
    long_run: Deployment, tmp_path: Path
) -> None:
    """`npx tuning-lab stop` from the operator's machine, and the supervisor on the instance
    with nothing but the instance role's credentials (from the fake IMDS): the role must read
    the stop request in the run's control/ prefix, or the run trains on and this times out."""
    instance = EmulatedInstance.launch(long_run, tmp_path / "instance", 1)
    ec2 = long_run.client("ec2")

    def terminate_on_shutdown() -> None:  # EC2's part: `shutdown -h now` terminates it
        wait_for(instance.shutdown_requests, timeout=300, what="the shutdown request")
        ec2.terminate_instances(InstanceIds=[instance.identity.instance_id])

    try:
        instance.boot()
        wait_for(lambda: instance.progress_step() >= 2, timeout=300, what="training steps")
        threading.Thread(target=terminate_on_shutdown, daemon=True).start()

        done = subprocess.run(
            ["node", str(ROOT / "cli" / "tuning-lab.js"), "stop", "--json"],
            cwd=ROOT, env={**os.environ, **long_run.emulator.sdk_env()},
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert instance.process.wait(timeout=120) == 0
    finally:
        instance.stop()

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["status"], report["reason"], report["desiredCapacity"]) == (
        "stopped", "operator", 0
    )  # fmt: skip
    s3, bucket = long_run.client("s3"), long_run.outputs["OutputsBucketName"]
    ledger_object = s3.get_object(Bucket=bucket, Key=run_key(long_run, "ledger.json"))
    ledger = json.loads(ledger_object["Body"].read())
    assert ledger["operatorStop"]["requestId"] == report["requested"]["requestId"]
    assert ledger["attempts"][-1]["exitCode"] == 75  # checkpointed, then exited
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=run_key(long_run, "checkpoints/"))
    manifests = [o["Key"] for o in listed.get("Contents", []) if o["Key"].endswith("manifest.json")]
    assert manifests, "no checkpoint was published before the stop"
    log = instance.supervisor_log.read_text()
    assert "AccessDenied" not in log and "reading the stop request failed" not in log


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


def test_the_ssm_command_without_an_instance_says_so(deployment: Deployment) -> None:
    """README step 6's `eval "$(out SsmSessionCommand)"` once no instance is in service (after
    `createInstance=false`), run by bash with the pinned AWS CLI against the emulator."""
    stack = deployment.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    command = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}["SsmSessionCommand"]
    env = {**os.environ, **deployment.emulator.sdk_env()}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # `aws`: the venv's

    done = subprocess.run(
        ["bash", "-c", 'eval "$0"', command],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert done.returncode == 1
    assert "is in service, so there is no shell to open" in done.stderr
    assert "--target" not in done.stderr + done.stdout


def test_destroy_removes_the_stack_and_keeps_the_data(deployment: Deployment) -> None:
    # (moto's CloudFormation cannot delete route tables: destroy() bridges that gap)
    deployment.destroy()
    assert deployment.emulator.stack_status() is None
    names = {b["Name"] for b in deployment.client("s3").list_buckets()["Buckets"]}
    assert deployment.outputs["OutputsBucketName"] in names  # RemovalPolicy.RETAIN
