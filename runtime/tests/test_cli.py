"""The supervisor as systemd runs it: ``python -m tuning_runtime run`` in its own process, through
the AWS CLI backend, stopped by SIGTERM like systemd stops it."""

from __future__ import annotations

import shlex
import signal
import sys

from harness import FAKES, progress_step, start_supervisor_process, wait_for

FAKE_TRAINER_COMMAND = shlex.join([sys.executable, str(FAKES / "fake_trainer.py")])


def test_cli_supervises_a_run_to_completion(cloud, fakes, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "complete")

    process = start_supervisor_process(cloud, tmp_path, FAKE_TRAINER_COMMAND)

    assert process.wait(timeout=120) == 0
    assert cloud.ledger()["status"] == "completed"
    assert cloud.statuses() == ["started", "completed"]
    assert cloud.group()["DesiredCapacity"] == 0 and len(fakes.shutdown_calls()) == 1
    assert "run completed (completed)" in (tmp_path / "supervisor.log").read_text()


def test_sigterm_checkpoints_the_run_and_exits_without_shutdown(
    cloud, fakes, tmp_path, monkeypatch
):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "train")
    process = start_supervisor_process(cloud, tmp_path, FAKE_TRAINER_COMMAND)
    wait_for(lambda: progress_step(tmp_path) >= 3, timeout=60, what="training steps")

    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=60) == 0
    ledger = cloud.ledger()
    assert (ledger["status"], ledger["reason"]) == ("interrupted", "host-shutdown")
    assert ledger["attempts"][0]["exitCode"] == 75
    assert any(key.endswith("/manifest.json") for key in cloud.keys("checkpoints/"))
    assert fakes.shutdown_calls() == [] and cloud.group()["DesiredCapacity"] == 1
