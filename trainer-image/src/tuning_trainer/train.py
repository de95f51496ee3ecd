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
import signal
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuning_trainer import (
    checkpoint,
    data,
    distributed,
    drift,
    estimate,
    export,
    model,
    sagemaker,
    storage,
)
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
    nproc_per_node: int | None = None,
    argv: Sequence[str] | None = None,
) -> int:
    """Train, or with several GPUs start the ranks that train (:mod:`tuning_trainer.distributed`).

    ``argv`` is this command's own arguments: each rank runs ``tuning-trainer`` with them.
    """
    env = os.environ if env is None else env
    if distributed.in_job():
        distributed.die_with_parent()
        distributed.init_job()
        if not distributed.is_main():  # one rank speaks; the others only warn
            logging.getLogger("tuning_trainer").setLevel(logging.WARNING)
    config = load_config(config_location, env, overrides).config
    config_yaml = config.to_yaml()
    log.info("resolved run config:\n%s", config_yaml.rstrip())
    store = storage.Store(config.output.uri)
    finished = checkpoint.is_final_complete(store)
    check_config_drift(config, store, resume, finished, allow_config_change)
    if finished:
        log.info("%s is complete: nothing to do", store.uri(checkpoint.FINAL))
        return EXIT_OK
    if not distributed.in_job():
        launch = plan_launch(config, store, resume, nproc_per_node, env)
        log.info(
            "distributed: %s on %d process(es): %s", launch.strategy, launch.world, launch.reason
        )
        if launch.strategy != "none":
            if argv is None:
                raise ConfigError("several processes need the command's arguments to start")
            deadline = config.interruption.deadline_seconds
            job = sagemaker.detect(env)
            nodes = sagemaker.torchrun_nodes(job) if job else None
            per_node = launch.world // (job.nodes if job else 1)
            return distributed.launch(argv, launch.strategy, per_node, deadline, env, nodes)

    interruption = Interruption(config.interruption.deadline_seconds)
    interruption.install_signal_handlers()
    # a spot notice is one per machine: local rank 0 polls and the ranks agree at each step
    polling = config.interruption.spot_polling if distributed.local_rank() == 0 else "never"
    poller = SpotNoticePoller(
        interruption, polling, config.interruption.poll_interval_seconds
    ).start()
    try:
        return _train(config, config_yaml, store, resume, interruption, env)
    finally:
        poller.stop()
        interruption.restore_signal_handlers()
        if distributed.in_job():
            # torchrun stops the other ranks with SIGTERM once one exits: a rank that is done
            # must still report its exit code (distributed.write_outcome), not die silently
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            distributed.leave_job()


def plan_launch(
    config: RunConfig,
    store: storage.Store,
    resume: str,
    nproc_per_node: int | None,
    env: Mapping[str, str],
) -> estimate.StrategyChoice:
    """How many processes and which strategy: exit 2 (ConfigError) before any rank starts."""
    job = sagemaker.detect(env)
    hosts = job.nodes if job else 1
    world = distributed.resolve_nproc(nproc_per_node, env) * hosts
    gpu_memory = distributed.gpu_memory_gib()
    needs_shape = world > 1 and config.training.distributed in ("auto", "fsdp")
    shape = model.base_shape(config) if needs_shape and gpu_memory else None
    resumed = _resumed_layout(store) if resume == "auto" else None
    if resume not in ("auto", "none"):
        resumed = distributed.read_layout(Path(resume))
    choice = estimate.choose_strategy(config, world, gpu_memory, shape, resumed)
    if hosts > 1 and choice.strategy != "ddp":
        raise ConfigError(
            f"training.distributed: this job has {hosts} hosts and resolved to "
            f"{choice.strategy} ({choice.reason}); across hosts tuning-trainer trains with ddp "
            "only (an FSDP checkpoint would be split over the hosts' disks): set "
            "training.distributed = ddp, or train on one host"
        )
    return choice


def _resumed_layout(store: storage.Store) -> dict[str, Any] | None:
    """The layout of the newest complete checkpoint, which ``auto`` resumes from; None if none."""
    for step in checkpoint.complete_steps(store)[:1]:
        relative = f"{checkpoint.step_prefix(step)}/{distributed.LAYOUT_FILE}"
        try:
            return distributed.parse_layout(store.get_bytes(relative).decode())
        except FileNotFoundError:
            return distributed.parse_layout("")
    return None


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
    staging = staging_dir(config)
    if distributed.is_main():
        store.put_bytes("config.yaml", config_yaml.encode())
    if distributed.local_rank() == 0:
        # Leftovers of an earlier process on this disk; the run folder holds what counts.
        for stale in [*staging.glob("checkpoint-*"), staging / "logs", staging / "final"]:
            shutil.rmtree(stale, ignore_errors=True)
        staging.mkdir(parents=True, exist_ok=True)
    distributed.barrier()
    resume_path = _resume_path(resume, store, staging)
    if distributed.agree(interruption.requested.is_set()):
        log.warning("interrupted before training started; nothing new to checkpoint")
        return EXIT_INTERRUPTED

    lm = load_seeded_model(config, plan, len(prepared.tokenizer))
    trainer, publisher = build_trainer(
        config, config_yaml, plan, prepared, lm, store, staging, env, interruption
    )
    trainer.train(resume_from_checkpoint=resume_path)

    state = trainer.state
    interrupted = distributed.agree(interruption.requested.is_set())
    if interrupted and state.global_step < state.max_steps:
        if publisher.published_step != state.global_step:
            # stopped outside a step end (e.g. during evaluation): save now, every rank
            trainer._save_checkpoint(trainer.model, trial=None)
            publisher.on_save(trainer.args, state, trainer.control)
        if distributed.is_main():
            _report_deadline(interruption, state.global_step)
        distributed.barrier()  # no rank exits while rank 0 still publishes
        return EXIT_INTERRUPTED

    final = staging / "final"
    if distributed.is_main():
        shutil.rmtree(final, ignore_errors=True)
    distributed.barrier()
    save_final_model(trainer, final)
    if distributed.is_main():
        export.embed_builtin_base(final, config, plan.torch_dtype, len(prepared.tokenizer))
        state.save_to_json(str(final / "trainer_state.json"))
        (final / "config.yaml").write_text(config_yaml)
        from tuning_trainer.callbacks import LOGS, publish_history

        # the history first: once final/ is complete, so is its curve
        publish_history(store, staging / LOGS, state.log_history)
        checkpoint.publish(store, final, checkpoint.FINAL, "final", state.global_step)
        log.info("finished: %s", store.uri(checkpoint.FINAL))
        job = sagemaker.current()
        if job is not None:
            sagemaker.copy_final_model(job, final)
    distributed.barrier()
    return EXIT_OK


def save_final_model(trainer: Any, folder: Path) -> None:
    """The trained model as one plain folder (every rank takes part; rank 0 writes).

    FSDP checkpoints are shards, one per rank, which only an FSDP job of the same size loads;
    the final model is gathered into whole tensors instead, so it loads anywhere.
    """
    if not getattr(trainer, "is_fsdp_enabled", False):
        trainer.save_model(str(folder))  # writes on rank 0 only
        return
    trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    state_dict = trainer.accelerator.get_state_dict(trainer.model)  # collective: every rank
    if distributed.is_main():
        trainer._save(str(folder), state_dict=state_dict)


def load_seeded_model(config: RunConfig, plan: model.HardwarePlan, vocab_size: int) -> Any:
    """The adapters' random init draws from the global RNG: seed it so every process agrees."""
    from transformers import set_seed

    set_seed(config.training.seed)
    lm = model.load_model(config, plan, vocab_size)
    export.label_base_model(lm, config)  # checkpoints and final name the base, not a cache path
    return lm


def _resume_path(resume: str, store: storage.Store, staging: Path) -> str | None:
    """The checkpoint folder to resume from. ``auto``: local rank 0 fetches the newest complete
    published one into the staging folder, which the ranks of this machine share."""
    if resume == "none":
        return None
    if resume == "auto":
        job = sagemaker.current()
        copied = job.checkpoints if job else None  # what SageMaker copied in at the job's start
        found_step = -1
        if distributed.local_rank() == 0:  # one fetch per machine, into its shared staging
            found = checkpoint.fetch_latest(store, staging, copied)
            found_step = int(found.name.rsplit("-", 1)[1]) if found else -1
        step = distributed.broadcast_int(found_step)  # every machine resumes rank 0's step
        mine = distributed.local_rank() == 0 and step >= 0 and found_step != step
        if mine and checkpoint.fetch_step(store, staging, step, copied) is None:
            raise RuntimeError(f"checkpoint step {step} vanished while the job started")
        distributed.barrier()
        return str(staging / f"checkpoint-{step}") if step >= 0 else None
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
    strategy = distributed.job_strategy()
    fsdp = strategy == "fsdp"
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
        # under FSDP its own checkpointing wrapper, which needs no second all-gather
        activation_checkpointing=training.gradient_checkpointing and not fsdp,
        activation_checkpointing_kwargs={"use_reentrant": False},
        fsdp=fsdp or None,
        fsdp_config=fsdp_config(training.gradient_checkpointing) if fsdp else None,
        # every parameter takes part in every step; the extra graph walk would cost each step
        ddp_find_unused_parameters=False,
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
        store, config_yaml, training.save_total_limit, staging / "logs", interruption, strategy
    )
    callbacks = [
        ProgressCallback(run_id_of(config), env.get(PROGRESS_FILE_ENV)),
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
    if fsdp and not trainer.is_fsdp_enabled:
        raise RuntimeError("training.distributed resolved to fsdp, but accelerate did not shard")
    return trainer, publisher


def fsdp_config(activation_checkpointing: bool) -> dict[str, Any]:
    """FSDP2 through accelerate: each decoder layer a unit (the model's ``_no_split_modules``).

    Checkpoints are sharded (each rank writes its own part, in parallel, inside the spot
    window); the final model is gathered whole (:func:`save_final_model`).
    """
    return {
        "version": 2,
        "state_dict_type": "SHARDED_STATE_DICT",
        "reshard_after_forward": True,
        "activation_checkpointing": activation_checkpointing,
        "cpu_ram_efficient_loading": False,
    }


def make_trainer_class() -> type:
    """transformers' Trainer with the chunked loss of :mod:`tuning_trainer.loss`.

    Built on first use so importing this module does not import transformers.
    """
    from transformers import Trainer

    from tuning_trainer.loss import causal_lm_loss, causal_model, chunked_loss_applies

    class TuningTrainer(Trainer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # FSDP shards the output weight outside the forward call: the model's own loss
            self.chunked_loss = chunked_loss_applies(self.model) and not self.is_fsdp_enabled
            if self.chunked_loss:
                # The loss is divided by the tokens of the whole accumulated batch, which the
                # Trainer counts from ``shift_labels`` and passes in as num_items_in_batch.
                self.model_accepts_loss_kwargs = True
            else:
                log.info("loss: the model's own (its logits are not a plain output layer)")

        def create_accelerator_and_postprocess(self) -> None:
            super().create_accelerator_and_postprocess()
            cpu_fsdp_plugin(self)

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


def cpu_fsdp_plugin(trainer: Any) -> None:
    """FSDP on CPU ranks (gloo), which is how the tests run it.

    accelerate 1.15 turns on its FSDP plugin only for GPU-like distributed types and silently
    trains MULTI_CPU as DDP instead; torch's FSDP2 itself runs on CPU with gloo. On a GPU this
    does nothing.
    """
    if trainer.args.fsdp_plugin_args is None:
        return
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    state = trainer.accelerator.state
    if state.distributed_type == DistributedType.MULTI_CPU and not getattr(
        state, "fsdp_plugin", None
    ):
        from accelerate.state import PartialState

        state.distributed_type = DistributedType.FSDP
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP
        state.fsdp_plugin = FullyShardedDataParallelPlugin(**trainer.args.fsdp_plugin_args)
        trainer.is_fsdp_enabled = True
