"""IAM enforced in the emulator: AWS calls made under a role's credentials get AccessDenied
outside that role's identity policies, as in AWS.

    enforcement = IamEnforcement(moto_url)     # in a free window: creates an admin user
    admin = enforcement.admin_credentials      # for the test's own set-up and checks
    enforcement.enforce()                      # from now on every call is checked
    keys = enforcement.assume(role_arn)        # credentials of one of the stack's roles

moto checks identity policies when its request counter passes INITIAL_NO_AUTH_ACTION_COUNT
(``/moto-api/reset-auth`` sets it at run time). Two emulator gaps are bridged here, and only
here:

- moto authorizes most services' calls against the resource ``*``, so a policy that names its
  resource (``sns:Publish`` on one topic) would be refused although AWS allows it.
  :func:`bridge_iam_gaps` gives the response classes of the services the stack's roles
  call the ARN that AWS authorizes (the topic, the parameter, the group, the instance, the
  repository, the log group and stream, the training job, the stack); S3 (bucket and key) and
  STS (the role) moto has itself.
- moto compares a trust policy's principal with the caller's ARN literally, so a role session
  (``arn:aws:sts::<account>:assumed-role/<name>/<session>``) never matched a trust policy that
  names its role (``arn:aws:iam::<account>:role/<name>``), which AWS accepts: the trainer role
  trusts the instance role this way. :func:`bridge_iam_gaps` makes moto match them.
- moto does not evaluate conditions of identity policies (``s3:prefix``, ``aws:ResourceTag``):
  a statement with a condition counts as if the condition held. Jest asserts those conditions
  in the template (test/support/iam-policy.ts evaluates them).

The admin stands in for the services that hand the stack's roles out (EC2 to the instance,
Lambda to the function, GitHub's OIDC provider to the workflow): it assumes them while the
checks are relaxed, whatever their trust policies say; what the role then may do is checked.

It also differs from AWS where S3 answers 404 for a missing key without ``s3:ListBucket``
(AWS: 403); the Lambda and the supervisor handle the 403 and have tests that inject it.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable

import boto3

ADMIN_USER = "emulator-admin"
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
NO_LIMIT = "inf"


def _arn(self, service: str, resource: str) -> str:
    return f"arn:aws:{service}:{self.region}:{self.current_account}:{resource}"


def _sns(self) -> str:
    return self._get_param("TopicArn") or self._get_param("TargetArn") or "*"


def _ssm(self) -> str:
    name = self._get_param("Name")
    if not name:
        return "*"
    return _arn(self, "ssm", f"parameter{name if name.startswith('/') else '/' + name}")


def _autoscaling(self) -> str:
    name = self._get_param("AutoScalingGroupName")
    group = self.autoscaling_backend.autoscaling_groups.get(name) if name else None
    return group.arn if group else "*"


def _ec2(self) -> str:
    # EC2 parses its query into the API's shapes (InstanceIds), other query services do not.
    instances = self._get_param("InstanceIds") or [self._get_param("InstanceId.1")]
    return _arn(self, "ec2", f"instance/{instances[0]}") if instances[0] else "*"


def _ecr(self) -> str:
    name = self._get_param("repositoryName")
    return _arn(self, "ecr", f"repository/{name}") if name else "*"


def _logs(self) -> str:
    group = self._get_param("logGroupName")
    if not group:
        return "*"
    stream = self._get_param("logStreamName")
    return _arn(self, "logs", f"log-group:{group}" + (f":log-stream:{stream}" if stream else ""))


def _cloudformation(self) -> str:
    # The stack's id (its ARN) as AWS authorizes DescribeStacks; by name, the stack of that name.
    name = self._get_param("StackName")
    if not name or name.startswith("arn:"):
        return name or "*"
    stack = next((s for s in self.cloudformation_backend.stacks.values() if s.name == name), None)
    return stack.stack_id if stack else "*"


def _sagemaker(self) -> str:
    name = self._get_param("TrainingJobName")
    return _arn(self, "sagemaker", f"training-job/{name.lower()}") if name else "*"


RESOURCES: dict[tuple[str, str], Callable] = {
    ("moto.sns.responses", "SNSResponse"): _sns,
    ("moto.ssm.responses", "SimpleSystemManagerResponse"): _ssm,
    ("moto.autoscaling.responses", "AutoScalingResponse"): _autoscaling,
    ("moto.ec2.responses", "EC2Response"): _ec2,
    ("moto.ecr.responses", "ECRResponse"): _ecr,
    ("moto.logs.responses", "LogsResponse"): _logs,
    ("moto.sagemaker.responses", "SageMakerResponse"): _sagemaker,
    ("moto.cloudformation.responses", "CloudFormationResponse"): _cloudformation,
}


# (caller ARN, action, resource) of every call the checks allowed, in this process: which of a
# role's permissions its code used. With TUNING_LAB_IAM_USAGE=<file> set, the emulator appends
# them there as JSON lines when it stops.
AUTHORIZED: list[tuple[str, str, str]] = []

_SESSION = re.compile(r"^arn:aws:sts::(\d{12}):assumed-role/([^/]+)/[^/]+$")


def bridge_iam_gaps() -> None:
    """Teach moto (in this process) the resource each call of those services is authorized on,
    and that a role's session is that role in a trust policy."""
    import importlib

    from moto.iam.access_control import IAMPolicyStatement, IAMRequestBase

    for (module, name), determine in RESOURCES.items():
        cls = getattr(importlib.import_module(module), name)
        cls._determine_resource = determine
    if getattr(IAMPolicyStatement, "_tuning_lab_bridged", False):
        return
    checked = IAMRequestBase.check_action_permitted

    def check_and_record(self, resource: str) -> None:
        checked(self, resource)
        AUTHORIZED.append((self._access_key.arn, self._action, resource))

    IAMRequestBase.check_action_permitted = check_and_record
    literal = IAMPolicyStatement._check_principal

    def check_principal(self, principal: str) -> bool:
        session = _SESSION.match(principal)
        role = f"arn:aws:iam::{session.group(1)}:role/{session.group(2)}" if session else None
        return literal(self, principal) or (role is not None and literal(self, role))

    IAMPolicyStatement._check_principal = check_principal
    IAMPolicyStatement._tuning_lab_bridged = True


class IamEnforcement:
    def __init__(self, url: str, region: str = "us-east-1") -> None:
        self.url = url
        self.region = region
        self.relax()  # the free window: set-up calls need no credentials moto knows
        iam = self._client("iam", {"aws_access_key_id": "free", "aws_secret_access_key": "free"})
        iam.create_user(UserName=ADMIN_USER)
        iam.put_user_policy(
            UserName=ADMIN_USER, PolicyName="all", PolicyDocument=json.dumps(ADMIN_POLICY)
        )
        key = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
        self.admin_credentials = {
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
        }

    def enforce(self) -> None:
        """Every call from now on is authorized against its caller's policies."""
        self._reset_auth("0")

    def relax(self) -> None:
        """No call is checked (moto's default)."""
        self._reset_auth(NO_LIMIT)

    def assume(self, role_arn: str, session_name: str = "emulated-session") -> dict:
        """Credentials of ``role_arn`` (AssumeRole by the admin), as boto3 keyword arguments."""
        found = self._client("sts", self.admin_credentials).assume_role(
            RoleArn=role_arn, RoleSessionName=session_name
        )["Credentials"]
        return {
            "aws_access_key_id": found["AccessKeyId"],
            "aws_secret_access_key": found["SecretAccessKey"],
            "aws_session_token": found["SessionToken"],
        }

    def admin_env(self) -> dict[str, str]:
        return as_env(self.admin_credentials)

    def _client(self, service: str, credentials: dict):
        return boto3.client(service, endpoint_url=self.url, region_name=self.region, **credentials)

    def _reset_auth(self, count: str) -> None:
        request = urllib.request.Request(
            f"{self.url}/moto-api/reset-auth",
            data=count.encode(),
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        urllib.request.urlopen(request, timeout=10).close()


def as_env(credentials: dict) -> dict[str, str]:
    """boto3 keyword credentials as the environment variables every SDK and the CLI read
    (``{}``: none at all, so a client looks further, e.g. at the instance metadata)."""
    if not credentials:
        return {}
    env = {
        "AWS_ACCESS_KEY_ID": credentials["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": credentials["aws_secret_access_key"],
    }
    if credentials.get("aws_session_token"):
        env["AWS_SESSION_TOKEN"] = credentials["aws_session_token"]
    return env
