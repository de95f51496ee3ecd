"""No silent drift: a run's saved ``config.yaml`` against the config about to resume or re-run it.

    tuning-trainer train --config run.yaml --max-steps 2000 --allow-config-change

A run folder that holds a complete checkpoint or a final model was trained with its saved
``config.yaml``. Before any work, :func:`check` compares that with the newly resolved config and
sorts every changed key into one of three kinds:

- harmless (:data:`HARMLESS`): how the run is logged, saved, evaluated, computed or where it
  writes; the weights come out the same. Logged as a WARNING; ``config.yaml`` then records them.
- allowed with ``--allow-config-change`` (:data:`ALLOWED_WITH_FLAG`): the run length and the
  eval file. Resuming is well defined (Trainer restores the optimizer, the scheduler and the
  data position; the new length applies from the resumed step on), but the result is no longer
  the run that was started, so it takes an explicit flag.
- everything else changes what is trained (base model, method, LoRA shape, data and its
  tokenisation, optimizer, schedule, batch size, seed, precision): exit 2 with the diff. The
  checkpoint's optimizer and scheduler would keep the old values while ``config.yaml`` claimed
  the new ones, and a new LoRA shape would not even load. A key this module does not list is
  in this kind, so a new setting is safe until someone decides otherwise.

A finished run is never trained again: any change but a harmless one exits 2, and a harmless one
is only logged (``config.yaml`` keeps describing what trained).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from tuning_trainer.config import RunConfig
from tuning_trainer.errors import ConfigError

log = logging.getLogger(__name__)

FLAG = "--allow-config-change"

# Dotted keys, or a section name for all of its keys.
HARMLESS = frozenset(
    {
        "interruption",
        "output",  # where the run folder and the local staging are; uri: the folder was moved
        "model.cache_dir",
        "model.attn_implementation",  # the same attention, another kernel
        "data.root",  # only a base for data.train/data.eval, which are compared resolved
        "data.max_truncated_fraction",  # a gate before training, not how it trains
        "training.logging_steps",
        "training.save_steps",
        "training.save_total_limit",
        "training.eval_steps",
        "training.per_device_eval_batch_size",
        "training.report_to",
        "training.gradient_checkpointing",  # recomputes activations, same gradients
        # the same global batch and loss; a checkpoint records its layout (distributed.py)
        "training.distributed",
    }
)
_RUN_LENGTH = frozenset({"training.max_steps", "training.num_train_epochs"})
ALLOWED_WITH_FLAG = _RUN_LENGTH | {"data.eval"}

# Why a resumed run cannot take the new value; the most specific key wins.
_REFUSAL_REASONS = {
    "model": "the checkpoint's weights come from the old base model and method",
    "lora": "the checkpoint's adapter was trained with the old LoRA settings (a new shape "
    "would not even load)",
    "data": "the tokenised rows, their loss masks and the resumed data position belong to the "
    "old data settings",
    "training": "the checkpoint's optimizer and learning-rate scheduler carry the old settings; "
    "resuming would keep them while config.yaml claimed the new value",
    "training.per_device_train_batch_size": "the resumed data position counts batches of the "
    "old size",
    "training.gradient_accumulation_steps": "the resumed data position counts batches of the "
    "old size",
    "training.seed": "the data order of the remaining steps would not continue the one trained",
    "training.precision": "the checkpoint was trained at the old precision",
    "training.max_grad_norm": "the remaining steps would be clipped differently from the first",
}

HARMLESS_KIND, ALLOWED_KIND, REFUSED_KIND = "harmless", "allowed", "refused"
_ABSENT = object()


@dataclass(frozen=True)
class Change:
    key: str
    old: Any
    new: Any

    @property
    def kind(self) -> str:
        if _matches(self.key, HARMLESS):
            return HARMLESS_KIND
        if _matches(self.key, ALLOWED_WITH_FLAG):
            return ALLOWED_KIND
        return REFUSED_KIND

    def line(self) -> str:
        return f"{self.key}: {_show(self.old)} -> {_show(self.new)}"


def _matches(key: str, keys: frozenset[str]) -> bool:
    parts = key.split(".")
    return any(".".join(parts[:end]) in keys for end in range(1, len(parts) + 1))


def _reason(key: str) -> str:
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        reason = _REFUSAL_REASONS.get(".".join(parts[:end]))
        if reason:
            return reason
    return "it changes what is trained"


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "(not set)"
    if isinstance(value, str):
        if len(value) > 60:  # a chat template: enough to tell two apart
            digest = hashlib.sha256(value.encode()).hexdigest()[:8]
            return f"{value[:30]!r}... ({len(value)} chars, sha256 {digest})"
        return value or "''"
    return json.dumps(value)


def parse_saved(text: str) -> dict[str, Any] | None:
    """A saved config.yaml as plain data, defaults filled in; None when it is not a mapping."""
    try:
        saved = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if not isinstance(saved, dict):
        return None
    try:
        # Normalises types and fills keys a newer trainer added with their defaults.
        return RunConfig.model_validate(saved).model_dump(mode="json")
    except ValidationError:
        return saved  # written by another trainer version: compare what is there


def compare(saved: Mapping[str, Any], config: RunConfig) -> list[Change]:
    """Every key whose value differs, in the order of the config's sections."""
    old, new = _flatten(saved), _flatten(config.model_dump(mode="json"))
    keys = list(new) + [key for key in old if key not in new]
    return [
        Change(key, old.get(key, _ABSENT), new.get(key, _ABSENT))
        for key in keys
        if old.get(key, _ABSENT) != new.get(key, _ABSENT)
    ]


def _flatten(document: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in document.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def check(changes: list[Change], saved_at: str, finished: bool, allow_config_change: bool) -> None:
    """Log what may change; raise ConfigError (exit 2) with the diff for what may not."""
    if not changes:
        return
    harmless = [c for c in changes if c.kind == HARMLESS_KIND]
    allowed = [c for c in changes if c.kind == ALLOWED_KIND]
    refused = [c for c in changes if c.kind == REFUSED_KIND]
    if finished and (refused or allowed):
        headline = (
            f"this run is finished and was trained with another config ({saved_at}); a "
            "finished run is never trained again:"
        )
        raise ConfigError(_refusal(headline, refused + allowed, harmless, finished, False))
    if refused or (allowed and not allow_config_change):
        headline = (
            f"the config differs from the one this run was trained with ({saved_at}); "
            "resuming would silently mix the two:"
        )
        raise ConfigError(
            _refusal(headline, refused + allowed, harmless, finished, allow_config_change)
        )
    if harmless:
        log.warning(
            "config changed since %s in harmless keys (the weights come out the same)%s:\n  %s",
            saved_at,
            "; not recorded: the run is finished" if finished else "; config.yaml records them",
            "\n  ".join(c.line() for c in harmless),
        )
    if allowed:
        length = any(c.key in _RUN_LENGTH for c in allowed)
        log.warning(
            "%s: continuing this run with a changed config; config.yaml records it%s:\n  %s",
            FLAG,
            " (a decaying learning-rate schedule is recomputed for the new length from the "
            "resumed step on)"
            if length
            else "",
            "\n  ".join(c.line() for c in allowed),
        )


def _refusal(
    headline: str,
    blocking: list[Change],
    harmless: list[Change],
    finished: bool,
    flag_given: bool,
) -> str:
    lines = [headline]
    for change in blocking:
        if change.kind == ALLOWED_KIND:
            if finished:
                note = "a finished run is not extended"
            else:
                note = "allowed by the flag" if flag_given else f"allowed with {FLAG}"
        elif flag_given:
            note = f"refused even with {FLAG}: {_reason(change.key)}"
        else:
            note = _reason(change.key)
        lines.append(f"  {change.line()}  ({note})")
    lines += [f"  {change.line()}  (harmless)" for change in harmless]
    lines.append(
        "To train the new settings, start a new run: another output.uri (or LLM_OUTPUT__URI), "
        "on EC2 a new -c runId. To continue this run, restore the old values."
    )
    if not finished:
        lines.append(
            f"{FLAG} accepts only a new {', '.join(sorted(ALLOWED_WITH_FLAG))}; harmless keys "
            "(logging, saving and evaluation cadence, output, interruption) may always change."
        )
    return "\n".join(lines)
