"""The interruption deadline: said in the log when a checkpoint cannot make it in time."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from tuning_trainer.callbacks import PublishCallback
from tuning_trainer.signals import Interruption
from tuning_trainer.storage import Store
from tuning_trainer.train import _report_deadline


def test_a_publish_slower_than_the_time_left_is_reported_before_it_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    interruption = Interruption(deadline_seconds=10)
    interruption.request("SIGTERM")
    publisher = PublishCallback(Store(str(tmp_path)), "", 2, tmp_path / "logs", interruption)
    publisher.last_publish_seconds = 60  # the previous checkpoint took a minute to upload

    with caplog.at_level(logging.ERROR):
        publisher._warn_if_late()

    assert "may not complete in time" in caplog.text


def test_a_checkpoint_published_after_the_deadline_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    interruption = Interruption(deadline_seconds=0.01)
    interruption.request("spot terminate notice")
    time.sleep(0.05)

    with caplog.at_level(logging.WARNING):
        _report_deadline(interruption, step=7)

    assert "AFTER the" in caplog.text
    assert "step 7" in caplog.text
