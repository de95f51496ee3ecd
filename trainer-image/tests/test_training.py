"""Training on the builtin tiny model, in-process: learning, parameters, GA, outputs, re-runs."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from trainer_testlib import make_run, write_jsonl
from transformers import TrainerCallback
from tuning_trainer import checkpoint, model, storage
from tuning_trainer.config import load_config
from tuning_trainer.signals import Interruption
from tuning_trainer.synthetic import alpaca_examples
from tuning_trainer.train import build_trainer, load_seeded_model, prepare_data, run_train

STEPS = 16


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One complete local run (16 steps, eval, TensorBoard) that several tests inspect."""
    folder = tmp_path_factory.mktemp("finished")
    write_jsonl(folder / "eval.jsonl", alpaca_examples(8, seed=9))
    config = make_run(
        folder,
        {
            "data": {"eval": "eval.jsonl"},
            "training": {"max_steps": STEPS, "report_to": "tensorboard", "eval_steps": 8},
        },
    )
    progress = folder / "progress.json"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = run_train(str(config), {}, env={"TUNING_PROGRESS_FILE": str(progress)})
    return {
        "code": code,
        "out": folder / "out",
        "stdout": stdout.getvalue(),
        "progress": progress,
        "config": config,
    }


def log_history(run_folder: Path) -> list[dict[str, Any]]:
    return json.loads((run_folder / "final" / "trainer_state.json").read_text())["log_history"]


def test_a_run_finishes_with_exit_0(finished) -> None:
    assert finished["code"] == 0


def test_loss_falls_on_a_small_repeated_dataset(finished) -> None:
    losses = [entry["loss"] for entry in log_history(finished["out"]) if "loss" in entry]
    assert len(losses) == STEPS
    assert sum(losses[-4:]) / 4 < losses[0] - 0.5


def test_final_folder_has_adapter_tokenizer_state_and_a_matching_manifest(finished) -> None:
    final = finished["out"] / "final"
    for name in [
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "trainer_state.json",
        "config.yaml",
    ]:
        assert (final / name).is_file(), name
    manifest = json.loads((final / "manifest.json").read_text())
    assert manifest["kind"] == "final" and manifest["step"] == STEPS
    listed = {entry["path"]: entry for entry in manifest["files"]}
    on_disk = {p.name for p in final.iterdir()} - {"manifest.json"}
    assert set(listed) == on_disk
    for name, entry in listed.items():
        assert entry["size"] == (final / name).stat().st_size
        assert entry["sha256"] == checkpoint.sha256_of(final / name)


def test_checkpoints_beyond_save_total_limit_are_removed(finished) -> None:
    assert checkpoint.published_steps(storage.Store(str(finished["out"]))) == [16, 12]


def test_resolved_config_is_saved_with_the_run_and_every_checkpoint(finished) -> None:
    saved = (finished["out"] / "config.yaml").read_text()
    assert "base_model: builtin:tiny-llama" in saved
    assert (finished["out"] / "checkpoints" / "step-16" / "config.yaml").read_text() == saved


def test_progress_file_holds_the_last_step_and_loss(finished) -> None:
    progress = json.loads(finished["progress"].read_text())
    assert set(progress) == {"step", "max_steps", "loss", "updated_at"}
    assert progress["step"] == progress["max_steps"] == STEPS
    last_logged = [e for e in log_history(finished["out"]) if "loss" in e][-1]
    assert last_logged["step"] == STEPS
    assert progress["loss"] == pytest.approx(last_logged["loss"])
    assert progress["updated_at"].endswith("Z")


def test_stdout_carries_cloudwatch_embedded_metric_lines(finished) -> None:
    documents = [json.loads(line) for line in finished["stdout"].splitlines()]
    training = [d for d in documents if "loss" in d]
    assert len(training) == STEPS
    metrics = training[0]["_aws"]["CloudWatchMetrics"][0]
    assert {m["Name"] for m in metrics["Metrics"]} == {"loss", "tokens_per_second", "learning_rate"}
    assert metrics["Dimensions"] == [["RunId"]] and training[0]["RunId"] == "out"
    assert all(d["tokens_per_second"] > 0 for d in training)
    assert any("eval_loss" in d for d in documents)
    # The run's length travels with every line (the SageMaker controller has no progress file).
    assert [d["step"] for d in training] == list(range(1, STEPS + 1))
    assert {d["max_steps"] for d in documents} == {STEPS}


def test_tensorboard_event_files_are_published_under_logs(finished) -> None:
    assert list((finished["out"] / "logs").glob("events.out.tfevents.*"))


def test_rerunning_a_finished_run_exits_0_without_training(finished) -> None:
    manifest = finished["out"] / "final" / "manifest.json"
    before = manifest.read_bytes()

    code = run_train(str(finished["config"]), {}, env={})

    assert code == 0
    assert manifest.read_bytes() == before  # nothing was published again


# --- the optimisation itself -----------------------------------------------------------------


def build(config_path: Path, **plan_overrides: Any):
    config = load_config(str(config_path), env={}).config
    plan = model.plan_hardware(config, cuda=False)
    prepared = prepare_data(config)
    lm = load_seeded_model(config, plan, len(prepared.tokenizer))
    store = storage.Store(config.output.uri)
    staging = config_path.parent / "staging"
    trainer, _ = build_trainer(
        config, config.to_yaml(), plan, prepared, lm, store, staging, {}, Interruption(100)
    )
    return trainer


@pytest.mark.parametrize("method", ["lora", "full"])
def test_every_trainable_parameter_changes_and_frozen_ones_do_not(
    tmp_path: Path, method: str
) -> None:
    trainer = build(
        make_run(
            tmp_path, {"model": {"method": method}, "training": {"max_steps": 2, "save_steps": 100}}
        )
    )
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainable = {name for name, p in trainer.model.named_parameters() if p.requires_grad}

    trainer.train()

    after = dict(trainer.model.named_parameters())
    changed = {name for name in before if not torch.equal(before[name], after[name].detach())}
    assert trainable, "nothing to train"
    assert changed == trainable
    if method == "lora":
        assert all("lora_" in name for name in trainable)


class GradientRecorder(TrainerCallback):
    """Keeps the accumulated gradients just before the (first) optimizer step."""

    def __init__(self) -> None:
        self.gradients: dict[str, torch.Tensor] = {}
        self.model = None

    def on_pre_optimizer_step(self, args, state, control, **kwargs) -> None:
        model = kwargs["model"]
        self.gradients = {
            name: p.grad.detach().clone()
            for name, p in model.named_parameters()
            if p.grad is not None
        }


def test_gradient_accumulation_equals_the_large_batch(tmp_path: Path) -> None:
    # four examples of very different lengths, unpacked, so batching pads and GA must normalise
    # by the total number of target tokens, not per micro-batch
    records = [
        {"instruction": "a", "output": "b"},
        {"instruction": "Reverse the word.", "input": "marble", "output": "elbram and more text"},
        {"instruction": "Add 1 and 2.", "output": "3"},
        {"instruction": "x" * 40, "output": "a long answer " * 5},
    ]
    results = {}
    for batch, accumulation in [(4, 1), (1, 4)]:
        folder = tmp_path / f"bs{batch}"
        config = make_run(
            folder,
            {
                "data": {"packing": False, "max_seq_length": 256},  # none cut: 140 the longest
                "training": {
                    "max_steps": 1,
                    "per_device_train_batch_size": batch,
                    "gradient_accumulation_steps": accumulation,
                    "max_grad_norm": 0.0,
                    "save_steps": 100,
                },
            },
            records=records,
        )
        trainer = build(config)
        recorder = GradientRecorder()
        trainer.add_callback(recorder)
        trainer.train()
        loss = next(e["loss"] for e in trainer.state.log_history if "loss" in e)
        results[(batch, accumulation)] = (loss, recorder.gradients)

    (loss_big, grads_big), (loss_ga, grads_ga) = results[(4, 1)], results[(1, 4)]
    assert loss_ga == pytest.approx(loss_big, rel=1e-5)
    assert grads_big.keys() == grads_ga.keys() and grads_big
    for name in grads_big:
        torch.testing.assert_close(grads_ga[name], grads_big[name], rtol=1e-4, atol=1e-6)
