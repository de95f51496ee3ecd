"""TrainingStack deployed into moto's server with the real CDK CLI (the deploy test, the demo).

    with EmulatedAws() as aws:                      # moto on a free loopback port, CDK bootstrapped
        deployment = aws.deploy({"createInstance": "true", "runConfig": "configs/x.yaml"}, tmp)
        aws.enforce_iam()                           # from now on, calls are checked against IAM
        deployment.client("s3").list_buckets()      # boto3 as the emulator's admin
        deployment.role_credentials("InstanceRole") # a session of one of the stack's roles
        deployment.destroy()

IAM: an admin user made in moto's free window does the set-up (bootstrap, deploy, uploads,
the test's checks); once :meth:`EmulatedAws.enforce_iam` is called, everything else runs under
the stack's own roles and gets AccessDenied outside their policies (testing/iam_enforcement.py,
which also bridges moto's IAM gaps). The CDK CLI runs with the checks relaxed: it assumes the
bootstrap roles, whose trust policies moto evaluates differently from AWS.

`cdk bootstrap`, `cdk synth`, `cdk deploy` and `cdk destroy` run against the emulator
(AWS_ENDPOINT_URL, dummy credentials). Emulator gaps are bridged here, and only here:

- moto serves no public `/aws/service/...` SSM parameters and refuses to create them, and its
  CloudFormation resolves every SSM-typed parameter default before applying overrides. So the
  synthesized template's Deep Learning AMI parameter default is pointed at a parameter created
  here (holding one of moto's AMIs) before deploying that same cloud assembly.
- moto's CloudFormation derives a missing ECR RepositoryName from the logical id, upper-case
  letters included, and then rejects it; real CloudFormation generates a lower-case name. The
  repository gets a lower-case name in the template.
- moto's UpdateStack cannot reuse the previous value of an SSM-typed parameter (the CLI's
  default on update), so every deploy names the SSM parameters explicitly.
- moto's CloudFormation cannot delete route tables, so the dedicated VPC outlives the first
  `cdk destroy`; the left-over route tables are deleted and the stack destroyed again.
- a stack created by moto's ExecuteChangeSet has no Outputs, so deploys use `--method direct`.
- moto's CloudFormation finds a TemplateURL's bucket only for path-style URLs on `localhost`, so
  the CDK CLI is given http://localhost:PORT rather than 127.0.0.1.
- moto's Auto Scaling launches a mixed-instances group's members with an empty instance type and
  no lifecycle: :meth:`Deployment.instance_identity` (what the fake IMDS serves as that instance)
  takes the type from the group's first override and the market from its instances
  distribution, as EC2 would have launched it.

Every CDK CLI process runs in its own process group, killed if the caller is interrupted, so a
Ctrl-C or a failure leaves nothing running.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

from testing import ecr_images
from testing.fake_imds import InstanceIdentity, InstanceRole
from testing.iam_enforcement import AUTHORIZED, IamEnforcement, as_env, bridge_iam_gaps
from testing.moto_server import MotoServer

ROOT = Path(__file__).resolve().parents[1]
CDK = ROOT / "node_modules" / ".bin" / "cdk"
STACK = "TrainingStack"
ACCOUNT = "123456789012"  # moto's account
REGION = "us-east-1"
AMI_PARAMETER = "/tuning-lab-emulated/dlami-id"
CDK_TIMEOUT_SECONDS = 600
ROUTE_TABLE_GAP = "has dependencies and cannot be deleted"


class EmulatorError(RuntimeError):
    """Something the user can fix: the message says what went wrong and what to do."""


class CdkError(RuntimeError):
    def __init__(self, args: tuple, result: subprocess.CompletedProcess) -> None:
        super().__init__(
            f"cdk {' '.join(args[:2])} failed (exit {result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}".rstrip()
        )
        self.result = result


def run_in_own_group(
    argv: list,
    *,
    env: dict,
    cwd: Path = ROOT,
    timeout: float = CDK_TIMEOUT_SECONDS,
    stderr: int = subprocess.PIPE,
) -> subprocess.CompletedProcess:
    """``subprocess.run`` whose child and grandchildren (the CDK CLI starts node and ts-node)
    form one process group, killed whole on a timeout, Ctrl-C or any other exception.
    ``stderr=subprocess.STDOUT`` interleaves both streams in ``stdout``."""
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except BaseException:
        kill_group(process)
        raise
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def kill_group(process: subprocess.Popen, grace_seconds: float = 5) -> None:
    """SIGTERM the process group led by ``process``, SIGKILL it after ``grace_seconds``."""
    for signum, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):  # members that outlived their leader
        os.killpg(process.pid, signal.SIGKILL)


@dataclass
class Assembly:
    path: Path
    template: dict

    @property
    def ssm_parameter_overrides(self) -> list[str]:
        """``--parameters`` naming every SSM-typed parameter (moto cannot reuse them on update)."""
        return [
            arg
            for key, parameter in self.template["Parameters"].items()
            if parameter["Type"].startswith("AWS::SSM::Parameter::Value")
            for arg in ("--parameters", f"{key}={parameter['Default']}")
        ]


@dataclass
class Deployment:
    """A deployed TrainingStack: its outputs and the assembly it was deployed from."""

    emulator: EmulatedAws
    outputs: dict[str, str]
    template: dict
    assembly: Path
    # (logical id, type, physical id) of the stack's resources, read once after the deploy (moto
    # logs its CloudFormation gaps again on every listing).
    resources: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return self.emulator.cdk_env

    @property
    def session(self) -> boto3.Session:
        return self.emulator.session

    def client(self, service: str):
        return self.emulator.client(service)

    def destroy(self) -> None:
        self.emulator.destroy(self.assembly)

    def group(self) -> dict:
        """The GPU Auto Scaling group, as DescribeAutoScalingGroups returns it."""
        name = self.outputs["GpuGroupName"]
        groups = self.client("autoscaling").describe_auto_scaling_groups(
            AutoScalingGroupNames=[name]
        )["AutoScalingGroups"]
        if not groups:
            raise RuntimeError(f"the Auto Scaling group {name} does not exist")
        return groups[0]

    def role_arn(self, name: str) -> str:
        """The ARN of the stack's role whose logical id starts with ``name`` within its layer,
        e.g. ``InstanceRole``, ``TrainerRole``, ``SafetyFunctionRole``, ``GitHubImageRole``, or
        ``ExecutionRole`` (whose id goes on with its run id, lower case: one role per run)."""
        pattern = re.compile(rf"^[A-Z][A-Za-z]+{name}[0-9a-z]*[0-9A-F]{{8}}$")
        found = [
            physical
            for logical, kind, physical in self.resources
            if kind == "AWS::IAM::Role" and pattern.match(logical)
        ]
        if len(found) != 1:
            raise RuntimeError(f"expected one role {name} in the stack; found {found}")
        return f"arn:aws:iam::{ACCOUNT}:role/{found[0]}"

    def role_credentials(self, name: str) -> dict:
        """A session of the stack's role ``name`` (boto3 keyword arguments)."""
        return self.emulator.assume_role(self.role_arn(name))

    def role_client(self, service: str, name: str):
        """A boto3 client acting as the stack's role ``name``."""
        return boto3.client(
            service,
            endpoint_url=self.emulator.url,
            region_name=self.emulator.region,
            **self.role_credentials(name),
        )

    def instance_role(self) -> InstanceRole:
        """What the instance profile hands the GPU instance (the fake IMDS serves it)."""
        keys = self.role_credentials("InstanceRole")
        return InstanceRole(
            name=self.role_arn("InstanceRole").rsplit("/", 1)[1],
            access_key_id=keys["aws_access_key_id"],
            secret_access_key=keys["aws_secret_access_key"],
            session_token=keys["aws_session_token"],
        )

    def push_image(self, tag: str = "latest", build: str = "build-1") -> str:
        """A trainer image in the stack's repository, as the image workflow pushes it."""
        repository = self.outputs["RepositoryUri"].split("/", 1)[1]
        return ecr_images.push_image(self.client("ecr"), repository, tag, build)

    def instance_identity(self) -> InstanceIdentity:
        """The identity of the instance the group launched (the one in service), as IMDS on
        that instance would report it."""
        group = self.group()
        members = [i for i in group["Instances"] if i["LifecycleState"] == "InService"]
        if len(members) != 1:
            raise RuntimeError(
                f"expected one instance in service in {group['AutoScalingGroupName']}; found "
                f"{[(i['InstanceId'], i['LifecycleState']) for i in group['Instances']]}"
            )
        instance_id = members[0]["InstanceId"]
        [reservation] = self.client("ec2").describe_instances(InstanceIds=[instance_id])[
            "Reservations"
        ]
        instance = reservation["Instances"][0]
        policy = group.get("MixedInstancesPolicy", {})
        overrides = policy.get("LaunchTemplate", {}).get("Overrides", [])
        instance_type = instance.get("InstanceType") or overrides[0]["InstanceType"]
        distribution = policy.get("InstancesDistribution", {})
        on_demand = (
            distribution.get("OnDemandBaseCapacity", 0) >= 1
            or distribution.get("OnDemandPercentageAboveBaseCapacity", 100) == 100
        )
        life_cycle = instance.get("InstanceLifecycle") or ("on-demand" if on_demand else "spot")
        return InstanceIdentity(
            instance_id=instance_id,
            instance_type=instance_type,
            availability_zone=instance["Placement"]["AvailabilityZone"],
            life_cycle=life_cycle,
        )


@dataclass
class EmulatedAws:
    """moto's server with an empty, CDK-bootstrapped account, and the CDK CLI pointed at it."""

    port: int = 0
    region: str = REGION
    bootstrap_on_start: bool = True
    moto: MotoServer | None = field(default=None, init=False)
    iam: IamEnforcement | None = field(default=None, init=False)
    iam_enforced: bool = field(default=False, init=False)
    cdk_env: dict[str, str] = field(default_factory=dict, init=False)
    session: boto3.Session | None = field(default=None, init=False)

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> EmulatedAws:
        if not CDK.exists():
            raise EmulatorError(
                f"the CDK CLI is not installed ({CDK.relative_to(ROOT)} is missing): "
                "run `make install` (or `npm ci`) in the repository first."
            )
        check_port_free(self.port)
        self.moto = MotoServer(port=self.port).start()
        # moto's backends are global to the process: a second emulator in the same process (the
        # deploy test after the demo's test) would see the first one's retained resources.
        self.moto.reset()
        moto = self.moto
        bridge_iam_gaps()
        self.iam = IamEnforcement(moto.url, self.region)  # relaxed, with an admin user
        admin = self.iam.admin_env()
        self.cdk_env = {**os.environ, **moto.env(self.region), "CI": "true"}
        self.cdk_env.pop("AWS_SESSION_TOKEN")
        self.cdk_env.update(admin)
        # moto's CloudFormation finds templates only on `localhost` (module docstring).
        self.cdk_env["AWS_ENDPOINT_URL"] = moto.url.replace("127.0.0.1", "localhost")
        self.cdk_env.pop("CDK_DEFAULT_REGION", None)
        self.session = boto3.Session(**self.iam.admin_credentials, region_name=self.region)
        if self.bootstrap_on_start:
            self.bootstrap()
        return self

    def stop(self) -> None:
        if self.moto is not None:
            if self.iam is not None:
                self.iam.relax()  # moto's settings are per process: leave them as found
                usage = os.environ.get("TUNING_LAB_IAM_USAGE")
                if usage:
                    with open(usage, "a") as out:
                        out.writelines(json.dumps(call) + "\n" for call in AUTHORIZED)
                AUTHORIZED.clear()
            self.moto.stop()
            self.moto = None

    def enforce_iam(self) -> None:
        """From now on every call is checked against its caller's IAM policies."""
        assert self.iam is not None, "the emulator is not running"
        self.iam.enforce()
        self.iam_enforced = True

    @contextlib.contextmanager
    def _relaxed(self):
        """No checks for the duration (set-up the admin stands in for a service for)."""
        assert self.iam is not None, "the emulator is not running"
        self.iam.relax()
        try:
            yield
        finally:
            if self.iam_enforced:
                self.iam.enforce()

    def assume_role(self, role_arn: str) -> dict:
        """A session of ``role_arn``, handed out as its service would (trust not checked)."""
        assert self.iam is not None, "the emulator is not running"
        with self._relaxed():
            return self.iam.assume(role_arn)

    def __enter__(self) -> EmulatedAws:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self.moto is not None, "the emulator is not running"
        return self.moto.url

    def sdk_env(self, credentials: dict | None = None) -> dict[str, str]:
        """Environment variables for SDK clients and the AWS CLI: the endpoint, and the admin's
        credentials or ``credentials`` (boto3 keyword arguments; ``{}`` for none)."""
        assert self.moto is not None and self.iam is not None, "the emulator is not running"
        env = self.moto.env(self.region)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            env.pop(name)
        return {**env, **as_env(self.iam.admin_credentials if credentials is None else credentials)}

    def client(self, service: str):
        return self.session.client(service, endpoint_url=self.url)

    # -- the CDK CLI ---------------------------------------------------------------------------

    def cdk(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        with self._relaxed():
            result = run_in_own_group(
                [str(CDK), *args, "--no-notices", "--no-version-reporting"], env=self.cdk_env
            )
        if check and result.returncode != 0:
            raise CdkError(args, result)
        return result

    def bootstrap(self) -> None:
        ec2 = self.client("ec2")
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        self.client("ssm").put_parameter(
            Name=AMI_PARAMETER, Value=image, Type="String", Overwrite=True
        )
        # Its own assembly folder: the tree's cdk.out may be locked by a synth running beside it
        # ("Another CLI is currently synthing to cdk.out").
        with tempfile.TemporaryDirectory(prefix="tuning-lab-bootstrap-") as assembly:
            self.cdk("bootstrap", f"aws://{ACCOUNT}/{self.region}", "--output", assembly)

    def synth(self, context: dict[str, str], output: Path) -> Assembly:
        """``cdk synth`` into ``output``, then the template edits the module docstring explains."""
        args = [arg for key, value in context.items() for arg in ("-c", f"{key}={value}")]
        self.cdk("synth", STACK, "--quiet", "--output", str(output), *args)
        path = output / f"{STACK}.template.json"
        template = json.loads(path.read_text())
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] == "AWS::ECR::Repository":
                resource["Properties"].setdefault("RepositoryName", logical_id.lower())
        dlami = [
            p for p in template["Parameters"].values()
            if p.get("Default", "").startswith("/aws/service/deeplearning/")
        ]  # fmt: skip
        # One with the EC2 backend; none with the SageMaker backend (no launch template).
        expected = 0 if context.get("backend") == "sagemaker" else 1
        if len(dlami) != expected:
            raise RuntimeError(
                f"expected the template to resolve {expected} Deep Learning AMI parameter; found "
                f"{len(dlami)}: the AMI gap in testing/emulated_stack.py needs updating"
            )
        for parameter in dlami:
            parameter["Default"] = AMI_PARAMETER
        path.write_text(json.dumps(template))
        return Assembly(output, template)

    def deploy(self, context: dict[str, str], workdir: Path) -> Deployment:
        """Synthesize into ``workdir/<n>.cdk.out`` and deploy (create or update) that assembly."""
        workdir.mkdir(parents=True, exist_ok=True)
        number = len(list(workdir.glob("*.cdk.out")))
        assembly = self.synth(context, workdir / f"{number}.cdk.out")
        outputs_file = workdir / f"{number}.outputs.json"
        self.cdk(
            "deploy", STACK, "--app", str(assembly.path), "--require-approval", "never",
            "--method", "direct", "--outputs-file", str(outputs_file),
            *assembly.ssm_parameter_overrides,
        )  # fmt: skip
        outputs = json.loads(outputs_file.read_text())[STACK]
        listed = self.client("cloudformation").list_stack_resources(StackName=STACK)
        resources = [
            (r["LogicalResourceId"], r["ResourceType"], r["PhysicalResourceId"])
            for r in listed["StackResourceSummaries"]
        ]
        return Deployment(self, outputs, assembly.template, assembly.path, resources)

    def destroy(self, assembly: Path) -> None:
        vpcs = self._stack_vpcs()
        first = self.cdk("destroy", STACK, "--force", "--app", str(assembly), check=False)
        if first.returncode == 0:
            return
        if ROUTE_TABLE_GAP not in first.stderr:
            raise CdkError(("destroy", STACK), first)
        ec2 = self.client("ec2")
        for vpc_id in vpcs:
            delete_unassociated_route_tables(ec2, vpc_id)
        self.cdk("destroy", STACK, "--force", "--app", str(assembly))

    # -- state ---------------------------------------------------------------------------------

    def stack_status(self) -> str | None:
        """The stack's status, or None when no stack of that name exists (deleted ones are gone)."""
        summaries = self.client("cloudformation").list_stacks()["StackSummaries"]
        live = [
            s["StackStatus"]
            for s in summaries
            if s["StackName"] == STACK and s["StackStatus"] != "DELETE_COMPLETE"
        ]
        return live[0] if live else None

    def _stack_vpcs(self) -> list[str]:
        try:
            resources = self.client("cloudformation").list_stack_resources(StackName=STACK)
        except ClientError:  # no such stack
            return []
        return [
            r["PhysicalResourceId"]
            for r in resources["StackResourceSummaries"]
            if r["ResourceType"] == "AWS::EC2::VPC"
        ]


def check_port_free(port: int) -> None:
    """Fail clearly when moto's port is taken: moto's threaded server would wait forever."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As moto's server binds: a port whose last connections are still closing (TIME_WAIT,
        # just after an emulator on it stopped) is free; a listening socket still refuses it.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise EmulatorError(
                f"moto's server cannot listen on 127.0.0.1:{port} ({error.strerror}): stop what "
                "uses that port, or choose another one (0 picks a free port)."
            ) from None


def delete_unassociated_route_tables(ec2, vpc_id: str) -> None:
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])
    for table in tables["RouteTables"]:
        if not any(a.get("Main") for a in table["Associations"]):
            ec2.delete_route_table(RouteTableId=table["RouteTableId"])
