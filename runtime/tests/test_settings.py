"""The run settings document (docs/contracts.md section 1): accepted as the stack writes it, and
every bad field rejected with a message naming the field, what is allowed and what was received."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from harness import RUNTIME_DIR

from tuning_runtime.settings import SettingsError, parse_settings

VALID = {
    "schemaVersion": 1,
    "stackName": "TrainingStack",
    "region": "eu-west-1",
    "runId": "run-3f2a9c1b",
    "imageUri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/trainer:latest",
    "trainerRoleArn": "arn:aws:iam::123456789012:role/TrainingStack-TrainerRole",
    "runConfig": {"model": {"base_model": "Qwen/Qwen2.5-7B-Instruct", "method": "lora"}},
    "dataRootUri": "s3://data-bucket/",
    "outputUri": "s3://outputs-bucket/runs/run-3f2a9c1b",
    "logGroupName": "/tuning-lab/training",
    "topicArn": "arn:aws:sns:eu-west-1:123456789012:alerts",
    "maxRuntimeHours": 12,
    "maxRunCostUsd": None,
    "idleMinutes": 30,
    "maxRetries": 2,
    "debugHoldMinutes": 0,
    "onDemandUsdPerHour": {"g5.xlarge": 1.006},
}


def parse(**changes: object):
    doc = {k: v for k, v in {**VALID, **changes}.items() if v is not ...}
    return parse_settings(json.dumps(doc))


def test_the_contract_example_is_accepted():
    settings = parse()

    assert settings.run_id == "run-3f2a9c1b" and settings.max_run_cost_usd is None
    assert settings.on_demand_price("g5.xlarge") == 1.006
    assert settings.run_config["model"]["method"] == "lora"


def test_cost_cap_is_optional_and_numeric_when_given():
    assert parse(maxRunCostUsd=...).max_run_cost_usd is None
    assert parse(maxRunCostUsd=25).max_run_cost_usd == 25.0


def test_output_uri_trailing_slash_is_dropped():
    assert parse(outputUri="s3://outputs-bucket/runs/run-3f2a9c1b/").output_uri.endswith("1b")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"schemaVersion": 2}, "'schemaVersion' must be 1; got 2"),
        ({"runId": "Run_1"}, "'runId' must be 3 to 63 lower-case letters, digits and '-'"),
        ({"runId": "r1"}, "'runId' must be 3 to 63 lower-case letters"),
        ({"outputUri": "/tmp/out"}, "'outputUri' must be a string starting with 's3://'"),
        ({"outputUri": "s3://b/runs/other"}, "'outputUri' must be 's3://<OutputsBucket>/runs/run-"),
        ({"dataRootUri": "data/"}, "'dataRootUri' must be a string starting with 's3://'"),
        ({"topicArn": ""}, "'topicArn' must be a string starting with 'arn:'"),
        ({"imageUri": 7}, "'imageUri' must be a non-empty string; got 7"),
        ({"runConfig": {}}, "'runConfig' must be a non-empty object"),
        ({"idleMinutes": 0}, "'idleMinutes' must be a number greater than 0; got 0"),
        ({"idleMinutes": "30"}, "'idleMinutes' must be a number greater than 0; got \"30\""),
        ({"maxRuntimeHours": True}, "'maxRuntimeHours' must be a number greater than 0; got true"),
        ({"maxRunCostUsd": -1}, "'maxRunCostUsd' must be a number greater than 0; got -1"),
        ({"maxRetries": 1.5}, "'maxRetries' must be an integer from 0 to 10; got 1.5"),
        ({"maxRetries": 11}, "'maxRetries' must be an integer from 0 to 10; got 11"),
        ({"debugHoldMinutes": -5}, "'debugHoldMinutes' must be a number from 0 to 1440; got -5"),
        ({"onDemandUsdPerHour": {}}, "'onDemandUsdPerHour' must be an object of instance type"),
        ({"onDemandUsdPerHour": {"g5.xlarge": "1"}}, "'onDemandUsdPerHour' must be an object"),
        ({"maxRuntimeHour": 2}, "unknown field(s) maxRuntimeHour; allowed: schemaVersion,"),
        ({"topicArn": ...}, "missing field(s) topicArn"),
    ],
)
def test_bad_field_is_named_with_what_is_allowed(changes, message):
    with pytest.raises(SettingsError) as error:
        parse(**changes)

    assert message in str(error.value)


def test_text_that_is_not_json_is_rejected():
    with pytest.raises(SettingsError, match="not valid JSON"):
        parse_settings("runId: run-1")


def test_check_settings_command_names_the_bad_field(tmp_path):
    bad = tmp_path / "settings.json"
    bad.write_text(json.dumps({**VALID, "idleMinutes": -1}))

    done = subprocess.run(
        [sys.executable, "-m", "tuning_runtime", "check-settings", str(bad)],
        cwd=RUNTIME_DIR,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 1
    assert "'idleMinutes' must be a number greater than 0; got -1" in done.stderr
