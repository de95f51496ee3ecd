"""Interruption and exit codes, with the trainer as a real process (signals need one).

SIGTERM and a spot notice from the fake IMDSv2 each make the trainer publish a complete
checkpoint and exit 75; running the same command again resumes and reproduces the
uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from trainer_testlib import assert_same_training, logged_losses, make_run
from tuning_trainer import checkpoint
from tuning_trainer.cli import main
from tuning_trainer.storage import Store
from tuning_trainer.synthetic import alpaca_examples
from tuning_trainer.train import run_train

from testing.fake_imds import FakeImds

STEPS = 30
# Slow enough per step (bigger rows) that a signal sent at step 3 lands well before the end.
LONG_RUN = {
    "data": {"max_seq_length": 256},
    "training": {"max_steps": STEPS, "save_steps": 100, "per_device_train_batch_size": 4},
}


def start_trainer(config: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tuning_trainer", "train", "--config", str(config)],
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_step(
    progress: Path, step: int, process: subprocess.Popen, timeout: float = 120
) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if progress.exists():
            current = json.loads(progress.read_text())["step"]
            if current >= step:
                return current
        if process.poll() is not None:
            raise AssertionError(
                f"trainer exited early ({process.returncode}):\n{process.stderr.read()}"
            )
        time.sleep(0.01)
    raise AssertionError(f"step {step} not reached in {timeout} s")


def test_sigterm_then_resume_reproduces_the_uninterrupted_run(tmp_path: Path) -> None:
    records = alpaca_examples(160, seed=5)
    reference = make_run(tmp_path / "reference", LONG_RUN, records)
    interrupted = make_run(tmp_path / "interrupted", LONG_RUN, records)
    progress = tmp_path / "progress.json"

    process = start_trainer(interrupted, {"TUNING_PROGRESS_FILE": str(progress)})
    wait_for_step(progress, 3, process)
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=120)
    stderr = process.stderr.read()

    assert code == 75, stderr
    run = Store(str(tmp_path / "interrupted" / "out"))
    [stopped_at] = checkpoint.published_steps(run)
    assert 3 <= stopped_at < STEPS  # really interrupted mid-run
    assert checkpoint.read_manifest(run, checkpoint.step_prefix(stopped_at)) is not None
    assert "exiting 75" in stderr and "Traceback" not in stderr

    assert run_train(str(interrupted), {}, env={}) == 0  # the same command again resumes
    assert run_train(str(reference), {}, env={}) == 0

    final_i = tmp_path / "interrupted" / "out" / "final"
    final_r = tmp_path / "reference" / "out" / "final"
    state_i = json.loads((final_i / "trainer_state.json").read_text())
    state_r = json.loads((final_r / "trainer_state.json").read_text())
    assert state_i["global_step"] == state_r["global_step"] == STEPS
    assert_same_training(final_i, final_r, steps=STEPS)


def test_spot_notice_publishes_to_s3_exits_75_and_the_run_resumes_from_s3(
    tmp_path: Path, moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    boto3.client("s3").create_bucket(Bucket="outputs")
    changes = {
        **LONG_RUN,
        "output": {"uri": "s3://outputs/runs/spot-run"},
        "interruption": {"spot_polling": "auto", "poll_interval_seconds": 0.2},
    }
    config = make_run(tmp_path, changes)
    progress = tmp_path / "progress.json"
    run = Store("s3://outputs/runs/spot-run")

    with FakeImds() as imds:
        env = {**moto.env(), "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url}
        process = start_trainer(config, {**env, "TUNING_PROGRESS_FILE": str(progress)})
        wait_for_step(progress, 2, process)
        imds.interrupt()
        code = process.wait(timeout=120)
        stderr = process.stderr.read()
        polled = [path for method, path, status in imds.requests if method == "GET"]

    assert code == 75, stderr
    assert "spot terminate notice" in stderr
    assert "/latest/meta-data/spot/instance-action" in polled
    [stopped_at] = checkpoint.published_steps(run)
    manifest = checkpoint.read_manifest(run, checkpoint.step_prefix(stopped_at))
    assert manifest is not None and manifest["step"] == stopped_at < STEPS
    assert "AFTER the" not in stderr  # the trainer's own deadline check (100 s) was met

    monkeypatch.setenv("LLM_INTERRUPTION__SPOT_POLLING", "never")  # the replacement instance
    assert run_train(str(config), {}) == 0
    final = checkpoint.read_manifest(run, checkpoint.FINAL)
    assert final is not None and final["step"] == STEPS
    state = json.loads(run.get_bytes("final/trainer_state.json"))
    assert set(logged_losses(state)) == set(range(1, STEPS + 1))  # no step lost or repeated


def test_bad_config_exits_2_with_one_message_and_no_traceback(tmp_path: Path) -> None:
    config = make_run(tmp_path, {"lora": {"rank": 8}})
    process = start_trainer(config, {})
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "lora.rank: unknown key" in stderr
    assert "Traceback" not in stderr


def test_unexpected_failure_exits_1(tmp_path: Path, moto) -> None:
    # the output bucket does not exist: not the user's data or config, so retryable (1)
    config = make_run(tmp_path, {"output": {"uri": "s3://no-such-bucket/runs/x"}})
    assert main(["train", "--config", str(config)]) == 1
