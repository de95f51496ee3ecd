"""Outputs that serving stacks load: the base model's public name, and ``tuning-trainer export``.

    tuning-trainer export s3://outputs/runs/run-3f2a9c1b --out ./merged --merge

Every adapter the trainer saves (checkpoints and ``final/``) names its base in
``adapter_config.json`` (``base_model_name_or_path``, ``revision``) and in the model card's
``base_model`` as the run config gave it: the Hub id, the ``s3://`` prefix (not the training
machine's cache folder), the local folder, or ``builtin:<name>``. A builtin base is a random
model that exists only inside this package, so ``final/`` of a builtin run also holds that base
(``config.json``, ``model.safetensors``, ``generation_config.json``, a few MB at most for
tiny-llama and small-llama): ``AutoModelForCausalLM.from_pretrained(final)`` loads it and puts
the adapter on it (transformers' rule for a model folder that carries its adapter), with no
tuning_trainer installed. AutoPeftModelForCausalLM reads the base from the name alone, so it
loads Hub and local-folder bases; an ``s3://`` or builtin base is loaded by ``export``.

``export`` copies a run's complete ``final/`` (checked against its manifest), or with
``--merge`` writes the adapter merged into its base: ``model.safetensors``, ``config.json``,
``generation_config.json`` (EOS and pad from the tokenizer) and the tokenizer with its chat
template, which vLLM and ``AutoModelForCausalLM.from_pretrained`` load as a plain model.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from tuning_trainer import checkpoint, model, storage
from tuning_trainer.config import RunConfig
from tuning_trainer.errors import EXIT_OK, InputError

log = logging.getLogger(__name__)

DTYPES = ("auto", "bf16", "fp16", "fp32")


# --- what the trainer writes -----------------------------------------------------------------


def base_model_id(config: RunConfig) -> str:
    """The base model as a user names it: Hub id, s3:// prefix, local folder or builtin:<name>."""
    base = config.model.base_model
    return base.rstrip("/") if storage.is_s3(base) else base


def label_base_model(lm: Any, config: RunConfig) -> None:
    """Name the base on the model, so every adapter peft saves records it (not a cache path).

    peft writes ``base_model_name_or_path`` from its config and the model card's ``base_model``
    from the base model's ``config.name_or_path``; both otherwise hold the folder the weights
    were read from (the S3 sync cache) or nothing (a builtin model built from a config).
    """
    identity = base_model_id(config)
    base = lm.get_base_model() if hasattr(lm, "peft_config") else lm
    base.config.name_or_path = identity
    base.name_or_path = identity
    for adapter in getattr(lm, "peft_config", {}).values():
        adapter.base_model_name_or_path = identity
        adapter.revision = config.model.revision


def embed_builtin_base(final: Path, config: RunConfig, dtype: Any, vocab_size: int) -> None:
    """Save a builtin base (rebuilt bit for bit from its seed) beside the adapter in ``final``."""
    name = model.builtin_name(config.model.base_model)
    if name is None or config.model.method == "full":  # full: final already is the whole model
        return
    base = model.build_builtin_model(name, vocab_size, "sdpa").to(dtype)
    base.config.name_or_path = base_model_id(config)
    base.save_pretrained(final)


# --- tuning-trainer export -------------------------------------------------------------------


def run_export(
    source: str,
    out: str,
    merge: bool = False,
    base_model: str | None = None,
    dtype: str = "auto",
) -> int:
    """Write the final model of the run at ``source`` to ``out``: as published, or merged."""
    if dtype not in DTYPES:
        raise InputError(f"--dtype {dtype!r}: allowed {', '.join(DTYPES)}")
    target = Path(out).expanduser().absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError(f"--out {out}: exists and is not an empty folder; choose a new one")
    store, prefix, manifest = find_final(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as scratch:
        final = _verified_final(store, prefix, manifest, Path(scratch) / "final")
        written = Path(scratch) / "out"
        if merge:
            write_merged(final, written, base_model, dtype)
        else:
            shutil.copytree(final, written)
        if target.exists():
            target.rmdir()  # empty, checked above
        os.replace(written, target)
    log.info("exported %s to %s%s", store.uri(prefix), target, " (merged)" if merge else "")
    return EXIT_OK


def find_final(source: str) -> tuple[storage.Store, str, dict[str, Any]]:
    """The complete final model at ``source``: a run folder, or a final folder itself.

    Returns the store, the final folder's prefix in it and its manifest.
    """
    location = storage.absolute(source).rstrip("/")
    head, _, tail = location.rpartition("/")
    candidates = [(location, checkpoint.FINAL)] + ([(head, tail)] if head and tail else [])
    for root, prefix in candidates:
        store = storage.Store(root)
        manifest = checkpoint.read_manifest(store, prefix)
        if manifest is not None and manifest.get("kind") == "final":
            return store, prefix, manifest
    run = storage.Store(location)
    try:
        steps = checkpoint.complete_steps(run)
    except Exception:  # no such bucket, no access: the message below still holds
        steps = []
    advice = (
        f"the run has not finished (its newest complete checkpoint is step {steps[0]}): resume "
        "it with `tuning-trainer train` and the same config, then export"
        if steps
        else "give a run folder (its output.uri) or a final/ folder"
    )
    raise InputError(
        f"{source}: no complete final model ({run.uri(checkpoint.FINAL)}/{checkpoint.MANIFEST} "
        f"is missing or is not a final model's manifest); {advice}"
    )


def _verified_final(
    store: storage.Store, prefix: str, manifest: dict[str, Any], scratch: Path
) -> Path:
    """A local folder holding the final model as its manifest lists it (local: read in place)."""
    if storage.is_s3(store.root):
        problem = checkpoint.fetch_verified(store, prefix, manifest, scratch)
        folder = scratch
    else:
        folder = Path(store.uri(prefix))
        problem = checkpoint.verify_folder(folder, manifest)
    if problem:
        raise InputError(
            f"{store.uri(prefix)}: {problem}; the folder changed after it was published: "
            "train the run again into a new output.uri"
        )
    return folder


def write_merged(
    final: Path, out: Path, base_model: str | None = None, dtype: str = "auto"
) -> None:
    """The adapter in ``final`` merged into its base, saved with the tokenizer to ``out``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = _torch_dtype(dtype)
    run_config = _run_config(final)
    trust_remote_code = bool(run_config.get("trust_remote_code", False))
    tokenizer = AutoTokenizer.from_pretrained(final)
    adapter_file = final / "adapter_config.json"
    if not adapter_file.is_file():  # method full: final is already the whole model
        lm = AutoModelForCausalLM.from_pretrained(
            final, dtype=torch_dtype, trust_remote_code=trust_remote_code
        )
    else:
        from peft import PeftModel

        adapter = json.loads(adapter_file.read_text())
        base_id = base_model or adapter.get("base_model_name_or_path")
        if not base_id:
            raise InputError(
                f"{adapter_file}: no base_model_name_or_path; name the base with --base-model"
            )
        base = _load_base(
            base_id,
            None if base_model else adapter.get("revision"),
            torch_dtype,
            len(tokenizer),
            trust_remote_code,
            run_config.get("cache_dir"),
        )
        lm = PeftModel.from_pretrained(base, final).merge_and_unload()
        lm.config.name_or_path = base_id
    _complete_generation_config(lm, tokenizer)
    lm.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _torch_dtype(dtype: str) -> Any:
    import torch

    return {
        "auto": "auto",
        "bf16": torch.bfloat16,
        "fp16": torch.float16,
        "fp32": torch.float32,
    }[dtype]


def _run_config(final: Path) -> dict[str, Any]:
    """The ``model`` section of the run's config.yaml in final/ ({} when absent)."""
    try:
        document = yaml.safe_load((final / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {}
    section = document.get("model") if isinstance(document, dict) else None
    return section if isinstance(section, dict) else {}


def _load_base(
    base_id: str,
    revision: str | None,
    torch_dtype: Any,
    vocab_size: int,
    trust_remote_code: bool,
    cache_dir: str | None,
) -> Any:
    from transformers import AutoModelForCausalLM

    try:
        name = model.builtin_name(base_id)
    except InputError as err:
        raise InputError(
            f"base model {base_id!r}: {err}; name the base with --base-model"
        ) from None
    if name is not None:
        base = model.build_builtin_model(name, vocab_size, "sdpa")
        return base if torch_dtype == "auto" else base.to(torch_dtype)
    source = base_id
    if storage.is_s3(base_id):
        cache_root = cache_dir or os.path.expanduser(model.DEFAULT_MODEL_CACHE)
        source = str(model.sync_s3_model(base_id, cache_root))
    try:
        return AutoModelForCausalLM.from_pretrained(
            source, revision=revision, dtype=torch_dtype, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as err:  # ValueError: huggingface_hub's malformed repo id
        raise InputError(
            f"base model {base_id!r} could not be loaded: {err}; "
            "name a reachable copy with --base-model (a local folder or Hub id)"
        ) from None


def _complete_generation_config(lm: Any, tokenizer: Any) -> None:
    """Stop where the fine-tune learned to stop: the tokenizer's EOS is an end token."""
    generation = lm.generation_config
    eos = generation.eos_token_id
    ends = [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ends:
        ends.append(tokenizer.eos_token_id)
    generation.eos_token_id = ends[0] if len(ends) == 1 else ends
    if generation.pad_token_id is None and tokenizer.pad_token_id is not None:
        generation.pad_token_id = tokenizer.pad_token_id
    if generation.bos_token_id is None and tokenizer.bos_token_id is not None:
        generation.bos_token_id = tokenizer.bos_token_id
