"""Helpers the trainer tests share (uniquely named: pytest puts this folder on sys.path)."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from safetensors.torch import load_file
from tuning_trainer.synthetic import alpaca_examples

REPO = Path(__file__).resolve().parents[2]

# A fast run on the builtin 2-layer model: constant LR, one log line per step, no dropout.
BASE_CONFIG: dict[str, Any] = {
    "model": {"base_model": "builtin:tiny-llama", "method": "lora"},
    "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
    "data": {"train": "train.jsonl", "format": "auto", "max_seq_length": 128, "packing": True},
    "training": {
        "max_steps": 8,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "learning_rate": 1.0e-2,
        "warmup_ratio": 0.0,
        "lr_scheduler_type": "constant",
        "logging_steps": 1,
        "save_steps": 4,
        "save_total_limit": 2,
        "seed": 0,
        "report_to": "none",
    },
    "output": {"uri": "out"},
    "interruption": {"spot_polling": "never"},
}


def logged_losses(trainer_state: dict[str, Any]) -> dict[int, float]:
    """Each logged step's training loss in a trainer_state.json document."""
    return {e["step"]: e["loss"] for e in trainer_state["log_history"] if "loss" in e}


def losses(final: Path) -> dict[int, float]:
    """Each logged step's training loss of a run folder's final model."""
    return logged_losses(json.loads((final / "trainer_state.json").read_text()))


def assert_same_training(
    final_a: Path,
    final_b: Path,
    *,
    steps: int,
    weights: str = "adapter_model.safetensors",
    tolerance: float = 1e-4,
) -> None:
    """Two final models trained the same: a loss at every step 1..steps, equal to 1e-4, and
    every tensor of ``weights`` within ``tolerance``."""
    loss_a, loss_b = losses(final_a), losses(final_b)
    assert loss_a.keys() == loss_b.keys() == set(range(1, steps + 1))
    for step in loss_a:
        assert loss_a[step] == pytest.approx(loss_b[step], rel=1e-4, abs=1e-5), step
    tensors_a, tensors_b = load_file(final_a / weights), load_file(final_b / weights)
    assert tensors_a.keys() == tensors_b.keys()
    for name in tensors_a:
        assert (tensors_a[name] - tensors_b[name]).abs().max() < tolerance, name


def write_yaml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def deep_update(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_update(result[key], value)
        else:
            result[key] = value
    return result


def make_run(
    folder: Path, changes: dict[str, Any] | None = None, records: list[Any] | None = None
) -> Path:
    """A config (``run.yaml``) and its data (``train.jsonl``) in ``folder``; returns the config."""
    write_jsonl(folder / "train.jsonl", alpaca_examples(48, seed=3) if records is None else records)
    config = deep_update(BASE_CONFIG, changes or {})
    return write_yaml(folder / "run.yaml", yaml.safe_dump(config, sort_keys=False))


# Llama 3.1 8B's config.json (docs/external-names.md): the shape of a real fine-tune.
LLAMA_31_8B = {
    "vocab_size": 128_256,
    "hidden_size": 4096,
    "intermediate_size": 14_336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "tie_word_embeddings": False,
}


@cache
def llama_8b_shape() -> Any:
    from transformers import LlamaConfig
    from tuning_trainer import estimate

    return estimate.model_shape(LlamaConfig(**LLAMA_31_8B))
