"""`tuning-trainer validate`: check config and data and print what training would do; no GPU.

    tuning-trainer validate --config configs/tiny-llama-lora.yaml

Loads only the tokenizer (never the weights), reads and tokenizes every example exactly as
training would, and prints the examples per format and shape, token statistics, truncation
(exit 2 past ``data.max_truncated_fraction``, as ``train`` does), padding and rows with and
without packing, the optimizer steps and the tokens to train. Hardware checks (qlora needs
CUDA, ...) are left to `train` on the instance: a laptop validating a GPU run is the normal case.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tuning_trainer import data, model
from tuning_trainer.config import RunConfig, load_config
from tuning_trainer.errors import EXIT_OK


def run_validate(
    config_location: str, overrides: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> int:
    import os

    loaded = load_config(config_location, os.environ if env is None else env, overrides)
    config = loaded.config
    model.builtin_name(config.model.base_model)
    model.check_base_model(config)
    tokenizer = model.load_tokenizer(config)
    print(f"config   {loaded.location}: valid")
    print(
        f"model    {config.model.base_model} ({config.model.method}), tokenizer vocabulary "
        f"{len(tokenizer)}"
    )
    print(f"output   {config.output.uri}")
    train_rows = _report_file("train", config.data.train, config, tokenizer)
    if config.data.eval:
        _report_file("eval", config.data.eval, config, tokenizer)
    _report_plan(config, train_rows)
    print("OK: config and data are valid; nothing was trained")
    return EXIT_OK


def _report_file(label: str, uri: str, config: RunConfig, tokenizer: Any) -> int:
    """Print what training would make of one file; exit 2 (after printing) past the truncation
    threshold."""
    settings = config.data
    dataset, tokenized = data.load_tokenized(uri, settings, tokenizer)
    batch = config.training.per_device_train_batch_size
    lengths = tokenized.lengths
    unpacked = data.padding_fraction(lengths, batch, seed=config.training.seed)
    packed_groups = data.pack_best_fit(lengths, settings.max_seq_length)
    packed_lengths = [sum(lengths[i] for i in group) for group in packed_groups]
    packed = data.padding_fraction(packed_lengths, batch, seed=config.training.seed)
    targets = sum(
        sum(1 for label in e.labels if label != data.IGNORE_INDEX) for e in tokenized.examples
    )
    rows = len(packed_groups) if settings.packing else len(lengths)
    shapes = ", ".join(f"{count} {shape}" for shape, count in sorted(dataset.shapes.items()))
    print(f"{label:<8} {uri}")
    print(f"  format {dataset.format}: {len(dataset.examples)} examples ({shapes})")
    print(f"  {data.truncation_summary(tokenized, settings.max_seq_length)}")
    print(
        f"  padding at batch size {batch}: {100 * unpacked:.1f} % without packing "
        f"({len(lengths)} rows), {100 * packed:.1f} % with packing ({len(packed_groups)} rows)"
        + ("  <- packing on" if settings.packing else "  <- packing off")
    )
    print(f"  tokens: {sum(lengths)} in the kept examples, {targets} of them trained (targets)")
    data.check_truncation(tokenized, settings.max_seq_length, settings.max_truncated_fraction)
    return rows


def _report_plan(config: RunConfig, rows: int) -> None:
    training = config.training
    per_step = training.per_device_train_batch_size * training.gradient_accumulation_steps
    batches = math.ceil(rows / training.per_device_train_batch_size)
    steps_per_epoch = max(1, math.ceil(batches / training.gradient_accumulation_steps))
    if training.max_steps > 0:
        steps = training.max_steps
        how = f"max_steps {steps} = {steps / steps_per_epoch:.2f} epochs"
    else:
        steps = math.ceil(steps_per_epoch * training.num_train_epochs)
        how = f"{training.num_train_epochs:g} epochs"
    print(
        f"plan     {steps_per_epoch} optimizer steps per epoch ({rows} rows / {per_step} rows per "
        f"step); {steps} steps ({how}); checkpoints every {training.save_steps} steps"
    )
