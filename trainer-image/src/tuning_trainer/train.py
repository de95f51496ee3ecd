"""`tuning-trainer train`: one run from config to published final model, resumable at any point.

    tuning-trainer train --config configs/tiny-llama-lora.yaml      # run again to resume

Order matters: everything that can be wrong with the input (config, hardware, model path, data)
is checked before the model is loaded, so a bad run fails in seconds with exit 2. A config that
would change what an already trained run trains exits 2 first (:mod:`tuning_trainer.drift`);
then a run whose ``final/`` is complete exits 0 at once. Training itself is transformers'
Trainer with the callbacks of :mod:`tuning_trainer.callbacks`; resume uses the newest complete
published checkpoint (Trainer restores optimizer, scheduler, RNG and the data position from it).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuning_trainer import checkpoint, data, drift, export, model, storage
from tuning_trainer.config import RunConfig, load_config
from tuning_trainer.errors import EXIT_INTERRUPTED, EXIT_OK, ConfigError
from tuning_trainer.signals import Interruption, SpotNoticePoller

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    tokenizer: Any
    train_rows: list[data.Row]
    eval_rows: list[data.Row] | None
    train_stats: data.TokenizedSet


def run_id_of(config: RunConfig) -> str:
    return config.output.uri.rstrip("/").rsplit("/", 1)[-1] or "run"


def staging_dir(config: RunConfig) -> Path:
    if config.output.staging_dir:
        return Path(config.output.staging_dir)
    digest = hashlib.sha256(config.output.uri.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / "tuning-lab" / f"{run_id_of(config)}-{digest}"


def prepare_data(config: RunConfig) -> PreparedData:
    tokenizer = model.load_tokenizer(config)

    def rows_of(uri: str) -> tuple[list[data.Row], data.TokenizedSet]:
        tokenized = data.load_tokenized(uri, config.data, tokenizer)[1]
        summary = data.truncation_summary(tokenized, config.data.max_seq_length)
        log.log(
            logging.WARNING if tokenized.truncated else logging.INFO, "data %s: %s", uri, summary
        )
        data.check_truncation(
            tokenized, config.data.max_seq_length, config.data.max_truncated_fraction
        )
        return data.build_rows(
            tokenized, config.data.max_seq_length, config.data.packing
        ), tokenized

    train_rows, train_stats = rows_of(config.data.train)
    eval_rows = rows_of(config.data.eval)[0] if config.data.eval else None
    log.info(
        "data: %d examples -> %d rows of up to %d tokens (%d truncated, %d without a target "
        "dropped)",
        len(train_stats.examples),
        len(train_rows),
        config.data.max_seq_length,
        train_stats.truncated,
        train_stats.dropped_without_target,
    )
    return PreparedData(tokenizer, train_rows, eval_rows, train_stats)


def run_train(
    config_location: str,
    overrides: Mapping[str, Any],
    resume: str = "auto",
    env: Mapping[str, str] | None = None,
    allow_config_change: bool = False,
) -> int:
    env = os.environ if env is None else env
    config = load_config(config_location, env, overrides).config
    config_yaml = config.to_yaml()
    log.info("resolved run config:\n%s", config_yaml.rstrip())
    store = storage.Store(config.output.uri)
    finished = checkpoint.is_final_complete(store)
    check_config_drift(config, store, resume, finished, allow_config_change)
    if finished:
        log.info("%s is complete: nothing to do", store.uri(checkpoint.FINAL))
        return EXIT_OK

    interruption = Interruption(config.interruption.deadline_seconds)
    interruption.install_signal_handlers()
    poller = SpotNoticePoller(
        interruption, config.interruption.spot_polling, config.interruption.poll_interval_seconds
    ).start()
    try:
        return _train(config, config_yaml, store, resume, interruption, env)
    finally:
        poller.stop()
        interruption.restore_signal_handlers()


def check_config_drift(
    config: RunConfig,
    store: storage.Store,
    resume: str,
    finished: bool,
    allow_config_change: bool,
) -> None:
    """Refuse (exit 2) a config that would change what an already trained run trains."""
    saved = [_saved_config(store, finished)]
    if resume not in ("auto", "none"):
        saved.append(_local_saved_config(Path(resume) / "config.yaml"))
    for found in saved:
        if found is not None:
            where, document = found
            drift.check(drift.compare(document, config), where, finished, allow_config_change)


def _saved_config(store: storage.Store, finished: bool) -> tuple[str, dict[str, Any]] | None:
    """The config the run folder was trained with; None when nothing has been trained yet."""
    steps = checkpoint.complete_steps(store)
    if not finished and not steps:
        return None  # nothing trained: the saved config.yaml is simply replaced
    candidates = ["config.yaml"]
    candidates += [f"{checkpoint.FINAL}/config.yaml"] if finished else []
    candidates += [f"{checkpoint.step_prefix(step)}/config.yaml" for step in steps[:1]]
    for relative in candidates:
        try:
            document = drift.parse_saved(store.get_bytes(relative).decode("utf-8", "replace"))
        except FileNotFoundError:
            continue
        if document is not None:
            return store.uri(relative), document
        log.warning("%s is not a readable config; looking further", store.uri(relative))
    log.warning("%s holds trained state but no saved config: drift not checked", store.uri(""))
    return None


def _local_saved_config(path: Path) -> tuple[str, dict[str, Any]] | None:
    if not path.is_file():
        return None
    document = drift.parse_saved(path.read_text(errors="replace"))
    return (str(path), document) if document is not None else None


def _train(
    config: RunConfig,
    config_yaml: str,
    store: storage.Store,
    resume: str,
    interruption: Interruption,
    env: Mapping[str, str],
) -> int:
    plan = model.plan_hardware(config)
    model.check_base_model(config)
    prepared = prepare_data(config)
    log.info(
        "hardware: %s, precision %s, attention %s",
        plan.device,
        plan.precision,
        plan.attn_implementation,
    )
    store.put_bytes("config.yaml", config_yaml.encode())
    staging = staging_dir(config)
    # Leftovers of an earlier process on this disk; the run folder holds what counts.
    for stale in [*staging.glob("checkpoint-*"), staging / "logs", staging / "final"]:
        shutil.rmtree(stale, ignore_errors=True)
    staging.mkdir(parents=True, exist_ok=True)
    resume_path = _resume_path(resume, store, staging)
    if interruption.requested.is_set():
        log.warning("interrupted before training started; nothing new to checkpoint")
        return EXIT_INTERRUPTED

    lm = load_seeded_model(config, plan, len(prepared.tokenizer))
    trainer, publisher = build_trainer(
        config, config_yaml, plan, prepared, lm, store, staging, env, interruption
    )
    trainer.train(resume_from_checkpoint=resume_path)

    state = trainer.state
    if interruption.requested.is_set() and state.global_step < state.max_steps:
        if publisher.published_step != state.global_step:
            # stopped outside a step end (e.g. during evaluation): save now
            trainer._save_checkpoint(trainer.model, trial=None)
            publisher.on_save(trainer.args, state, trainer.control)
        _report_deadline(interruption, state.global_step)
        return EXIT_INTERRUPTED

    final = staging / "final"
    shutil.rmtree(final, ignore_errors=True)
    trainer.save_model(str(final))
    export.embed_builtin_base(final, config, plan.torch_dtype, len(prepared.tokenizer))
    state.save_to_json(str(final / "trainer_state.json"))
    (final / "config.yaml").write_text(config_yaml)
    from tuning_trainer.callbacks import LOGS, publish_history

    # the history first: once final/ is complete, so is its curve
    publish_history(store, staging / LOGS, state.log_history)
    checkpoint.publish(store, final, checkpoint.FINAL, "final", state.global_step)
    log.info("finished: %s", store.uri(checkpoint.FINAL))
    return EXIT_OK


def load_seeded_model(config: RunConfig, plan: model.HardwarePlan, vocab_size: int) -> Any:
    """The adapters' random init draws from the global RNG: seed it so every process agrees."""
    from transformers import set_seed

    set_seed(config.training.seed)
    lm = model.load_model(config, plan, vocab_size)
    export.label_base_model(lm, config)  # checkpoints and final name the base, not a cache path
    return lm


def _resume_path(resume: str, store: storage.Store, staging: Path) -> str | None:
    if resume == "none":
        return None
    if resume == "auto":
        found = checkpoint.fetch_latest(store, staging)
        return str(found) if found else None
    if not os.path.isdir(resume):
        raise ConfigError(f"--resume-from-checkpoint {resume!r}: no such folder")
    return resume


def _report_deadline(interruption: Interruption, step: int) -> None:
    left = interruption.seconds_left()
    if left >= 0:
        log.warning(
            "checkpoint of step %d published %.1f s after the interruption (%s); exiting 75",
            step,
            interruption.deadline_seconds - left,
            interruption.reason,
        )
    else:
        log.error(
            "checkpoint of step %d published %.1f s AFTER the %.0f s deadline (%s)",
            step,
            -left,
            interruption.deadline_seconds,
            interruption.reason,
        )


def build_trainer(
    config: RunConfig,
    config_yaml: str,
    plan: model.HardwarePlan,
    prepared: PreparedData,
    lm: Any,
    store: storage.Store,
    staging: Path,
    env: Mapping[str, str],
    interruption: Interruption,
) -> tuple[Any, Any]:
    from transformers import PrinterCallback, TrainingArguments

    from tuning_trainer.callbacks import (
        PROGRESS_FILE_ENV,
        DivergenceGuard,
        InterruptCallback,
        ProgressCallback,
        PublishCallback,
        make_tensorboard_callback,
    )
    from tuning_trainer.collator import RowCollator

    training = config.training
    has_eval = prepared.eval_rows is not None
    args = TrainingArguments(
        output_dir=str(staging),
        per_device_train_batch_size=training.per_device_train_batch_size,
        per_device_eval_batch_size=training.per_device_eval_batch_size,
        gradient_accumulation_steps=training.gradient_accumulation_steps,
        num_train_epochs=training.num_train_epochs,
        max_steps=training.max_steps,
        learning_rate=training.learning_rate,
        weight_decay=training.weight_decay,
        # transformers reads a warmup_steps below 1 as a ratio of the total steps
        warmup_steps=min(training.warmup_ratio, 0.999),
        lr_scheduler_type=training.lr_scheduler_type,
        max_grad_norm=training.max_grad_norm,
        optim=training.optim,
        activation_checkpointing=training.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False},
        bf16=plan.precision == "bf16",
        fp16=plan.precision == "fp16",
        use_cpu=plan.device == "cpu",
        logging_strategy="steps",
        logging_steps=training.logging_steps,
        logging_nan_inf_filter=False,  # let DivergenceGuard see a NaN loss
        # Real tokens: a packed row has no padding and no mask ("non_padding" would compare ids
        # with pad_token_id, and pad == eos drops every EOS); unpacked rows count their mask.
        include_num_input_tokens_seen="all" if config.data.packing else "non_padding",
        save_strategy="steps",
        save_steps=training.save_steps,
        save_total_limit=1,  # local staging only; published checkpoints follow the config
        eval_strategy="steps" if has_eval else "no",
        eval_steps=(training.eval_steps or training.save_steps) if has_eval else None,
        seed=training.seed,
        data_seed=training.seed,
        report_to="none",
        remove_unused_columns=False,
        prediction_loss_only=True,  # evaluation reports the loss; logits are never gathered
        dataloader_num_workers=0,  # the collator counts tokens in-process
        disable_tqdm=True,
    )
    collator = RowCollator(prepared.tokenizer.pad_token_id, config.data.packing)
    publisher = PublishCallback(
        store, config_yaml, training.save_total_limit, staging / "logs", interruption
    )
    callbacks = [
        ProgressCallback(collator, run_id_of(config), env.get(PROGRESS_FILE_ENV)),
        DivergenceGuard(),
        InterruptCallback(interruption),
        publisher,
    ]
    if "tensorboard" in training.reporters:
        callbacks.append(make_tensorboard_callback(staging / "logs"))
    trainer = make_trainer_class()(
        model=lm,
        args=args,
        train_dataset=data.RowDataset(prepared.train_rows),
        eval_dataset=data.RowDataset(prepared.eval_rows) if has_eval else None,
        data_collator=collator,
        processing_class=prepared.tokenizer,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # stdout carries only the metric (EMF) lines
    return trainer, publisher


def make_trainer_class() -> type:
    """transformers' Trainer with the chunked loss of :mod:`tuning_trainer.loss`.

    Built on first use so importing this module does not import transformers.
    """
    from transformers import Trainer

    from tuning_trainer.loss import causal_lm_loss, causal_model, chunked_loss_applies

    class TuningTrainer(Trainer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.chunked_loss = chunked_loss_applies(self.model)
            if self.chunked_loss:
                # The loss is divided by the tokens of the whole accumulated batch, which the
                # Trainer counts from ``shift_labels`` and passes in as num_items_in_batch.
                self.model_accepts_loss_kwargs = True
            else:
                log.info("loss: the model's own (its logits are not a plain output layer)")

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if not self.chunked_loss:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            base = causal_model(self.accelerator.unwrap_model(model))
            loss = causal_lm_loss(model, base, inputs, num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                # the count was summed over ranks, and DDP averages the gradients: as Trainer
                loss = loss * (self.accelerator.num_processes // self.get_tp_size())
            return (loss, {"loss": loss}) if return_outputs else loss

    return TuningTrainer
