"""The AWS CLI backend (what the instance uses) against moto: the same request shapes as boto3."""

from __future__ import annotations

import json

import boto3
import pytest
from harness import OUTPUTS_BUCKET, REGION

from tuning_runtime.aws import AwsCli, AwsError, _listed, check_cli_version, split_s3_uri

URI = f"s3://{OUTPUTS_BUCKET}/runs/run-1/ledger.json"


@pytest.fixture
def cli(aws_env):
    boto3.client("s3").create_bucket(Bucket=OUTPUTS_BUCKET)
    return AwsCli(REGION)


def test_an_api_call_takes_and_returns_the_apis_own_shapes(cli):
    boto3.client("ssm").put_parameter(Name="/tuning-lab/S/run-settings", Value="{}", Type="String")

    found = cli.call("ssm", "GetParameter", {"Name": "/tuning-lab/S/run-settings"})

    assert found["Parameter"]["Value"] == "{}"


def test_an_api_error_carries_its_code(cli):
    with pytest.raises(AwsError) as error:
        cli.call("ssm", "GetParameter", {"Name": "/missing"})

    assert error.value.code == "ParameterNotFound"


def test_objects_round_trip_with_their_etag(cli):
    cli.put_object(URI, b'{"a": 1}', "application/json", if_none_match=True)

    body, etag = cli.get_object(URI)

    assert json.loads(body) == {"a": 1} and etag.startswith('"')
    assert cli.object_exists(URI) and not cli.object_exists(URI + ".missing")


def test_a_missing_object_reads_as_none(cli):
    assert cli.get_object(URI) is None


def test_a_stale_etag_is_a_precondition_failure(cli):
    cli.put_object(URI, b"1", "text/plain")
    _, etag = cli.get_object(URI)
    cli.put_object(URI, b"2", "text/plain", if_match=etag)

    with pytest.raises(AwsError) as error:
        cli.put_object(URI, b"3", "text/plain", if_match=etag)

    assert error.value.code == "PreconditionFailed"
    assert cli.get_object(URI)[0] == b"2"


def test_files_upload(cli, tmp_path):
    log = tmp_path / "training.log"
    log.write_text("step 1\n")

    cli.upload_file(str(log), f"s3://{OUTPUTS_BUCKET}/runs/run-1/logs/i-1/training.log")

    got = boto3.client("s3").get_object(
        Bucket=OUTPUTS_BUCKET, Key="runs/run-1/logs/i-1/training.log"
    )
    assert got["Body"].read() == b"step 1\n"


def test_ecr_login_password_is_the_registry_token(cli):
    assert cli.ecr_password()


def test_a_missing_cli_is_an_aws_error(aws_env):
    with pytest.raises(AwsError) as error:
        AwsCli(REGION, executable="/nonexistent/aws").call("sts", "GetCallerIdentity")

    assert error.value.code == "CliUnavailable"


def test_s3_uris_split_into_bucket_and_key():
    assert split_s3_uri("s3://bucket/runs/r/x.json") == ("bucket", "runs/r/x.json")
    with pytest.raises(ValueError, match="expected an s3:// URI"):
        split_s3_uri("/tmp/x")


def test_listing_settles_whether_a_denied_key_exists(cli):
    # A role that may list only its run prefix gets 403 (not 404) for a missing key; listing
    # the exact key tells missing from present. (moto does not enforce IAM, so the 403 itself
    # is not reproduced here.)
    cli.put_object(URI + ".bak", b"{}", "application/json")
    assert not _listed(cli, URI)

    cli.put_object(URI, b"{}", "application/json")

    assert _listed(cli, URI)


@pytest.mark.parametrize(
    ("printed", "problem"),
    [
        ("aws-cli/1.44.28 Python/3.10.12 Linux/6.8.0-1044-aws botocore/1.42.38", None),
        ("aws-cli/1.36.10 Python/3.10.12 Linux/6.8 botocore/1.35.69", None),
        ("aws-cli/2.22.5 Python/3.12.6 Linux/6.8 exe/x86_64.ubuntu.22", None),
        ("aws-cli/1.36.9 Python/3.10.12 Linux/6.8 botocore/1.35.68", "AWS CLI 1.36.9 cannot"),
        ("aws-cli/2.17.34 Python/3.11.9 Linux/6.8 exe/x86_64", "install 1.36.10+ or 2.22.5+"),
        ("command not found", "cannot read the AWS CLI version"),
    ],
)
def test_a_cli_that_cannot_write_conditionally_is_named(printed, problem):
    found = check_cli_version(printed)

    assert found is None if problem is None else problem in found


def test_the_pinned_cli_writes_conditionally(cli):
    assert check_cli_version(cli.version()) is None


def test_a_conditional_write_never_falls_back_to_a_plain_one(aws_env, tmp_path):
    old_cli = tmp_path / "aws"
    old_cli.write_text(
        "#!/bin/sh\n"
        'echo "Unknown options: --if-match, abc" >&2\n'
        'echo "$@" >> "$0.calls"\n'
        "exit 252\n"
    )
    old_cli.chmod(0o755)

    with pytest.raises(AwsError, match="Unknown options"):
        AwsCli(REGION, executable=str(old_cli)).put_object(URI, b"{}", "text/plain", if_match="x")

    assert len((tmp_path / "aws.calls").read_text().splitlines()) == 1


def test_a_request_bigger_than_a_command_line_argument_goes_through(cli):
    topic = boto3.client("sns").create_topic(Name="big")["TopicArn"]
    message = "x" * 200_000  # over Linux's 128 KiB limit for one argument

    found = cli.call("sns", "Publish", {"TopicArn": topic, "Message": message})

    assert found["MessageId"]
