"""The supervisor's test harness: an emulated AWS account (moto's server) holding the stack's
pieces (buckets, topic with an SQS inbox, launch template, Auto Scaling group with one instance,
run-settings parameter), the fake IMDSv2 answering as that instance, fakes for nvidia-smi and
shutdown, and helpers to run a supervisor and wait for what it does. Fixtures: conftest.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import boto3

RUNTIME_DIR = Path(__file__).resolve().parents[1]
if str(RUNTIME_DIR) not in sys.path:
    sys.path.insert(0, str(RUNTIME_DIR))

from testing import ecr_images  # noqa: E402
from testing.fake_imds import FakeImds, InstanceIdentity  # noqa: E402
from testing.moto_server import REGION  # noqa: E402
from testing.sns_inbox import SnsInbox  # noqa: E402

from tuning_runtime import contract  # noqa: E402
from tuning_runtime.aws import Boto3Aws  # noqa: E402
from tuning_runtime.host import Host  # noqa: E402
from tuning_runtime.imds import Imds  # noqa: E402
from tuning_runtime.launchers import LocalLauncher, TrainerJob, TrainingLog  # noqa: E402
from tuning_runtime.lease import LeaseTimings  # noqa: E402
from tuning_runtime.ledger import iso  # noqa: E402
from tuning_runtime.settings import fetch_settings_text  # noqa: E402
from tuning_runtime.supervisor import Paths, Supervisor, Timings  # noqa: E402

FAKES = Path(__file__).resolve().parent / "fakes"
FAKE_TRAINER = [sys.executable, str(FAKES / "fake_trainer.py")]
STACK_NAME = "TrainingStack"
RUN_ID = "run-test0001"
OUTPUTS_BUCKET = "tuning-outputs"
DATA_BUCKET = "tuning-data"
INSTANCE_TYPE = "g5.xlarge"
ON_DEMAND_USD_PER_HOUR = 1.006
REPOSITORY = "trainer"
IMAGE_URI = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/{REPOSITORY}:latest"
TRAINER_ROLE = "TrainingStack-TrainerRole"
# Seconds instead of minutes, so a branch runs in about a second.
FAST = Timings(
    imds_poll_seconds=0.1,
    sample_seconds=0.1,
    stop_grace_seconds=10,
    heartbeat_seconds=0.5,
    stop_poll_seconds=0.2,
    retry_delay_seconds=0.05,
    boot_retry_delays=(0.1,),
    lease=LeaseTimings(ttl_seconds=3, renew_seconds=0.5, poll_seconds=0.2, max_wait_seconds=30),
)


@dataclass
class Fakes:
    bin_dir: Path
    gpu_file: Path
    shutdown_log: Path

    def set_gpu_utilisation(self, percent: float) -> None:
        self.gpu_file.write_text(f"{percent:g}\n")

    def shutdown_calls(self) -> list:
        """(unix time, arguments) of every shutdown request."""
        if not self.shutdown_log.exists():
            return []
        calls = []
        for line in self.shutdown_log.read_text().splitlines():
            stamp, _, args = line.partition(" ")
            calls.append((float(stamp), args))
        return calls


def install_fakes(tmp_path: Path, setenv) -> Fakes:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").symlink_to(FAKES / "nvidia-smi.sh")
    setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    found = Fakes(bin_dir, tmp_path / "gpu-utilisation", tmp_path / "shutdown.log")
    setenv("FAKE_GPU_UTILISATION_FILE", str(found.gpu_file))
    setenv("FAKE_SHUTDOWN_LOG", str(found.shutdown_log))
    setenv("FAKE_TRAINER_STATE", str(tmp_path / "fake-trainer-starts"))
    return found


@dataclass
class Cloud:
    """The stack's resources in moto, and the instance the supervisor runs on."""

    group_name: str
    topic_arn: str
    inbox: SnsInbox
    instance_id: str
    imds: FakeImds
    image_digest: str
    trainer_role_arn: str
    parameter_name: str = contract.settings_parameter_name(STACK_NAME)
    output_uri: str = f"s3://{OUTPUTS_BUCKET}/runs/{RUN_ID}"

    def settings(self, **overrides: object) -> dict:
        doc = {
            "schemaVersion": 1,
            "stackName": STACK_NAME,
            "region": REGION,
            "runId": RUN_ID,
            "imageUri": IMAGE_URI,
            "trainerRoleArn": self.trainer_role_arn,
            "runConfig": {"model": {"base_model": "builtin:tiny-llama", "method": "lora"}},
            "dataRootUri": f"s3://{DATA_BUCKET}/",
            "outputUri": self.output_uri,
            "logGroupName": "/tuning-lab/TrainingStack/training",
            "topicArn": self.topic_arn,
            "maxRuntimeHours": 12,
            "maxRunCostUsd": None,
            "idleMinutes": 30,
            "maxRetries": 2,
            "debugHoldMinutes": 0,
            "onDemandUsdPerHour": {INSTANCE_TYPE: ON_DEMAND_USD_PER_HOUR},
        }
        doc.update(overrides)
        return doc

    def put_settings(self, **overrides: object) -> dict:
        doc = self.settings(**overrides)
        boto3.client("ssm").put_parameter(
            Name=self.parameter_name, Value=json.dumps(doc), Type="String", Overwrite=True
        )
        return doc

    def ledger(self) -> dict:
        key = f"runs/{RUN_ID}/{contract.LEDGER_NAME}"
        body = boto3.client("s3").get_object(Bucket=OUTPUTS_BUCKET, Key=key)["Body"].read()
        return json.loads(body)

    def has_ledger(self) -> bool:
        listed = boto3.client("s3").list_objects_v2(
            Bucket=OUTPUTS_BUCKET, Prefix=f"runs/{RUN_ID}/{contract.LEDGER_NAME}"
        )
        return listed.get("KeyCount", 0) > 0

    def keys(self, prefix: str = "") -> list:
        listed = boto3.client("s3").list_objects_v2(
            Bucket=OUTPUTS_BUCKET, Prefix=f"runs/{RUN_ID}/{prefix}"
        )
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def messages(self) -> list:
        """Every SNS message published so far: {subject, body, runId, status}."""
        return self.inbox.read()

    def statuses(self) -> list:
        return [message["status"] for message in self.messages()]

    def group(self) -> dict:
        client = boto3.client("autoscaling")
        groups = client.describe_auto_scaling_groups(AutoScalingGroupNames=[self.group_name])
        return groups["AutoScalingGroups"][0]

    def instance_state(self, instance_id: str) -> str:
        found = boto3.client("ec2").describe_instances(InstanceIds=[instance_id])
        return found["Reservations"][0]["Instances"][0]["State"]["Name"]

    def lease(self) -> dict | None:
        key = f"runs/{RUN_ID}/{contract.LEASE_NAME}"
        try:
            body = boto3.client("s3").get_object(Bucket=OUTPUTS_BUCKET, Key=key)["Body"].read()
        except boto3.client("s3").exceptions.NoSuchKey:
            return None
        return json.loads(body)

    def put_lease(self, holder: str, expires_in_seconds: float) -> None:
        """The lease as another instance's supervisor would have written it."""
        now = time.time()
        doc = {
            "schemaVersion": 1,
            "runId": RUN_ID,
            "holder": holder,
            "renewedAt": iso(now),
            "expiresAt": iso(now + expires_in_seconds),
            "released": False,
        }
        boto3.client("s3").put_object(
            Bucket=OUTPUTS_BUCKET, Key=f"runs/{RUN_ID}/{contract.LEASE_NAME}", Body=json.dumps(doc)
        )

    def second_instance(self) -> str:
        """Another instance of the stack and run, outside the group (as a stray replacement)."""
        ec2 = boto3.client("ec2")
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        tags = [
            {"Key": contract.TAG_STACK, "Value": STACK_NAME},
            {"Key": contract.TAG_RUN_ID, "Value": RUN_ID},
        ]
        found = ec2.run_instances(
            ImageId=image,
            MinCount=1,
            MaxCount=1,
            InstanceType=INSTANCE_TYPE,
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )
        return found["Instances"][0]["InstanceId"]

    def replace_instance(self) -> str:
        """EC2 reclaims the spot instance; the group launches a replacement (returned)."""
        client = boto3.client("autoscaling")
        client.terminate_instance_in_auto_scaling_group(
            InstanceId=self.instance_id, ShouldDecrementDesiredCapacity=False
        )
        (replacement,) = [i["InstanceId"] for i in self.group()["Instances"]]
        return replacement


def create_cloud(life_cycle: str = "on-demand") -> Cloud:
    s3 = boto3.client("s3")
    for bucket in (OUTPUTS_BUCKET, DATA_BUCKET):
        s3.create_bucket(Bucket=bucket)
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic_arn = sns.create_topic(Name="tuning-alerts")["TopicArn"]
    inbox = SnsInbox.subscribe(sns, sqs, topic_arn, "tuning-alerts-inbox")
    ec2 = boto3.client("ec2")
    image_id = "ami-0123456789abcdef0"  # moto does not validate AMIs unless asked to
    ec2.create_launch_template(
        LaunchTemplateName="training-template",
        LaunchTemplateData={"ImageId": image_id, "InstanceType": INSTANCE_TYPE},
    )
    group_name = "TrainingStack-GpuGroup"
    boto3.client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=group_name,
        LaunchTemplate={"LaunchTemplateName": "training-template", "Version": "$Latest"},
        MinSize=0,  # as the stack's group: the capacity alone says whether an instance runs
        MaxSize=1,
        DesiredCapacity=1,
        AvailabilityZones=[f"{REGION}a"],
        Tags=[
            {"Key": contract.TAG_STACK, "Value": STACK_NAME, "PropagateAtLaunch": True},
            {"Key": contract.TAG_RUN_ID, "Value": RUN_ID, "PropagateAtLaunch": True},
        ],
    )
    groups = boto3.client("autoscaling").describe_auto_scaling_groups()
    instance_id = groups["AutoScalingGroups"][0]["Instances"][0]["InstanceId"]
    imds = FakeImds(identity(instance_id, life_cycle)).start()
    digest = push_image(REPOSITORY, "latest", "build-1")
    role_arn = boto3.client("iam").create_role(
        RoleName=TRAINER_ROLE,
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )["Role"]["Arn"]
    cloud = Cloud(group_name, topic_arn, inbox, instance_id, imds, digest, role_arn)
    cloud.put_settings()
    return cloud


def push_image(repository: str, tag: str, build: str) -> str:
    """An image pushed to the emulated ECR as the image workflow would; returns its digest."""
    ecr = boto3.client("ecr")
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName=repository)
    return ecr_images.push_image(ecr, repository, tag, build)


def identity(instance_id: str, life_cycle: str = "on-demand") -> InstanceIdentity:
    return InstanceIdentity(
        instance_id=instance_id,
        instance_type=INSTANCE_TYPE,
        availability_zone=f"{REGION}a",
        life_cycle=life_cycle,
    )


def build_supervisor(
    cloud: Cloud,
    run_root: Path,
    trainer: list = FAKE_TRAINER,
    timings: Timings = FAST,
    stop_event: threading.Event | None = None,
    imds_url: str | None = None,
) -> Supervisor:
    """The supervisor as the CLI builds it, with the local launcher and the fake shutdown, talking
    to moto through boto3 (the CLI backend has its own tests and runs in the scenarios)."""
    aws = Boto3Aws(REGION)
    return Supervisor(
        aws=aws,
        imds=Imds(imds_url or cloud.imds.url),
        make_launcher=lambda settings, image_uri: LocalLauncher(trainer),
        host=Host(shutdown_command=(str(FAKES / "shutdown.sh"), "-h", "now"), tmux=None),
        paths=Paths(
            run_dir=str(run_root / "run"),
            training_log=str(run_root / "training.log"),
            supervisor_log=None,
        ),
        settings_source=lambda: fetch_settings_text(aws, cloud.parameter_name),
        timings=timings,
        stop_event=stop_event,
    )


class Background:
    """Runs a supervisor on a thread so the test can act while it trains."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.result: dict = {}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.result["code"] = self.supervisor.run()

    def join(self, timeout: float = 60) -> int:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the supervisor did not finish"
        return self.result["code"]


def run_local_trainer(run_dir: Path, script: str, env: dict | None = None):
    """``python -c script`` started by the local launcher as the trainer, run to its exit."""
    job = TrainerJob(str(run_dir), env or {}, "stream")
    proc = LocalLauncher([sys.executable, "-c", script]).start(
        job, TrainingLog(str(run_dir / "training.log"))
    )
    while proc.poll() is None:
        time.sleep(0.05)
    return proc


def wait_for(predicate, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def progress_step(run_root: Path) -> int:
    try:
        return json.loads((run_root / "run-progress" / "progress.json").read_text())["step"]
    except (OSError, ValueError, KeyError):
        return 0


# What the stack zips for {{RUNTIME_ARCHIVE_URI}}: runtime/ without its tests and caches.
ARCHIVE_EXCLUDES = ("tests", "__pycache__", ".ruff_cache", ".pytest_cache")


def build_runtime_archive(target: Path) -> Path:
    import zipfile

    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(RUNTIME_DIR.rglob("*")):
            relative = path.relative_to(RUNTIME_DIR)
            excluded = set(relative.parts) & set(ARCHIVE_EXCLUDES) or path.suffix == ".pyc"
            if path.is_file() and not excluded:
                archive.write(path, relative.as_posix())
    return target


def oldest_python() -> str:
    """The oldest Python >= 3.7 on this machine, to run the supervisor on an older Python than the
    AMI's (3.10), as the code promises; this venv's Python when there is no older one."""
    import glob
    import shutil
    import subprocess

    pyenv = Path.home() / ".pyenv" / "versions"
    for minor in ("3.7", "3.8", "3.9", "3.10"):
        found = [
            shutil.which(f"python{minor}"),
            *sorted(glob.glob(f"{pyenv}/{minor}.*/bin/python{minor}")),
        ]
        for candidate in filter(None, found):
            if subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
                return candidate  # (a pyenv shim exits non-zero when that version is not selected)
    return sys.executable


def supervisor_argv(
    cloud: Cloud, run_root: Path, trainer_command: str, *extra: str, python: str = sys.executable
) -> list:
    """``python -m tuning_runtime run`` as a test or the demo starts it: local launcher, fake
    shutdown, no tmux, the AWS CLI backend (as on the instance), seconds-scale timings."""
    return [
        python, "-m", "tuning_runtime", "run",
        "--settings-parameter", cloud.parameter_name,
        "--region", REGION,
        "--launcher", "local",
        "--trainer-command", trainer_command,
        "--shutdown-command", f"{FAKES / 'shutdown.sh'} -h now",
        "--no-tmux",
        "--state-dir", str(run_root),
        "--training-log", str(run_root / "training.log"),
        "--supervisor-log", str(run_root / "supervisor.log"),
        "--billing-start", "now",
        "--imds-poll-seconds", "0.5",
        "--sample-seconds", "0.5",
        "--heartbeat-seconds", "5",
        "--stop-poll-seconds", "0.5",
        "--retry-delay-seconds", "0.1",
        *extra,
    ]  # fmt: skip


def start_supervisor_process(
    cloud: Cloud,
    run_root: Path,
    trainer_command: str,
    *extra: str,
    imds_url: str | None = None,
    python: str = sys.executable,
):
    import subprocess

    run_root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds_url or cloud.imds.url}
    env["PYTHONPATH"] = os.pathsep.join([str(RUNTIME_DIR), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        supervisor_argv(cloud, run_root, trainer_command, *extra, python=python),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(run_root / "supervisor.stderr", "w"),
    )
