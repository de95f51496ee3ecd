"""A loss that turns NaN ends the run with exit 2 instead of training garbage for hours."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from trainer_testlib import make_run
from tuning_trainer import model
from tuning_trainer.callbacks import DivergenceGuard
from tuning_trainer.cli import main
from tuning_trainer.errors import EXIT_BAD_INPUT, DivergedError


class _State:
    def __init__(self, step: int) -> None:
        self.global_step = step


def log_losses(guard: DivergenceGuard, losses: list[float]) -> None:
    for step, loss in enumerate(losses, start=1):
        guard.on_log(None, _State(step), None, logs={"loss": loss})


def test_one_bad_window_is_tolerated() -> None:
    log_losses(DivergenceGuard(), [2.0, math.inf, 1.9, math.nan, 1.8])


def test_consecutive_bad_windows_stop_the_run_naming_the_steps() -> None:
    with pytest.raises(DivergedError, match=r"loss was nan at steps 3, 4; lower training"):
        log_losses(DivergenceGuard(), [2.0, 1.9, math.nan, math.nan])


def test_logs_without_a_training_loss_are_ignored() -> None:
    guard = DivergenceGuard()
    guard.on_log(None, _State(1), None, logs={"loss": math.nan})
    guard.on_log(None, _State(1), None, logs={"eval_loss": math.nan})
    guard.on_log(None, _State(2), None, logs={"learning_rate": 1e-3})


@pytest.fixture(scope="module")
def poisoned_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The builtin tiny model with NaN embeddings: every forward pass gives a NaN loss."""
    folder = tmp_path_factory.mktemp("poisoned-model")
    tokenizer = model.builtin_tokenizer()
    lm = model.build_builtin_model("tiny-llama", len(tokenizer), "sdpa")
    with torch.no_grad():
        lm.get_input_embeddings().weight.fill_(math.nan)
    lm.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_diverged_run_exits_2_and_publishes_no_checkpoint(
    tmp_path: Path, poisoned_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_run(tmp_path, {"model": {"base_model": str(poisoned_model)}})

    code = main(["train", "--config", str(config)])

    assert code == EXIT_BAD_INPUT
    assert "training diverged: the loss was nan at steps 1, 2" in capsys.readouterr().err
    assert not (tmp_path / "out" / "checkpoints").exists()
    assert not (tmp_path / "out" / "final").exists()
