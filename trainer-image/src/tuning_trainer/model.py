"""Base model and tokenizer loading, hardware decisions, and the LoRA/QLoRA/full wrapping.

    python -c "from tuning_trainer.model import builtin_tokenizer; print(builtin_tokenizer())"

``builtin:tiny-llama`` (2 layers, hidden 64), ``builtin:small-llama`` (4 layers, hidden 256) and
``builtin:small-qwen2`` (Qwen2.5's 151,936-token vocabulary and tied output layer, GQA 8:2, 4
layers of hidden 512: the proportions of a real fine-tune, where the logits dominate) are random
models built from a config, with a byte-level tokenizer made in-process: they exist so tests, the
demo and the benchmark run offline on a CPU. They learn the patterns of their training data and
nothing else.

Decisions that depend on the GPU (DESIGN.md section 6) are made once, in :func:`plan_hardware`:
precision ``auto`` is bf16 at compute capability >= 8.0, fp16 (fp32 adapters, loss scaling)
below it (V100, T4), fp32 on CPU; attention ``auto`` is FlashAttention 2 when the package is
installed and the GPU is Ampere or newer, else sdpa.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuning_trainer import distributed, storage
from tuning_trainer.config import RunConfig
from tuning_trainer.errors import ConfigError

log = logging.getLogger(__name__)

BUILTIN_PREFIX = "builtin:"
BUILTIN_MODELS: dict[str, dict[str, Any]] = {
    "tiny-llama": {"layers": 2, "hidden": 64, "heads": 4, "kv_heads": 2, "intermediate": 128},
    "small-llama": {"layers": 4, "hidden": 256, "heads": 8, "kv_heads": 4, "intermediate": 704},
    "small-qwen2": {
        "architecture": "qwen2",
        "layers": 4,
        "hidden": 512,
        "heads": 8,
        "kv_heads": 2,
        "intermediate": 1536,
        "vocab": 151_936,  # Qwen2.5's config.json; the byte tokenizer uses its first 259 ids
        "tied": True,
    },
}
BUILTIN_INIT_SEED = 1234  # the "pretrained" weights must be identical in every run and resume
BUILTIN_SPECIAL_TOKENS = ["<pad>", "<s>", "</s>"]
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # org/name, or a legacy bare name
HUB_PROBE_SECONDS = 10  # validate's one request to the Hub, instead of its client's retries
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".h5", ".msgpack")
DEFAULT_MODEL_CACHE = "~/.cache/tuning-lab/models"  # model.cache_dir unset
SYNC_MARKER = ".tuning-lab-sync.json"  # in the synced folder, written last

# Used when a tokenizer has no chat template of its own. Every assistant turn ends with the EOS
# token so the model learns to stop.
DEFAULT_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{{ message['content'] + '\\n\\n' }}"
    "{%- elif message['role'] == 'user' -%}{{ '### User:\\n' + message['content'] + '\\n\\n' }}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{ '### Assistant:\\n' + message['content'] + eos_token + '\\n\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '### Assistant:\\n' }}{%- endif -%}"
)


@dataclass(frozen=True)
class HardwarePlan:
    device: str  # "cuda" or "cpu"
    precision: str  # "bf16", "fp16" or "fp32"
    attn_implementation: str
    compute_capability: tuple[int, int] | None

    @property
    def torch_dtype(self) -> Any:
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[
            self.precision
        ]


def plan_hardware(
    config: RunConfig, cuda: bool | None = None, capability: tuple[int, int] | None = None
) -> HardwarePlan:
    """Resolve precision and attention for this machine, or refuse an impossible combination.

    Precision on a CPU: fp32 (``auto``) or bf16 (PyTorch's CPU autocast supports it); fp16 is
    refused, because its loss scaling needs CUDA. ``cuda`` and ``capability`` default to what
    torch sees; tests pass them in.
    """
    import torch

    cuda = torch.cuda.is_available() if cuda is None else cuda
    if cuda and capability is None:
        capability = torch.cuda.get_device_capability()
    method, precision = config.model.method, config.training.precision
    if method == "qlora":
        if not cuda:
            raise ConfigError(
                "model.method = 'qlora' needs a CUDA GPU (bitsandbytes 4-bit); this machine has "
                "none: use method 'lora' here, or validate with `tuning-trainer validate`"
            )
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError("model.method = 'qlora' needs the bitsandbytes package installed")
    if config.training.optim.endswith("8bit") and importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(
            f"training.optim = '{config.training.optim}' needs bitsandbytes; "
            "use adamw_torch or adamw_torch_fused"
        )
    if not cuda:
        if precision == "fp16":
            raise ConfigError(
                "training.precision = 'fp16' needs a CUDA GPU (loss scaling); on CPU use "
                "'auto' (fp32), 'fp32' or 'bf16' (CPU autocast)"
            )
        resolved = "fp32" if precision == "auto" else precision
    else:
        ampere = capability is not None and capability >= (8, 0)
        if precision == "bf16" and not ampere:
            raise ConfigError(
                f"training.precision = 'bf16' needs compute capability >= 8.0; this GPU has "
                f"{capability[0]}.{capability[1]} (V100/T4): use 'auto' or 'fp16'"
            )
        resolved = precision if precision != "auto" else ("bf16" if ampere else "fp16")
    attention = _plan_attention(config.model.attn_implementation, cuda, capability)
    return HardwarePlan("cuda" if cuda else "cpu", resolved, attention, capability)


def _plan_attention(requested: str, cuda: bool, capability: tuple[int, int] | None) -> str:
    flash_ok = (
        cuda
        and capability is not None
        and capability >= (8, 0)
        and importlib.util.find_spec("flash_attn") is not None
    )
    if requested == "flash_attention_2" and not flash_ok:
        raise ConfigError(
            "model.attn_implementation = 'flash_attention_2' needs the flash-attn package and a "
            "GPU with compute capability >= 8.0: use 'auto' or 'sdpa'"
        )
    if requested == "auto":
        return "flash_attention_2" if flash_ok else "sdpa"
    return requested


# --- where the base model comes from ---------------------------------------------------------


def builtin_name(base_model: str) -> str | None:
    if not base_model.startswith(BUILTIN_PREFIX):
        return None
    name = base_model[len(BUILTIN_PREFIX) :]
    if name not in BUILTIN_MODELS:
        allowed = ", ".join(BUILTIN_PREFIX + n for n in BUILTIN_MODELS)
        raise ConfigError(f"model.base_model = {base_model!r}: unknown builtin; allowed: {allowed}")
    return name


def check_base_model(config: RunConfig) -> None:
    """Fail early when the base model cannot exist: bad builtin, missing path or S3 prefix."""
    base = config.model.base_model
    if builtin_name(base) is not None:
        return
    if storage.is_s3(base):
        prefix = base.rstrip("/") + "/"
        if not storage.exists(prefix + "config.json"):
            raise ConfigError(f"model.base_model = {base!r}: no config.json under that S3 prefix")
        return
    if os.path.isabs(base):
        if not os.path.isfile(os.path.join(base, "config.json")):
            raise ConfigError(f"model.base_model = {base!r}: no such model folder (config.json)")
        return
    if not HUB_ID.match(base):
        raise ConfigError(
            f"model.base_model = {base!r}: expected a Hugging Face id (org/name), an s3:// "
            f"prefix, a local folder, or one of "
            + ", ".join(BUILTIN_PREFIX + n for n in BUILTIN_MODELS)
        )


def check_hub_reachable(config: RunConfig) -> None:
    """For `validate` on a laptop: a Hugging Face id must be in the local cache or the Hub must
    answer; else one line (exit 2) instead of the Hub client's minute of retries and traceback.

    `train` does not call it: on the instance a Hub outage is worth a retry (exit 1), not a
    verdict on the config.
    """
    base = config.model.base_model
    if builtin_name(base) is not None or storage.is_s3(base) or os.path.isabs(base):
        return
    from huggingface_hub import constants, try_to_load_from_cache

    cached = try_to_load_from_cache(base, "config.json", revision=config.model.revision)
    if isinstance(cached, str):
        return  # from_pretrained reads the cache when the Hub does not answer
    if constants.HF_HUB_OFFLINE:
        why = "HF_HUB_OFFLINE is set"
    else:
        why = _hub_unreachable(f"{constants.ENDPOINT}/api/models/{base}")
        if why is None:
            return
    raise ConfigError(
        f"model.base_model = {base!r}: the Hugging Face Hub ({constants.ENDPOINT}) is not "
        f"reachable ({why}) and the model is not in the local cache; stage it as an s3:// "
        "prefix (s3://<DataBucketName>/models/<name>/) or a local folder and name that in "
        "model.base_model (trainer-image/README.md, Base models)"
    )


def _hub_unreachable(url: str) -> str | None:
    """Why ``url`` cannot be reached in one try, or None when any HTTP answer came back."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(
            urllib.request.Request(url, method="HEAD"), timeout=HUB_PROBE_SECONDS
        ).close()
    except urllib.error.HTTPError:
        return None  # 401, 404, ...: the Hub answered; from_pretrained reports what it means
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        return str(reason).splitlines()[0] if str(reason) else type(reason).__name__
    return None


def local_model_dir(config: RunConfig, include_weights: bool = True) -> str:
    """A path or hub id ``from_pretrained`` can read; s3:// prefixes are synced once to a cache."""
    base = config.model.base_model
    if not storage.is_s3(base):
        return base
    cache_root = config.model.cache_dir or os.path.expanduser(DEFAULT_MODEL_CACHE)
    return str(sync_s3_model(base, cache_root, include_weights))


def sync_s3_model(uri: str, cache_root: str | Path, include_weights: bool = True) -> Path:
    """Copy the model under the s3:// prefix ``uri`` into ``cache_root`` once; its local folder.

    The marker (:data:`SYNC_MARKER`, written last) lists every file with its size, and the cache
    counts only while every listed file is there at that size: a sync cut off half way, or a
    file removed from the scratch volume since, is synced again (only what is missing). A
    tokenizer-only sync (``include_weights=False``) leaves a marker that does not satisfy a full
    one, and the full sync then downloads only the weights. Runs sharing the cache take a file
    lock, so a second run waits for the first and downloads nothing.
    """
    bucket, key = storage.split_s3(uri.rstrip("/"))
    target = Path(cache_root) / bucket / key
    if _synced(target, include_weights):
        return target
    target.mkdir(parents=True, exist_ok=True)
    with _sync_lock(target):
        if _synced(target, include_weights):  # another run finished it while this one waited
            return target
        store = storage.Store(uri.rstrip("/"))
        files = {
            relative: size
            for relative, size in store.sizes("").items()
            if include_weights or not relative.endswith(WEIGHT_SUFFIXES)
        }
        if not files:
            raise ConfigError(f"model.base_model = {uri!r}: no files under that S3 prefix")
        missing = [name for name, size in files.items() if not _has(target / name, size)]
        log.info(
            "syncing base model %s to %s: %d of %d files, %.1f MB",
            uri,
            target,
            len(missing),
            len(files),
            sum(files[relative] for relative in missing) / 1e6,
        )
        for relative in missing:
            store.download(relative, target / relative)
            if not _has(target / relative, files[relative]):
                raise RuntimeError(
                    f"{store.uri(relative)} changed while it was synced to {target}; try again"
                )
        marker = {"source": uri, "weights": include_weights, "files": files}
        tmp = target / f".{SYNC_MARKER}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(marker, indent=1, sort_keys=True))
        os.replace(tmp, target / SYNC_MARKER)
    return target


def _has(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False


def _synced(target: Path, include_weights: bool) -> bool:
    """True when the marker is there, covers the request and every file it lists is intact."""
    try:
        marker = json.loads((target / SYNC_MARKER).read_text())
    except (OSError, ValueError):
        return False
    files = marker.get("files") if isinstance(marker, dict) else None
    if not isinstance(files, dict) or not files:
        return False
    if include_weights and marker.get("weights") is not True:
        return False
    return all(isinstance(size, int) and _has(target / name, size) for name, size in files.items())


@contextlib.contextmanager
def _sync_lock(target: Path) -> Iterator[None]:
    import fcntl

    with open(target.parent / f".{target.name}.sync-lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another run that is syncing %s", target)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _classify_load_error(config: RunConfig, err: OSError) -> Exception:
    """A model that does not exist is bad input (exit 2); a network hiccup may be retried (1)."""
    from huggingface_hub.errors import (
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    chain, cause = [], err
    while cause is not None:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    not_found = (GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError)
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if offline or any(isinstance(link, not_found) for link in chain):
        return ConfigError(f"model.base_model = {config.model.base_model!r}: {err}")
    return err


# --- tokenizer -------------------------------------------------------------------------------


def builtin_tokenizer() -> Any:
    """A byte-level tokenizer (one token per UTF-8 byte) plus <pad>, <s> and </s>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: index for index, token in enumerate(BUILTIN_SPECIAL_TOKENS + alphabet)}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    return tokenizer


def load_tokenizer(config: RunConfig) -> Any:
    if builtin_name(config.model.base_model) is not None:
        tokenizer = builtin_tokenizer()
    else:
        from transformers import AutoTokenizer

        source = local_model_dir(config, include_weights=False)
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                source,
                revision=config.model.revision,
                trust_remote_code=config.model.trust_remote_code,
            )
        except OSError as err:
            raise _classify_load_error(config, err) from None
    if config.data.chat_template:
        tokenizer.chat_template = config.data.chat_template
    elif not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    if tokenizer.pad_token_id is None:
        # Labels are masked by position, never by pad id, so pad == eos cannot hide the EOS label.
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.eos_token_id is None:
        raise ConfigError(f"the tokenizer of {config.model.base_model!r} has no EOS token")
    return tokenizer


# --- model -----------------------------------------------------------------------------------


def build_builtin_model(name: str, vocab_size: int, attn_implementation: str) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    shape = BUILTIN_MODELS[name]
    config_class, model_class = {
        "llama": (LlamaConfig, LlamaForCausalLM),
        "qwen2": (Qwen2Config, Qwen2ForCausalLM),
    }[shape.get("architecture", "llama")]
    model_config = config_class(
        vocab_size=max(vocab_size, shape.get("vocab", 0)),
        hidden_size=shape["hidden"],
        intermediate_size=shape["intermediate"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["kv_heads"],
        max_position_embeddings=8192,
        tie_word_embeddings=shape.get("tied", False),
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        attn_implementation=attn_implementation,
        # wider than Llama's 0.02 so LoRA on a random base can still sharpen the predictions
        initializer_range=0.1,
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(BUILTIN_INIT_SEED)
    try:
        model = model_class(model_config)
    finally:
        torch.random.set_rng_state(state)
    return model


def base_shape(config: RunConfig) -> Any:
    """The base model's :class:`~tuning_trainer.estimate.ModelShape`, counted on the meta device
    from its config alone (no weights are read)."""
    import torch

    from tuning_trainer import estimate

    name = builtin_name(config.model.base_model)
    if name is not None:
        with torch.device("meta"):
            lm = build_builtin_model(name, len(builtin_tokenizer()), "sdpa")
        return estimate.shape_of(lm)
    from transformers import AutoConfig

    model_config = AutoConfig.from_pretrained(
        local_model_dir(config, include_weights=False),
        revision=config.model.revision,
        trust_remote_code=config.model.trust_remote_code,
    )
    return estimate.model_shape(model_config)


def load_model(config: RunConfig, plan: HardwarePlan, vocab_size: int) -> Any:
    """The base model, wrapped for the configured method (peft LoRA/QLoRA, or full)."""
    name = builtin_name(config.model.base_model)
    if name is not None:
        model = build_builtin_model(name, vocab_size, plan.attn_implementation)
        if plan.precision != "fp32" and config.model.method != "full":
            model = model.to(plan.torch_dtype)
    else:
        model = _load_pretrained(config, plan)
    implementation = training_attention(config, plan, model.config)
    if implementation != plan.attn_implementation:
        model.set_attn_implementation(implementation)
    # Training never reads a KV cache, and with one transformers does not look for the packed
    # documents of a row (docs/design.md section 6).
    model.config.use_cache = False
    if config.model.method == "full":
        return model
    return _wrap_lora(model, config)


def training_attention(config: RunConfig, plan: HardwarePlan, model_config: Any) -> str:
    """The attention the model trains with: per document for packed rows under sdpa or eager.

    Only for architectures where that is exact (:data:`attention.DOCUMENT_MODEL_TYPES`) and
    whose sliding window, if any, is at least ``max_seq_length``; otherwise transformers' own
    attention, which reads the packed row from its position ids (a dense block-diagonal mask).
    FlashAttention 2 separates packed documents itself (variable-length kernel).
    """
    from tuning_trainer import attention

    window = getattr(model_config, "sliding_window", None)
    if getattr(model_config, "use_sliding_window", True) is False:
        window = None  # Qwen2/Qwen3 carry a window they do not use
    if (
        config.data.packing
        and plan.attn_implementation in attention.DOCUMENT_ATTENTION
        and model_config.model_type in attention.DOCUMENT_MODEL_TYPES
        and (window is None or window >= config.data.max_seq_length)
    ):
        attention.register()
        return attention.DOCUMENT_ATTENTION[plan.attn_implementation]
    return plan.attn_implementation


def _load_pretrained(config: RunConfig, plan: HardwarePlan) -> Any:
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {
        "revision": config.model.revision,
        "trust_remote_code": config.model.trust_remote_code,
        "attn_implementation": plan.attn_implementation,
    }
    if config.model.method == "full":
        # fp16 full fine-tuning keeps fp32 master weights (autocast + loss scaling).
        kwargs["dtype"] = plan.torch_dtype if plan.precision == "bf16" else None
    else:
        kwargs["dtype"] = plan.torch_dtype
    if config.model.method == "qlora":
        import torch
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=plan.torch_dtype,
            bnb_4bit_quant_storage=torch.uint8,
        )
    if plan.device == "cuda" and distributed.job_strategy() != "fsdp":
        # this process's GPU: rank N of a job trains on cuda:N (distributed.init_job set it);
        # FSDP loads on the CPU and moves each rank's shard to its GPU when it wraps the model
        import torch

        kwargs["device_map"] = {"": torch.cuda.current_device()}
    source = local_model_dir(config)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as err:
        raise _classify_load_error(config, err) from None
    if config.model.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.training.gradient_checkpointing
        )
    return model


def _wrap_lora(model: Any, config: RunConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    lora = config.lora
    if config.training.gradient_checkpointing:
        model.enable_input_require_grads()
    peft_config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        # autocast_adapter_dtype keeps adapters in fp32 under an fp16/bf16 base (V100 stability).
        return get_peft_model(model, peft_config, autocast_adapter_dtype=True)
    except ValueError as err:
        raise ConfigError(f"lora.target_modules = {lora.target_modules!r}: {err}") from None
