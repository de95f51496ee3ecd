"""The safety guarantees (DESIGN.md section 4) end to end: the supervisor CLI in its own process,
the REAL trainer CLI (``python -m tuning_trainer``) on CPU with builtin:tiny-llama standing in for
the container (the launcher seam), moto for S3/SNS/EC2/Auto Scaling, the fake IMDSv2, and fakes
for nvidia-smi and shutdown.

    .venv/bin/python -m pytest -q runtime/tests/test_scenarios.py
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import sys
import time
from pathlib import Path

import boto3
import pytest
import yaml
from harness import (
    DATA_BUCKET,
    OUTPUTS_BUCKET,
    RUN_ID,
    STACK_NAME,
    FakeImds,
    identity,
    progress_step,
    start_supervisor_process,
    wait_for,
)
from testing.moto_server import REGION
from testing.safety_lambda import NodeMissingError, bundle_safety_lambda
from testing.safety_lambda import run_safety_lambda as run_safety_lambda_bundle

from tuning_runtime import contract
from tuning_runtime.ledger import parse_iso

REPO = Path(__file__).resolve().parents[2]
TRAINER = shlex.join([sys.executable, "-m", "tuning_trainer"])
TWO_RANKS = f"env TUNING_NPROC_PER_NODE=2 {TRAINER}"
FINISH_BOUND_SECONDS = 60
TRAINER_TIMEOUT_SECONDS = 300


def run_config(max_steps: int, save_steps: int, train: str = "datasets/sample/train.jsonl"):
    """configs/tiny-llama-lora.yaml as the stack passes it (runConfig), shortened for a test."""
    config = yaml.safe_load((REPO / "configs" / "tiny-llama-lora.yaml").read_text())
    del config["data"]["root"], config["data"]["eval"], config["training"]["eval_steps"]
    config["data"]["train"] = train
    config["training"].update(max_steps=max_steps, save_steps=save_steps, logging_steps=1)
    return config


def upload_dataset() -> None:
    for name in ("train.jsonl", "eval.jsonl"):
        source = REPO / "datasets" / "sample" / name
        boto3.client("s3").upload_file(str(source), DATA_BUCKET, f"datasets/sample/{name}")


@pytest.fixture
def processes():
    """Supervisor processes started by a test; none outlives it."""
    started: list = []
    yield started
    for process in started:
        if process.poll() is None:  # a failed test: stop its trainer (own session) and itself
            for pid in child_pids(process.pid):
                os.killpg(pid, signal.SIGKILL)
            process.kill()
            process.wait(timeout=30)


def supervise(processes, cloud, run_root: Path, trainer: str = TRAINER, *extra: str, imds=None):
    process = start_supervisor_process(cloud, run_root, trainer, *extra, imds_url=imds)
    processes.append(process)
    return process


def outcome(ledger: dict) -> tuple:
    return ledger["status"], ledger["reason"]


def shutdown_delay(fakes, ledger: dict) -> float:
    """Seconds from the trainer's exit (its attempt's end) to the shutdown request."""
    (requested_at, args), *_ = fakes.shutdown_calls()
    assert args == "-h now"
    return requested_at - parse_iso(ledger["attempts"][-1]["endedAt"])


def published(prefix: str) -> dict:
    """The manifest of a published checkpoint, after checking every file against it."""
    s3 = boto3.client("s3")
    key = f"runs/{RUN_ID}/{prefix}"
    manifest = json.loads(
        s3.get_object(Bucket=OUTPUTS_BUCKET, Key=f"{key}/manifest.json")["Body"].read()
    )
    for entry in manifest["files"]:
        body = s3.get_object(Bucket=OUTPUTS_BUCKET, Key=f"{key}/{entry['path']}")["Body"].read()
        assert (len(body), hashlib.sha256(body).hexdigest()) == (entry["size"], entry["sha256"])
    return manifest


def child_pids(pid: int) -> list:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(child) for child in children.read().split()]
    except OSError:
        return []


def trainer_pid(supervisor_pid: int) -> int:
    """The supervisor's trainer child; it also starts short-lived helpers (nvidia-smi, aws)."""
    trainers = [pid for pid in child_pids(supervisor_pid) if "tuning_trainer" in command_of(pid)]
    (pid,) = trainers
    return pid


def command_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_run_completes_then_the_instance_terminates(cloud, fakes, tmp_path, processes):
    upload_dataset()
    cloud.put_settings(runConfig=run_config(max_steps=4, save_steps=2))

    process = supervise(processes, cloud, tmp_path)  # through the AWS CLI, as on the instance

    assert process.wait(timeout=TRAINER_TIMEOUT_SECONDS) == 0
    ledger = cloud.ledger()
    assert (ledger["status"], ledger["reason"], ledger["lastStep"]) == ("completed", "completed", 4)
    assert published("final")["step"] == 4
    assert ledger["finalModelUri"] == f"{cloud.output_uri}/final/"
    assert cloud.statuses() == ["started", "completed"]
    assert cloud.group()["DesiredCapacity"] == 0
    assert shutdown_delay(fakes, ledger) <= FINISH_BOUND_SECONDS


def test_failing_trainer_is_retried_then_the_run_fails(cloud, fakes, tmp_path, processes):
    upload_dataset()
    cloud.put_settings(runConfig=run_config(max_steps=4, save_steps=2), maxRetries=2)
    # The real trainer, writing to a bucket that refuses it (NoSuchBucket): exit 1 every time.
    broken = f"env LLM_OUTPUT__URI=s3://tuning-no-such-bucket/runs/{RUN_ID} {TRAINER}"

    process = supervise(processes, cloud, tmp_path, broken, "--aws-backend", "boto3")

    assert process.wait(timeout=TRAINER_TIMEOUT_SECONDS) == 0
    ledger = cloud.ledger()
    assert outcome(ledger) == ("failed", "trainer-failed"), ledger
    assert [attempt["exitCode"] for attempt in ledger["attempts"]] == [1, 1, 1]
    assert "NoSuchBucket" in ledger["lastLogLines"][-1]
    assert cloud.statuses() == ["started", "failed"]
    assert cloud.group()["DesiredCapacity"] == 0
    assert shutdown_delay(fakes, ledger) <= FINISH_BOUND_SECONDS


def test_bad_data_fails_the_run_without_retry(cloud, fakes, tmp_path, processes):
    upload_dataset()
    cloud.put_settings(runConfig=run_config(4, 2, train="datasets/missing.jsonl"), maxRetries=2)

    process = supervise(processes, cloud, tmp_path, TRAINER, "--aws-backend", "boto3")

    assert process.wait(timeout=TRAINER_TIMEOUT_SECONDS) == 0
    ledger = cloud.ledger()
    assert outcome(ledger) == ("failed", "bad-input"), ledger
    assert [attempt["exitCode"] for attempt in ledger["attempts"]] == [2]
    assert "data file not found" in ledger["lastLogLines"][-1]
    assert cloud.statuses() == ["started", "failed"]
    assert cloud.group()["DesiredCapacity"] == 0
    assert shutdown_delay(fakes, ledger) <= FINISH_BOUND_SECONDS


def test_spot_notice_checkpoints_and_a_replacement_resumes_to_completion(
    spot_cloud, fakes, tmp_path, processes
):
    upload_dataset()
    # No periodic checkpoint: the one in S3 after the notice is the interruption's own. Enough
    # steps that the run cannot finish in the second or so the notice takes to act. Two ranks
    # (two CPU processes under torchrun, as on a 2-GPU instance): the notice reaches local rank
    # 0 only, and both must stop at one published checkpoint.
    spot_cloud.put_settings(runConfig=run_config(max_steps=30, save_steps=1000))
    first = supervise(
        processes, spot_cloud, tmp_path / "first", TWO_RANKS, "--aws-backend", "boto3"
    )
    step_at_notice = wait_for(
        lambda: progress_step(tmp_path / "first") >= 2 and progress_step(tmp_path / "first"),
        timeout=TRAINER_TIMEOUT_SECONDS, what="training steps",
    )  # fmt: skip

    spot_cloud.imds.interrupt()

    assert first.wait(timeout=TRAINER_TIMEOUT_SECONDS) == 0
    ledger = spot_cloud.ledger()
    assert outcome(ledger) == ("interrupted", "spot-interruption"), ledger
    assert [attempt["exitCode"] for attempt in ledger["attempts"]] == [75]
    assert [i["action"] for i in ledger["interruptions"]] == ["terminate"]
    (checkpoint,) = [k.split("/")[3] for k in spot_cloud.keys("checkpoints/") if "manifest" in k]
    assert published(f"checkpoints/{checkpoint}")["step"] >= step_at_notice  # at most 1 step lost
    assert spot_cloud.statuses() == ["started", "interrupted"]
    assert spot_cloud.group()["DesiredCapacity"] == 1  # the group replaces the instance
    assert shutdown_delay(fakes, ledger) <= FINISH_BOUND_SECONDS

    replacement = spot_cloud.replace_instance()
    with FakeImds(identity(replacement, "spot")) as imds:
        second = supervise(processes, spot_cloud, tmp_path / "second", TWO_RANKS,
                           "--aws-backend", "boto3", imds=imds.url)  # fmt: skip
        assert second.wait(timeout=TRAINER_TIMEOUT_SECONDS) == 0

    ledger = spot_cloud.ledger()
    assert (ledger["status"], ledger["lastStep"]) == ("completed", 30)
    assert [a["instanceId"] for a in ledger["attempts"]] == [spot_cloud.instance_id, replacement]
    assert (
        f"resuming from s3://{OUTPUTS_BUCKET}/runs/{RUN_ID}/checkpoints/{checkpoint}"
        in (tmp_path / "second" / "training.log").read_text()
    )
    assert spot_cloud.statuses() == ["started", "interrupted", "resumed", "completed"]
    assert spot_cloud.group()["DesiredCapacity"] == 0
    for attempt in ("first", "second"):
        log = (tmp_path / attempt / "training.log").read_text()
        assert "distributed: ddp on 2 process(es)" in log
    first_log = (tmp_path / "first" / "training.log").read_text()
    assert "ranks {0: 75, 1: 75} -> exit 75" in first_log


def test_hung_trainer_is_stopped_by_the_idle_watchdog(cloud, fakes, tmp_path, processes):
    upload_dataset()
    idle_minutes = 0.15
    cloud.put_settings(
        runConfig=run_config(max_steps=500, save_steps=1000), idleMinutes=idle_minutes
    )
    process = supervise(processes, cloud, tmp_path, TRAINER, "--aws-backend", "boto3",
                        "--stop-grace-seconds", "3")  # fmt: skip
    wait_for(lambda: progress_step(tmp_path) >= 2, timeout=TRAINER_TIMEOUT_SECONDS, what="steps")

    os.kill(trainer_pid(process.pid), signal.SIGSTOP)  # a hang: no steps, no CPU, idle GPU
    hung_at = time.time()

    assert process.wait(timeout=TRAINER_TIMEOUT_SECONDS) == 0
    ledger = cloud.ledger()
    assert outcome(ledger) == ("stopped-by-safety", "idle"), ledger
    assert cloud.statuses() == ["started", "stopped-by-safety"]
    assert cloud.group()["DesiredCapacity"] == 0
    (requested_at, _), *_ = fakes.shutdown_calls()
    assert requested_at - hung_at <= idle_minutes * 60 + 5 * 60
    assert shutdown_delay(fakes, ledger) <= FINISH_BOUND_SECONDS


def run_safety_lambda(run_root: Path) -> dict:
    """One scheduled pass of the safety Lambda in Node, against moto (dummy credentials)."""
    try:
        bundle = bundle_safety_lambda(run_root / "safety-handler.js")
    except NodeMissingError as missing:
        pytest.skip(str(missing))
    return run_safety_lambda_bundle(
        bundle,
        stack_name=STACK_NAME,
        topic_arn=boto3.client("sns").list_topics()["Topics"][0]["TopicArn"],
        outputs_bucket=OUTPUTS_BUCKET,
        region=REGION,
        env=dict(os.environ),
    )


def test_when_the_supervisor_dies_the_safety_lambda_still_stops_the_instance(
    cloud, fakes, tmp_path, processes
):
    upload_dataset()
    cloud.put_settings(runConfig=run_config(max_steps=500, save_steps=1000))
    overdue = {"Key": contract.TAG_MAX_RUNTIME_HOURS, "Value": "0.001"}  # 3.6 s
    boto3.client("ec2").create_tags(Resources=[cloud.instance_id], Tags=[overdue])
    process = supervise(processes, cloud, tmp_path, TRAINER, "--aws-backend", "boto3")
    wait_for(lambda: progress_step(tmp_path) >= 1, timeout=TRAINER_TIMEOUT_SECONDS, what="steps")
    trainer = trainer_pid(process.pid)

    process.kill()  # the supervisor dies without a word; the trainer trains on
    process.wait(timeout=30)
    try:
        report = run_safety_lambda(tmp_path)
    finally:
        os.killpg(trainer, signal.SIGKILL)  # what terminating the instance does to it

    assert [(s["instanceId"], s["reason"]) for s in report["stopped"]] == [
        (cloud.instance_id, "max-runtime")
    ], report
    assert cloud.instance_state(cloud.instance_id) in ("shutting-down", "terminated")
    assert cloud.group()["DesiredCapacity"] == 0
    ledger = cloud.ledger()
    assert outcome(ledger) == ("stopped-by-safety", "max-runtime"), ledger
    assert cloud.statuses() == ["started", "stopped-by-safety"]
