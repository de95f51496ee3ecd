"""The training curve is published with every checkpoint and continues across a resume.

    .venv/bin/python -m pytest trainer-image/tests/test_history.py -q

``logs/metrics.jsonl`` (the Trainer's log history) and the TensorBoard event files reach the run
folder with each checkpoint, also when the run is interrupted; a resumed run's published log has
every step once, and its TensorBoard file hides (``purge_step``) what it trains again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader
from trainer_testlib import make_run
from tuning_trainer.callbacks import InterruptCallback, ProgressCallback
from tuning_trainer.errors import EXIT_INTERRUPTED, EXIT_OK
from tuning_trainer.train import run_train

STEPS = 8
TENSORBOARD = {"training": {"max_steps": STEPS, "report_to": "tensorboard"}}


def metrics_log(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "logs" / "metrics.jsonl").read_text().splitlines()]


def loss_steps(entries: list[dict[str, Any]]) -> list[int]:
    return [entry["step"] for entry in entries if "loss" in entry]


def event_files(run: Path) -> set[Path]:
    return set((run / "logs").glob("events.out.tfevents.*"))


def scalar_steps(event_file: Path, tag: str = "train/loss") -> list[int]:
    return [
        event.step
        for event in LegacyEventFileLoader(str(event_file)).Load()
        for value in event.summary.value
        if value.tag == tag
    ]


def purge_step(event_file: Path) -> int | None:
    """The step from which TensorBoard hides earlier files' events (a restart marker), if any."""
    for event in LegacyEventFileLoader(str(event_file)).Load():
        if event.HasField("session_log") and event.session_log.status == event.session_log.START:
            return event.step
    return None


def interrupt_at(step: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """As if SIGTERM arrived during ``step``: the run checkpoints after it and exits 75."""
    original = InterruptCallback.on_step_end

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == step:
            self.interruption.request(f"test: interrupted in step {step}")
        return original(self, args, state, control, **kwargs)

    monkeypatch.setattr(InterruptCallback, "on_step_end", on_step_end)


def crash_at(step: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the process died during ``step`` (no checkpoint, nothing published after it)."""
    original = ProgressCallback.on_step_end

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == step:
            raise RuntimeError(f"test: the process died in step {step}")
        return original(self, args, state, control, **kwargs)

    monkeypatch.setattr(ProgressCallback, "on_step_end", on_step_end)


def test_an_interrupted_run_has_published_its_curve_up_to_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_run(tmp_path, {"training": {**TENSORBOARD["training"], "save_steps": 100}})

    with monkeypatch.context() as patch:
        interrupt_at(3, patch)
        assert run_train(str(config), {}, env={}) == EXIT_INTERRUPTED

    run = tmp_path / "out"
    assert loss_steps(metrics_log(run)) == [1, 2, 3]
    [events] = event_files(run)
    assert scalar_steps(events) == [1, 2, 3]


def test_a_resumed_run_continues_the_published_curve_with_every_step_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_run(tmp_path, {"training": {**TENSORBOARD["training"], "save_steps": 4}})
    run = tmp_path / "out"
    with monkeypatch.context() as patch:
        crash_at(6, patch)  # after the checkpoint of step 4, steps 5 and 6 trained and lost
        with pytest.raises(RuntimeError, match="died in step 6"):
            run_train(str(config), {}, env={})
    before = metrics_log(run)
    [first_events] = event_files(run)
    assert loss_steps(before) == [1, 2, 3, 4]  # published with the checkpoint of step 4
    assert scalar_steps(first_events) == [1, 2, 3, 4]

    assert run_train(str(config), {}, env={}) == EXIT_OK

    after = metrics_log(run)
    assert loss_steps(after) == list(range(1, STEPS + 1))
    assert after[:4] == before  # the first attempt's entries, unchanged
    tokens = [entry["num_input_tokens_seen"] for entry in after if "loss" in entry]
    assert tokens == sorted(set(tokens))  # the count goes on from the checkpoint's
    [second_events] = event_files(run) - {first_events}
    assert purge_step(second_events) == 5  # TensorBoard hides any older event from step 5 on
    assert scalar_steps(second_events) == list(range(5, STEPS + 1))
    final_state = json.loads((run / "final" / "trainer_state.json").read_text())
    assert after == final_state["log_history"]
