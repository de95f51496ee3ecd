"""The operator's stop (``npx tuning-lab stop``, docs/contracts.md section 9) as the supervisor
sees it: a stop request in the run's prefix, against moto through boto3, with the fake trainer.

    .venv/bin/python -m pytest -q runtime/tests/test_stop.py
"""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from pathlib import Path

import boto3
from harness import (
    OUTPUTS_BUCKET,
    RUN_ID,
    Background,
    build_supervisor,
    progress_step,
    wait_for,
)

from tuning_runtime import contract

STOP_KEY = f"runs/{RUN_ID}/{contract.STOP_REQUEST_NAME}"
REPO = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_SECONDS = 180


def request_stop() -> dict:
    """The stop request as `tuning-lab stop` writes it (lib/contract.ts StopRequest)."""
    request = {
        "schemaVersion": 1,
        "runId": RUN_ID,
        "requestId": uuid.uuid4().hex,
        "requestedAt": "2026-12-01T18:00:00Z",
        "requestedBy": "arn:aws:iam::123456789012:user/operator",
    }
    boto3.client("s3").put_object(
        Bucket=OUTPUTS_BUCKET, Key=STOP_KEY, Body=json.dumps(request).encode()
    )
    return request


def published_checkpoints(cloud) -> list:
    return [key for key in cloud.keys("checkpoints/") if key.endswith("/manifest.json")]


def test_stop_request_checkpoints_then_ends_the_run_as_stopped(cloud, fakes, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "train")  # trains until SIGTERM, then checkpoints
    supervisor = Background(build_supervisor(cloud, tmp_path))
    wait_for(lambda: progress_step(tmp_path) >= 2, what="training steps")

    request = request_stop()
    assert supervisor.join() == 0

    ledger = cloud.ledger()
    assert (ledger["status"], ledger["reason"]) == ("stopped", "operator")
    assert ledger["operatorStop"]["requestId"] == request["requestId"]
    assert ledger["attempts"][0]["exitCode"] == contract.EXIT_INTERRUPTED
    assert ledger["endedAt"] is not None
    assert published_checkpoints(cloud), "no checkpoint was published before the stop"
    assert cloud.statuses() == ["started", "stopped"]
    assert cloud.group()["DesiredCapacity"] == 0
    assert [args for _, args in fakes.shutdown_calls()] == ["-h now"]
    assert cloud.lease()["released"] is True


def test_stop_message_says_how_to_resume(cloud, fakes, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "train")
    supervisor = Background(build_supervisor(cloud, tmp_path))
    wait_for(lambda: progress_step(tmp_path) >= 2, what="training steps")

    request_stop()
    supervisor.join()

    stopped = cloud.messages()[-1]
    assert stopped["subject"] == f"tuning-lab {RUN_ID}: stopped"
    assert "Reason: operator" in stopped["body"]
    assert "a redeploy with the same runId resumes" in stopped["body"]


def test_a_replacement_that_boots_after_the_request_does_not_train(
    cloud, fakes, tmp_path, monkeypatch
):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "train")
    request_stop()  # e.g. while a spot replacement was still booting

    assert build_supervisor(cloud, tmp_path).run() == 0

    ledger = cloud.ledger()
    assert (ledger["status"], ledger["reason"]) == ("stopped", "operator")
    assert ledger["attempts"] == []
    assert cloud.group()["DesiredCapacity"] == 0
    assert fakes.shutdown_calls()


def test_an_honoured_request_does_not_stop_a_redeploy_of_the_run(
    cloud, fakes, tmp_path, monkeypatch
):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "train,complete")
    first = Background(build_supervisor(cloud, tmp_path / "first"))
    wait_for(lambda: progress_step(tmp_path / "first") >= 2, what="training steps")
    request_stop()
    first.join()

    # The redeploy (same runId): the request is still in S3 but already spent.
    assert build_supervisor(cloud, tmp_path / "second").run() == 0

    ledger = cloud.ledger()
    assert (ledger["status"], ledger["reason"]) == ("completed", "completed")
    assert cloud.statuses() == ["started", "stopped", "started", "completed"]


def stack_with_outputs(**outputs: str) -> None:
    """The deployed stack as `tuning-lab` reads it: its CloudFormation outputs."""
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation").create_stack(
        StackName="TrainingStack", TemplateBody=json.dumps(template)
    )


def terminate_on_shutdown(cloud, fakes) -> threading.Thread:
    """EC2's part: the instance terminates once its supervisor asks for shutdown (the fake
    shutdown command only records the request)."""

    def watch() -> None:
        wait_for(fakes.shutdown_calls, timeout=120, what="the shutdown request")
        boto3.client("ec2").terminate_instances(InstanceIds=[cloud.instance_id])

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_tuning_lab_stop_ends_a_running_run_and_reports(cloud, fakes, tmp_path, monkeypatch):
    """The operator's command (node, the AWS SDK v3 against moto) and the supervisor together."""
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "train")
    stack_with_outputs(
        OutputsBucketName=OUTPUTS_BUCKET, GpuGroupName=cloud.group_name, RunId=RUN_ID
    )
    supervisor = Background(build_supervisor(cloud, tmp_path))
    wait_for(lambda: progress_step(tmp_path) >= 2, what="training steps")
    terminate_on_shutdown(cloud, fakes)

    done = subprocess.run(
        ["node", str(REPO / "cli" / "tuning-lab.js"), "stop", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=CLI_TIMEOUT_SECONDS, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["runId"], report["status"], report["reason"]) == (RUN_ID, "stopped", "operator")
    assert report["desiredCapacity"] == 0
    assert report["instanceState"] in ("shutting-down", "terminated")
    assert supervisor.join() == 0
    ledger = cloud.ledger()
    assert ledger["operatorStop"]["requestId"] == report["requested"]["requestId"]
    assert report["lastStep"] == ledger["lastStep"] >= 2
    assert published_checkpoints(cloud)


def test_tuning_lab_stop_refuses_a_run_that_already_ended(cloud, fakes, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "complete")
    stack_with_outputs(OutputsBucketName=OUTPUTS_BUCKET, GpuGroupName=cloud.group_name)
    build_supervisor(cloud, tmp_path).run()

    done = subprocess.run(
        ["node", str(REPO / "cli" / "tuning-lab.js"), "stop", RUN_ID],
        cwd=REPO, capture_output=True, text=True, timeout=CLI_TIMEOUT_SECONDS, check=False,
    )  # fmt: skip

    assert done.returncode == 1
    assert f"run {RUN_ID} already ended (completed, completed): nothing to stop" in done.stderr
    assert STOP_KEY not in cloud.keys("control/")
