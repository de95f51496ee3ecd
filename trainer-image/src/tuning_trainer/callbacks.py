"""Trainer callbacks: what transformers' Trainer lacks for unattended cloud runs.

    TUNING_PROGRESS_FILE=/run/tuning/progress.json tuning-trainer train --config run.yaml

- :class:`ProgressCallback`: the progress file after every optimizer step (the host supervisor's
  idle watchdog reads it), a readable line every logging_steps, and CloudWatch Embedded Metric
  Format JSON lines on stdout (the instance's log group turns them into metrics).
- :class:`DivergenceGuard`: a loss that stays NaN or infinite ends the run (exit 2) instead of
  training garbage until the runtime limit.
- :class:`InterruptCallback`: on SIGTERM or a spot notice, save after the current step and stop.
- :class:`PublishCallback`: every checkpoint the Trainer saves locally is published to the run
  folder (manifest last), then old ones are pruned and the history published with it
  (:func:`publish_history`: ``logs/metrics.jsonl`` and the TensorBoard event files), also when
  interrupted, so a resumed run's curve continues where the published checkpoint left it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tuning_trainer import checkpoint, distributed
from tuning_trainer.errors import DivergedError
from tuning_trainer.signals import Interruption
from tuning_trainer.storage import Store

log = logging.getLogger(__name__)

PROGRESS_FILE_ENV = "TUNING_PROGRESS_FILE"
EMF_NAMESPACE = "TuningLab"
LOGS = "logs"  # the TensorBoard event files, in the staging folder and in the run folder
METRICS_LOG = f"{LOGS}/metrics.jsonl"


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def write_progress(path: str, step: int, max_steps: int, loss: float | None) -> None:
    """Atomically replace the progress file: readers see the old or the new JSON, never half."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    payload = {"step": step, "max_steps": max_steps, "loss": loss, "updated_at": _now_iso()}
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, target)


def _memory_text() -> str:
    import torch

    if torch.cuda.is_available():
        return f"gpu mem {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return f"peak rss {peak_kib / 2**20:.1f} GiB"


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ProgressCallback(TrainerCallback):
    def __init__(self, run_id: str, progress_file: str | None) -> None:
        self.run_id = run_id
        self.progress_file = progress_file
        self.last_loss: float | None = None
        self._started = time.monotonic()
        self._first_step = 0
        self._start_tokens = 0

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control, **kw) -> None:
        self._started = time.monotonic()
        self._first_step = state.global_step
        self._start_tokens = state.num_input_tokens_seen

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control, **kw) -> None:
        if self.progress_file and state.is_world_process_zero:
            write_progress(self.progress_file, state.global_step, state.max_steps, self.last_loss)

    def on_log(
        self, args: TrainingArguments, state: TrainerState, control, logs=None, **kw
    ) -> None:
        logs = logs or {}
        now = time.monotonic()
        if not state.is_world_process_zero:  # the logged values are already means over ranks
            return
        if "loss" in logs:
            self.last_loss = float(logs["loss"])
            if self.progress_file:  # the step's own loss, now that it is known
                write_progress(
                    self.progress_file, state.global_step, state.max_steps, self.last_loss
                )
            # Averaged over this attempt; the Trainer sums each micro-batch's real tokens (no
            # padding) over all ranks as it trains them, so this is the job's tokens/s.
            tokens = state.num_input_tokens_seen - self._start_tokens
            tokens_per_second = tokens / max(now - self._started, 1e-9)
            done = state.global_step - self._first_step
            per_step = (now - self._started) / max(done, 1)
            eta = per_step * (state.max_steps - state.global_step)
            log.info(
                "step %d/%d loss %.4f lr %.2e tok/s %.0f %s eta %s",
                state.global_step,
                state.max_steps,
                self.last_loss,
                float(logs.get("learning_rate", 0.0)),
                tokens_per_second,
                _memory_text(),
                _duration(eta),
            )
            self._emit_metrics(
                state.global_step,
                state.max_steps,
                loss=self.last_loss,
                tokens_per_second=tokens_per_second,
                learning_rate=float(logs.get("learning_rate", 0.0)),
            )
        if "eval_loss" in logs:
            log.info("step %d eval loss %.4f", state.global_step, logs["eval_loss"])
            self._emit_metrics(
                state.global_step, state.max_steps, eval_loss=float(logs["eval_loss"])
            )

    def _emit_metrics(self, step: int, max_steps: int, **metrics: float) -> None:
        units = {"tokens_per_second": "Count/Second"}
        document = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": EMF_NAMESPACE,
                        "Dimensions": [["RunId"]],
                        "Metrics": [
                            {"Name": name, "Unit": units.get(name, "None")} for name in metrics
                        ],
                    }
                ],
            },
            "RunId": self.run_id,
            "step": step,
            # A property, not a metric: where there is no progress file to read (a SageMaker
            # job), the job controller takes the run's length from it.
            "max_steps": max_steps,
            **metrics,
        }
        sys.stdout.write(json.dumps(document) + "\n")
        sys.stdout.flush()


class DivergenceGuard(TrainerCallback):
    """Stop a run whose logged training loss is NaN or infinite in consecutive log windows.

    The Trainer runs with ``logging_nan_inf_filter=False`` so that a broken loss reaches the log
    at all (transformers' default filter replaces it with the running mean, and a diverged bf16
    run would report a plausible loss while its weights are NaN). One bad window is tolerated
    (a transient overflow); ``windows`` in a row raise before that step's checkpoint is saved,
    so no NaN weights are published.
    """

    def __init__(self, windows: int = 2) -> None:
        self.windows = windows
        self.bad: list[int] = []

    def on_log(self, args, state: TrainerState, control, logs=None, **kw) -> None:
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        if math.isfinite(float(loss)):
            self.bad.clear()
            return
        self.bad.append(state.global_step)
        if len(self.bad) >= self.windows:
            raise DivergedError(
                f"training diverged: the loss was {loss} at steps "
                f"{', '.join(map(str, self.bad))}; lower training.learning_rate, keep "
                "training.max_grad_norm > 0, or use precision bf16 instead of fp16 where the GPU "
                "has it; checkpoints published before the divergence are kept"
            )


class InterruptCallback(TrainerCallback):
    """Turn an interruption request into "save now, then stop" at the end of the current step."""

    def __init__(self, interruption: Interruption) -> None:
        self.interruption = interruption
        self.step_seconds = 0.0
        self._step_started = time.monotonic()

    def on_step_begin(self, args, state, control: TrainerControl, **kw) -> None:
        self._step_started = time.monotonic()

    def on_step_end(self, args, state, control: TrainerControl, **kw) -> None:
        self.step_seconds = time.monotonic() - self._step_started
        # every rank, every step: all ranks stop at the same step whichever rank was asked
        requested = distributed.agree(self.interruption.requested.is_set())
        if requested and not self.interruption.requested.is_set():
            self.interruption.request("another rank was asked to stop")
        if requested and not control.should_training_stop:
            control.should_save = True
            control.should_training_stop = True
            control.should_evaluate = False  # no time for it inside the spot window
            log.warning(
                "stopping at step %d to checkpoint; %.0f s left of the %.0f s deadline",
                state.global_step,
                self.interruption.seconds_left(),
                self.interruption.deadline_seconds,
            )


class PublishCallback(TrainerCallback):
    """Publish each local checkpoint (``<staging>/checkpoint-N``) as ``checkpoints/step-N``."""

    def __init__(
        self,
        store: Store,
        config_yaml: str,
        keep: int | None,
        logs_dir: Path,
        interruption: Interruption,
        strategy: str = "none",
    ) -> None:
        self.strategy = strategy
        self.store = store
        self.config_yaml = config_yaml
        self.keep = keep
        self.logs_dir = logs_dir
        self.interruption = interruption
        self.published_step: int | None = None
        self.last_publish_seconds = 0.0

    def on_save(self, args: TrainingArguments, state: TrainerState, control, **kw) -> None:
        """Rank 0 publishes, once every rank has written its part of the checkpoint."""
        distributed.barrier()
        self.published_step = state.global_step
        if not distributed.is_main():
            return
        local = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        (local / "config.yaml").write_text(self.config_yaml)
        distributed.write_layout(local, self.strategy)
        if self.interruption.requested.is_set():
            self._warn_if_late()
        result = checkpoint.publish(
            self.store,
            local,
            checkpoint.step_prefix(state.global_step),
            "checkpoint",
            state.global_step,
        )
        self.last_publish_seconds = result.seconds
        checkpoint.prune(self.store, self.keep)
        # After the checkpoint is complete, so a slow upload never costs the checkpoint; also
        # when interrupted: the history is small and a resumed run continues from it.
        publish_history(self.store, self.logs_dir, state.log_history)

    def _warn_if_late(self) -> None:
        left = self.interruption.seconds_left()
        if self.last_publish_seconds > left:
            log.error(
                "the last publish took %.0f s but only %.0f s are left before the deadline: the "
                "checkpoint may not complete in time (raise interruption.deadline_seconds or "
                "save_steps less data)",
                self.last_publish_seconds,
                left,
            )


def publish_history(store: Store, logs_dir: Path, log_history: list[dict[str, Any]]) -> None:
    """Publish the metrics log and the TensorBoard event files to ``logs/`` (best effort).

    ``logs/metrics.jsonl`` is the Trainer's log history, one JSON object a line (``step``,
    ``loss``, ``learning_rate``, ``grad_norm``, ``num_input_tokens_seen``, ``eval_loss``, ...),
    rewritten whole each time. The history is saved in every checkpoint and restored on resume,
    so the published log ends at the published checkpoint's step and a resumed run continues it
    with no step missing or repeated.
    """
    try:
        lines = "".join(json.dumps(entry, sort_keys=True) + "\n" for entry in log_history)
        store.put_bytes(METRICS_LOG, lines.encode())
    except Exception as err:  # logs must never fail a run
        log.warning("could not publish %s: %s", store.uri(METRICS_LOG), err)
    publish_logs(store, logs_dir)


def publish_logs(store: Store, logs_dir: Path) -> None:
    """Copy the TensorBoard event files to ``logs/`` of the run folder (best effort)."""
    if not logs_dir.is_dir():
        return
    for path in sorted(logs_dir.rglob("*")):
        if path.is_file():
            try:
                store.upload(path, f"{LOGS}/{path.relative_to(logs_dir).as_posix()}")
            except Exception as err:  # logs must never fail a run
                log.warning("could not publish %s: %s", path, err)


def make_tensorboard_callback(logs_dir: Path) -> Any:
    """transformers' TensorBoard callback, writing to ``logs_dir``, that continues a resumed run.

    Each attempt writes its own event file. A resumed attempt opens it with TensorBoard's
    ``purge_step`` at the step after the checkpoint it resumed from, so events an earlier attempt
    logged past that checkpoint (steps that are trained again) are hidden: the curve has no
    step twice.
    """
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    class ResumingTensorBoardCallback(TensorBoardCallback):
        def on_train_begin(self, args, state, control, **kwargs) -> None:
            # the Trainer restores the checkpoint's state before this call
            if self.tb_writer is None and state.is_world_process_zero:
                purge_step = state.global_step + 1 if state.global_step > 0 else None
                self.tb_writer = SummaryWriter(log_dir=str(logs_dir), purge_step=purge_step)
            super().on_train_begin(args, state, control, **kwargs)

    return ResumingTensorBoardCallback()
