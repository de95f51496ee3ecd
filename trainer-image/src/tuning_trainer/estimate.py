"""Estimates before spending: FLOPs per token, the GPUs' peaks, and a time and cost range.

    tuning-trainer validate --config configs/tiny-llama-lora.yaml --instance-type g5.2xlarge

One place for the numbers that both ``validate --instance-type`` (an estimate before a run) and
``trainer-image/bench/gpu_check.py`` (a measurement on a GPU) use, so a measured utilisation can
replace an assumed one without translation:

- **Model FLOPs per trained token** (:func:`model_flops_per_token`), the convention of PaLM's
  "model FLOPs utilisation" (recomputation not counted): ``k x N + 12 x L x w x s`` where N is
  the number of weights in matrix multiplications (every linear layer, the output layer
  included, counted at every position), k = 6 for full fine-tuning (forward 2N, backward 4N) and
  4 for LoRA/QLoRA (frozen weights get no weight gradient: forward 2N, input gradient 2N; the
  adapters add under 1 % at r=16), L the layers, w the query width (heads x head dim) and s the
  mean number of keys each token attends to (causal within its document: Σ Lᵢ(Lᵢ+1)/2 / Σ Lᵢ);
  attention is 4 x w FLOPs per query-key pair forward and twice that backward. Gradient
  checkpointing executes the forward again, ``2N + 4 x L x w x s`` more
  (:func:`recompute_flops_per_token`); utilisation counted with those FLOPs is the hardware
  FLOPs utilisation (HFU).
- **Peak dense tensor-core FLOP/s** per GPU and precision (:data:`GPUS`), from NVIDIA's datasheets
  (dense, not the 2:4-sparsity figures); docs/external-names.md gives each source and date.
- **Prices**: ``instance_prices.json`` beside this module, generated from lib/pricing.ts by
  ``make docs`` (scripts/docs/instance-prices.ts) and checked current by ``make test-docs``, so the
  trainer shows exactly the prices the stack's cost caps use.

The estimate itself (:func:`estimate_run`) is throughput = an ASSUMED utilisation range
(:data:`ASSUMED_HFU`) x the GPU's peak / the FLOPs each token executes, plus an assumed startup
time, times the on-demand price. The utilisation range is not measured by this project yet:
replace it with ``make gpu-check``'s HFU column once a GPU has run it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from tuning_trainer.errors import ConfigError


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_gib: float
    capability: tuple[int, int]
    dense_tflops: Mapping[str, float]  # precision -> peak dense tensor-core TFLOP/s


# Dense (no 2:4 sparsity) tensor-core peaks; docs/external-names.md, "GPU peak FLOP/s".
GPUS: dict[str, Gpu] = {
    "H200": Gpu("NVIDIA H200 SXM", 141, (9, 0), {"bf16": 989.4, "fp16": 989.4}),
    "H100 SXM": Gpu("NVIDIA H100 SXM", 80, (9, 0), {"bf16": 989.4, "fp16": 989.4}),
    "H100 PCIe": Gpu("NVIDIA H100 PCIe", 80, (9, 0), {"bf16": 756.5, "fp16": 756.5}),
    "A100": Gpu("NVIDIA A100", 80, (8, 0), {"bf16": 312.0, "fp16": 312.0}),
    "L40S": Gpu("NVIDIA L40S", 48, (8, 9), {"bf16": 362.05, "fp16": 362.05}),
    "L4": Gpu("NVIDIA L4", 24, (8, 9), {"bf16": 121.0, "fp16": 121.0}),
    "A10G": Gpu("NVIDIA A10G", 24, (8, 6), {"bf16": 62.5, "fp16": 62.5}),
    "T4": Gpu("NVIDIA T4", 16, (7, 5), {"fp16": 65.0}),
    "V100 PCIe": Gpu("NVIDIA V100 PCIe", 32, (7, 0), {"fp16": 112.0}),
    "V100 SXM2": Gpu("NVIDIA V100 SXM2", 32, (7, 0), {"fp16": 125.0}),
}
# torch.cuda.get_device_name() -> GPUS key, first match wins (case-insensitive substrings).
# NVL boards run at lower clocks than the SXM parts of the same name: unknown here, no MFU.
DEVICE_NAMES: list[tuple[str, str | None]] = [
    ("nvl", None),
    ("h200", "H200"),
    ("h100 pcie", "H100 PCIe"),
    ("h100", "H100 SXM"),
    ("a100", "A100"),
    ("l40s", "L40S"),
    ("l40", None),
    ("l4", "L4"),
    ("a10g", "A10G"),
    ("t4", "T4"),
    ("v100-pcie", "V100 PCIe"),
    ("v100", "V100 SXM2"),
]
# The GPU of each instance family the stack accepts (lib/pricing.ts; docs/costs.md).
INSTANCE_FAMILY_GPUS = {"g4dn": "T4", "g5": "A10G", "g6": "L4", "g6e": "L40S"}

# ASSUMED share of the peak that the executed FLOPs (recompute included) reach, per method: not
# measured by this project. The range is wide on purpose; `make gpu-check` measures it (HFU).
ASSUMED_HFU = {"lora": (0.25, 0.50), "full": (0.25, 0.50), "qlora": (0.15, 0.35)}
# ASSUMED time an instance is paid for before the first step and after the last: boot, image
# pull, base model download and load, the final publish.
ASSUMED_STARTUP_MINUTES = (5.0, 15.0)
# Below this many weights, kernel launches and data handling, not FLOPs, bound the speed.
SMALL_MODEL_WEIGHTS = 300e6


def gpu_for_device_name(device_name: str) -> Gpu | None:
    lowered = device_name.lower()
    for pattern, key in DEVICE_NAMES:
        if pattern in lowered:
            return GPUS[key] if key else None
    return None


def precision_on(gpu: Gpu, requested: str) -> str:
    """The precision ``train`` resolves on this GPU (model.plan_hardware's rule)."""
    if requested == "auto":
        return "bf16" if gpu.capability >= (8, 0) else "fp16"
    return requested


# --- FLOPs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelShape:
    parameters: int  # every parameter
    matmul_weights: int  # N: weights of every linear layer, the output layer included
    layers: int
    query_width: int  # attention heads x head dim
    output_weights: int  # the output layer (the input embedding's tensor when tied)


def model_shape(model_config: Any) -> ModelShape:
    """Count a transformers causal-LM config's weights on the meta device (no memory, no init)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        lm = AutoModelForCausalLM.from_config(model_config)
    return shape_of(lm)


def shape_of(lm: Any) -> ModelShape:
    import torch

    config = lm.config
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    # a tied output layer shares the embedding's tensor: count each tensor once
    linear = {
        id(m.weight): m.weight.numel() for m in lm.modules() if isinstance(m, torch.nn.Linear)
    }
    return ModelShape(
        parameters=sum(p.numel() for p in lm.parameters()),
        matmul_weights=sum(linear.values()),
        layers=config.num_hidden_layers,
        query_width=heads * head_dim,
        output_weights=lm.get_output_embeddings().weight.numel(),
    )


def causal_pairs_per_token(lengths: Sequence[int]) -> float:
    """Mean keys per query when each document attends causally to itself only."""
    tokens = sum(lengths)
    return sum(n * (n + 1) / 2 for n in lengths) / tokens if tokens else 0.0


def model_flops_per_token(shape: ModelShape, method: str, pairs_per_token: float) -> float:
    weight_passes = 6 if method == "full" else 4
    return weight_passes * shape.matmul_weights + 12 * shape.layers * shape.query_width * (
        pairs_per_token
    )


def recompute_flops_per_token(shape: ModelShape, pairs_per_token: float) -> float:
    """The forward pass again, which gradient checkpointing runs before each backward."""
    return 2 * shape.matmul_weights + 4 * shape.layers * shape.query_width * pairs_per_token


FLOPS_FORMULA = (
    "model FLOPs per token = k*N + 12*L*w*s (PaLM's MFU convention, recompute not counted): N "
    "weights in matrix multiplications (output layer included, at every position), k = 4 for "
    "LoRA/QLoRA (frozen weights: forward + input gradient), 6 for full; L layers, w = heads x "
    "head dim, s = mean keys per token, causal within each document; HFU adds the recompute of "
    "gradient checkpointing, 2*N + 4*L*w*s"
)


# --- prices ------------------------------------------------------------------------------------


@cache
def prices() -> dict[str, Any]:
    """instance_prices.json: lib/pricing.ts's tables (make docs regenerates it)."""
    text = resources.files("tuning_trainer").joinpath("instance_prices.json").read_text()
    return json.loads(text)


def supported_instance_types() -> list[str]:
    return list(prices()["on_demand_usd_per_hour"]["us-east-1"])


def check_instance_type(instance_type: str) -> Gpu:
    if instance_type not in supported_instance_types():
        raise ConfigError(
            f"--instance-type {instance_type!r}: not an instance type tuning-lab runs on; "
            f"allowed: {', '.join(supported_instance_types())}"
        )
    return GPUS[INSTANCE_FAMILY_GPUS[instance_type.split(".")[0]]]


def on_demand_price(instance_type: str, region: str) -> tuple[float, bool]:
    """(USD per hour, estimated), as lib/pricing.ts's onDemandPrice: a region without a table
    gets the us-east-1 price times its markup."""
    table = prices()
    listed = table["on_demand_usd_per_hour"].get(region, {}).get(instance_type)
    if listed is not None:
        return listed, False
    base = table["on_demand_usd_per_hour"]["us-east-1"][instance_type]
    return round(base * table["other_region_factor"], 4), True


# --- the estimate ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunEstimate:
    instance_type: str
    region: str
    gpu: Gpu
    precision: str
    tokens: float
    flops_per_token: float  # executed: model FLOPs, plus the recompute when checkpointing
    tokens_per_second: tuple[float, float]
    train_hours: tuple[float, float]
    total_hours: tuple[float, float]
    usd_per_hour: float
    price_estimated: bool
    usd: tuple[float, float]
    weights_gib: float


def weights_gib(shape: ModelShape, method: str) -> float:
    """The base weights on the GPU: 16-bit; for QLoRA 4-bit NF4 (~0.56 bytes with its scales) in
    the linear layers but the output layer, and fp32 for the rest (peft's k-bit preparation).
    Full fine-tuning adds fp32 gradients and Adam's two fp32 moments (12 bytes a weight)."""
    if method == "qlora":
        quantised = shape.matmul_weights - shape.output_weights
        return (0.5625 * quantised + 4 * (shape.parameters - quantised)) / 2**30
    per_weight = 2 + (12 if method == "full" else 0)
    return per_weight * shape.parameters / 2**30


def estimate_run(
    instance_type: str,
    region: str,
    shape: ModelShape,
    method: str,
    requested_precision: str,
    gradient_checkpointing: bool,
    tokens: float,
    pairs_per_token: float,
) -> RunEstimate:
    gpu = check_instance_type(instance_type)
    precision = precision_on(gpu, requested_precision)
    executed = model_flops_per_token(shape, method, pairs_per_token)
    if gradient_checkpointing:
        executed += recompute_flops_per_token(shape, pairs_per_token)
    peak = gpu.dense_tflops.get(precision, gpu.dense_tflops["fp16"]) * 1e12
    low, high = ASSUMED_HFU[method]
    speed = (low * peak / executed, high * peak / executed)
    train = (tokens / speed[1] / 3600, tokens / speed[0] / 3600)
    startup = tuple(m / 60 for m in ASSUMED_STARTUP_MINUTES)
    total = (train[0] + startup[0], train[1] + startup[1])
    usd_per_hour, estimated = on_demand_price(instance_type, region)
    return RunEstimate(
        instance_type=instance_type,
        region=region,
        gpu=gpu,
        precision=precision,
        tokens=tokens,
        flops_per_token=executed,
        tokens_per_second=speed,
        train_hours=train,
        total_hours=total,
        usd_per_hour=usd_per_hour,
        price_estimated=estimated,
        usd=(total[0] * usd_per_hour, total[1] * usd_per_hour),
        weights_gib=weights_gib(shape, method),
    )


def hours_text(hours: float) -> str:
    minutes = max(1, math.ceil(hours * 60))
    return f"{minutes // 60}:{minutes % 60:02d}"


def count_text(value: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.0f}"
