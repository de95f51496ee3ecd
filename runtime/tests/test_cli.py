"""The supervisor as systemd runs it: ``python3 -m tuning_runtime run`` in its own process, on the
oldest Python an instance may have (3.7 on Amazon Linux 2), through the AWS CLI, stopped by
SIGTERM like systemd stops it."""

from __future__ import annotations

import shlex
import signal
import sys

from harness import FAKES, oldest_python, progress_step, start_supervisor_process, wait_for

FAKE_TRAINER_COMMAND = shlex.join([sys.executable, str(FAKES / "fake_trainer.py")])


def test_sigterm_checkpoints_the_run_and_exits_without_shutdown(
    cloud, fakes, tmp_path, monkeypatch
):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "train")
    python = oldest_python()
    process = start_supervisor_process(cloud, tmp_path, FAKE_TRAINER_COMMAND, python=python)
    wait_for(lambda: progress_step(tmp_path) >= 3, timeout=60, what="training steps")

    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=60) == 0
    ledger = cloud.ledger()
    assert (ledger["status"], ledger["reason"]) == ("interrupted", "host-shutdown")
    assert ledger["attempts"][0]["exitCode"] == 75
    assert any(key.endswith("/manifest.json") for key in cloud.keys("checkpoints/"))
    assert fakes.shutdown_calls() == [] and cloud.group()["DesiredCapacity"] == 1
