"""What moto lacks for the CDK CLI's own `cdk deploy` and `cdk destroy` of TrainingStack.

    install()   # in the moto server's process, before it serves (scripts/emulator.py does)

With these bridges the README's commands (`npx cdk deploy TrainingStack`, a second deploy with
`-c createInstance=true ...`, `npx cdk destroy TrainingStack`) run unchanged against moto's
server, with nothing but AWS_ENDPOINT_URL and dummy credentials in the environment. Each bridge
makes moto answer as AWS documents it; none changes the stack. Found by running those commands
against moto 5.2.5 with aws-cdk 2.1148.1 (docs/external-names.md):

- public parameters: AWS publishes the Deep Learning AMI ids as public SSM parameters
  (`/aws/service/deeplearning/ami/...`); moto publishes only the Amazon Linux, ECS and
  global-infrastructure ones and refuses to create names under `/aws/`. Every Deep Learning AMI
  parameter resolves here to one of moto's own Amazon images, so the stack's SSM-typed AMI
  parameter resolves as on AWS (without it, CloudFormation fails with an HTTP 500).
- template URL: the CLI hands CloudFormation the template's S3 URL on the endpoint it was given
  (path-style for a loopback endpoint); moto reads such a URL path-style only for `localhost`,
  so `http://127.0.0.1:PORT/bucket/key` became "The specified bucket does not exist".
- repository names: CloudFormation names an ECR repository without RepositoryName in lower
  case; moto keeps the logical id's upper-case letters and then rejects the name.
- change sets: the CLI deploys through a change set. moto's ExecuteChangeSet leaves the stack
  without Outputs; its DeleteChangeSet of a change set that does not exist fails with an HTTP
  500 (AWS succeeds: the CLI deletes its previous change set "if it exists"); its
  DescribeChangeSet of a missing one answers ValidationError, not ChangeSetNotFound, which the
  CLI waits for.
- previous values: on an update the CLI passes `UsePreviousValue` for SSM-typed parameters,
  whose previous value on AWS is the parameter's name (ParameterValue; ResolvedValue is the AMI
  id); moto hands back the resolved AMI id and then fails to resolve it as a parameter name.
- deletion: moto's CloudFormation cannot delete route tables or VPC endpoints (no delete for
  those types), so `cdk destroy` failed on the VPC ("has dependencies and cannot be deleted")
  and left the VPC, its route tables and its S3 endpoint behind.

testing/emulated_stack.py (the demo and the deploy test) bridges some of the same gaps its own
way, by editing the synthesized template and passing `--method direct`; it works with or without
these bridges.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

# /aws/service/deeplearning/ami/<arch>/<name>/latest/ami-id (lib/ami.ts holds the one in use).
DEEP_LEARNING_AMI = re.compile(r"^/aws/service/deeplearning/ami/[^/]+/[^/]+/latest/ami-id$")
LOOPBACK_HOSTS = {"127.0.0.1", "::1"}

_installed = False


def install() -> None:
    """Teach moto (in this process) what the CDK CLI needs; idempotent."""
    global _installed
    if _installed:
        return
    _publish_deep_learning_amis()
    _read_loopback_template_urls()
    _name_repositories_in_lower_case()
    _complete_change_sets()
    _keep_parameter_names_as_previous_values()
    _delete_route_tables_and_endpoints()
    _installed = True


def _publish_deep_learning_amis() -> None:
    from moto.core.utils import utcnow
    from moto.ec2.models import ec2_backends
    from moto.ssm.models import Parameter, ParameterDict

    moto_check_loading_status = ParameterDict._check_loading_status

    def _check_loading_status(self: ParameterDict, key: str) -> None:
        moto_check_loading_status(self, key)
        name = str(key or "")
        if DEEP_LEARNING_AMI.match(name) and not dict.__contains__(self, name):
            images = ec2_backends[self.account_id][self.region_name].describe_images(
                owners=["amazon"]
            )
            dict.__getitem__(self, name).append(  # defaultdict: creates the version list
                Parameter(
                    account_id=self.account_id,
                    name=name,
                    value=images[0].id,
                    parameter_type="String",
                    description=None,
                    allowed_pattern=None,
                    keyid=None,
                    last_modified_date=utcnow(),
                    version=1,
                    data_type="aws:ec2:image",
                )
            )

    ParameterDict._check_loading_status = _check_loading_status


def _read_loopback_template_urls() -> None:
    import moto.cloudformation.models as models
    import moto.cloudformation.responses as responses
    import moto.cloudformation.utils as utils

    moto_get_stack_from_s3_url = utils.get_stack_from_s3_url

    def get_stack_from_s3_url(template_url: str, account_id: str, partition: str) -> str:
        host = urlparse(template_url).hostname
        if host in LOOPBACK_HOSTS:  # moto reads path-style URLs only on "localhost"
            template_url = template_url.replace(urlparse(template_url).netloc, "localhost", 1)
        return moto_get_stack_from_s3_url(template_url, account_id, partition)

    # Imported by name into both modules.
    models.get_stack_from_s3_url = get_stack_from_s3_url
    responses.get_stack_from_s3_url = get_stack_from_s3_url


def _name_repositories_in_lower_case() -> None:
    import moto.cloudformation.parsing as parsing

    moto_generate_resource_name = parsing.generate_resource_name

    def generate_resource_name(resource_type: str, stack_name: str, logical_id: str) -> str:
        name = moto_generate_resource_name(resource_type, stack_name, logical_id)
        return name.lower() if resource_type == "AWS::ECR::Repository" else name

    parsing.generate_resource_name = generate_resource_name


def _complete_change_sets() -> None:
    from moto.cloudformation.exceptions import CloudFormationError
    from moto.cloudformation.models import CloudFormationBackend

    class ChangeSetNotFoundError(CloudFormationError):
        code = "ChangeSetNotFoundException"  # the model's shape: ChangeSetNotFound, HTTP 404

    def exists(backend: CloudFormationBackend, name_or_arn: str) -> bool:
        return name_or_arn in backend.change_sets or any(
            change_set.change_set_name == name_or_arn for change_set in backend.change_sets.values()
        )

    moto_execute = CloudFormationBackend.execute_change_set
    moto_delete = CloudFormationBackend.delete_change_set
    moto_describe = CloudFormationBackend.describe_change_set

    def execute_change_set(
        self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None
    ) -> None:
        moto_execute(self, change_set_name, stack_name)
        change_set = moto_describe(self, change_set_name)
        stack = self.stacks[change_set.stack_id]
        stack._parse_template()  # moto sets the new template's text only
        stack.output_map = stack._create_output_map()

    def delete_change_set(self: CloudFormationBackend, change_set_name: str) -> None:
        if exists(self, change_set_name):
            moto_delete(self, change_set_name)

    def describe_change_set(self: CloudFormationBackend, change_set_name: str) -> Any:
        if not exists(self, change_set_name):
            raise ChangeSetNotFoundError(f"ChangeSet [{change_set_name}] does not exist")
        return moto_describe(self, change_set_name)

    CloudFormationBackend.execute_change_set = execute_change_set
    CloudFormationBackend.delete_change_set = delete_change_set
    CloudFormationBackend.describe_change_set = describe_change_set


def _keep_parameter_names_as_previous_values() -> None:
    from moto.cloudformation.models import Stack

    def stack_parameters(self: Stack) -> dict[str, Any]:
        # moto reads this property only for UsePreviousValue (CreateChangeSet, UpdateStack).
        resources = self.resource_map
        values = dict(resources.resolved_parameters)
        for key, slot in resources._template.get("Parameters", {}).items():
            if slot.get("Type", "").startswith("AWS::SSM::Parameter::"):
                values[key] = resources.input_parameters.get(key, slot.get("Default"))
        return values

    Stack.stack_parameters = property(stack_parameters)


def _delete_route_tables_and_endpoints() -> None:
    from moto.ec2.models.route_tables import RouteTable
    from moto.ec2.models.vpcs import VPCEndPoint

    # moto's CloudFormation deletes a resource through its delete(); a DependencyViolation (an
    # association not yet removed) is retried in its next pass, as CloudFormation waits for it.
    def delete_route_table(self: RouteTable, account_id: str, region_name: str) -> None:
        self.ec2_backend.delete_route_table(self.id)

    def delete_endpoint(self: VPCEndPoint, account_id: str, region_name: str) -> None:
        # moto removes the endpoint's route from each of its route tables, failing on one that
        # is already gone (deleted earlier in the same pass); AWS has no such order.
        tables = self.ec2_backend.route_tables
        self.route_table_ids = [table for table in self.route_table_ids if table in tables]
        self.ec2_backend.delete_vpc_endpoints([self.id])

    RouteTable.delete = delete_route_table
    VPCEndPoint.delete = delete_endpoint
