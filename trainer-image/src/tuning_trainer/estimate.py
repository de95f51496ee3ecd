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

import dataclasses
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
# instance_prices.json's gpu_model (EC2's name, lib/instance-types.ts) -> GPUS key.
EC2_GPU_MODELS = {
    "T4": "T4",
    "A10G": "A10G",
    "L4": "L4",
    "L40S": "L40S",
    "A100": "A100",
    "H100": "H100 SXM",
}

# ASSUMED share of the peak that the executed FLOPs (recompute included) reach, per method: not
# measured by this project. The range is wide on purpose; `make gpu-check` measures it (HFU).
ASSUMED_HFU = {"lora": (0.25, 0.50), "full": (0.25, 0.50), "qlora": (0.15, 0.35)}
# ASSUMED share of N x one GPU's speed that N ranks reach (communication not hidden behind
# compute): DDP of LoRA exchanges only the adapters' gradients; FSDP all-gathers the weights
# twice and reduce-scatters the gradients every step. Not measured by this project on GPUs;
# docs/performance.md ("Several GPUs") derives the communication volumes.
ASSUMED_SCALING = {"ddp": (0.85, 0.95), "fsdp": (0.70, 0.90)}
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
    hidden: int = 0  # the residual stream's width
    adapter_units: int = 0  # sum of in + out features of the linear layers but the output layer


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
    head = lm.get_output_embeddings()
    units = sum(
        m.in_features + m.out_features
        for m in lm.modules()
        if isinstance(m, torch.nn.Linear) and m is not head
    )
    return ModelShape(
        parameters=sum(p.numel() for p in lm.parameters()),
        matmul_weights=sum(linear.values()),
        layers=config.num_hidden_layers,
        query_width=heads * head_dim,
        output_weights=head.weight.numel(),
        hidden=config.hidden_size,
        adapter_units=units,
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
    """The type's GPU, with the memory EC2 reports for it (p4d's A100 has 40 GB, not 80)."""
    if instance_type not in supported_instance_types():
        raise ConfigError(
            f"--instance-type {instance_type!r}: not an instance type tuning-lab runs on; "
            f"allowed: {', '.join(supported_instance_types())}"
        )
    described = prices()["instance_types"][instance_type]
    gpu = GPUS[EC2_GPU_MODELS[described["gpu_model"]]]
    return dataclasses.replace(gpu, memory_gib=float(described["gpu_memory_gib"]))


def gpu_count(instance_type: str) -> int:
    return int(prices()["instance_types"][instance_type]["gpus"])


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
    strategy: str = "none",
    world: int = 1,
) -> RunEstimate:
    gpu = check_instance_type(instance_type)
    precision = precision_on(gpu, requested_precision)
    executed = model_flops_per_token(shape, method, pairs_per_token)
    if gradient_checkpointing:
        executed += recompute_flops_per_token(shape, pairs_per_token)
    peak = gpu.dense_tflops.get(precision, gpu.dense_tflops["fp16"]) * 1e12
    low, high = ASSUMED_HFU[method]
    ranks = world if strategy != "none" else 1
    scale_low, scale_high = ASSUMED_SCALING[strategy] if ranks > 1 else (1.0, 1.0)
    speed = (
        ranks * scale_low * low * peak / executed,
        ranks * scale_high * high * peak / executed,
    )
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


# --- memory per GPU and the distributed strategy -----------------------------------------------

# ASSUMED bytes of 16-bit activations kept per token, per layer and per unit of width for the
# backward pass without recomputation: 34 (Korthikanti et al. 2022, "Reducing Activation
# Recomputation in Large Transformer Models", eq. 1 without the attention-score term, which
# FlashAttention and sdpa never store). Gradient checkpointing keeps each layer's input (2 bytes
# per unit) and one layer's working set.
ACTIVATION_BYTES = 34
# ASSUMED fixed cost per GPU: CUDA context, kernels' workspaces, NCCL buffers.
OVERHEAD_GIB = 1.5
# ASSUMED allocator fragmentation and temporary buffers, as a share of the rest.
FRAGMENTATION = 0.10
# A plan fits when its estimate is at most this share of the GPU's memory.
FIT_SHARE = 0.90


@dataclass(frozen=True)
class MemoryEstimate:
    """GiB per GPU, by what holds it; an ESTIMATE (the ASSUMED constants above)."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    overhead: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations + self.overhead

    def text(self) -> str:
        return (
            f"~{self.total:.1f} GiB = weights {self.weights:.1f} + gradients "
            f"{self.gradients:.1f} + optimizer {self.optimizer:.1f} + activations "
            f"{self.activations:.1f} + overhead {self.overhead:.1f}"
        )


def trainable_parameters(shape: ModelShape, method: str, lora_r: int) -> int:
    """Full: every weight. LoRA/QLoRA: r x (in + out) per linear layer (all-linear, an upper
    bound when lora.target_modules names fewer)."""
    return shape.parameters if method == "full" else lora_r * shape.adapter_units


def memory_per_gpu(
    shape: ModelShape,
    method: str,
    precision: str,
    strategy: str,
    world: int,
    micro_batch_tokens: int,
    gradient_checkpointing: bool,
    lora_r: int,
    optim: str,
) -> MemoryEstimate:
    """What one GPU holds while training ``shape`` with this strategy on ``world`` GPUs.

    Weights as the trainer loads them (model.py: 16-bit base; QLoRA 4-bit; a full fine-tune in
    fp32 unless bf16); LoRA adapters, their gradients and Adam states in fp32; a full fine-tune's
    gradients and Adam moments in the weights' dtype (torch's AdamW keeps its state in the
    parameter's dtype), or 2 bytes a weight for the 8-bit optimizers. DDP keeps a whole replica
    plus its gradient buckets (a second copy of the gradients); FSDP divides weights, gradients
    and optimizer state by the world size and gathers one layer at a time in the compute dtype.
    Under 16-bit mixed precision accelerate's FSDP2 first turns every trainable weight into an
    fp32 master copy (``fsdp2_prepare_model``), so a full fine-tune's sharded state is 4 + 4 + 8
    bytes a weight, not the 2 + 2 + 4 of a pure bf16 replica.
    """
    gib = 2**30
    full = method == "full"
    weight_bytes = (
        (2 if precision in ("bf16", "fp16") else 4)
        if not full
        else (2 if precision == "bf16" else 4)
    )
    if method == "qlora":
        weights = weights_gib(shape, method) * gib
    else:
        weights = weight_bytes * shape.parameters
    trainable = trainable_parameters(shape, method, lora_r)
    sharded = strategy == "fsdp" and world > 1
    state_bytes = 4 if not full or sharded else weight_bytes
    gradients = trainable * state_bytes
    optimizer = trainable * (2 if optim.endswith("8bit") else 2 * state_bytes)
    if sharded:
        if full:  # the fp32 master copy is what is sharded
            weights = 4 * shape.parameters
        compute_layer = (weight_bytes if not full else 2) * shape.parameters / max(shape.layers, 1)
        weights = weights / world + 2 * compute_layer  # the gathered layer and the next
        gradients, optimizer = gradients / world, optimizer / world
    elif strategy == "ddp" and world > 1:
        gradients *= 2  # the gradient buckets all-reduced beside the gradients themselves
    width = shape.hidden * micro_batch_tokens
    if gradient_checkpointing:
        activations = 2 * width * shape.layers + ACTIVATION_BYTES * width
    else:
        activations = ACTIVATION_BYTES * width * shape.layers
    # the output layer in chunks (loss.py): at most two 256 MiB chunks of fp32 logits
    activations += min(
        4 * micro_batch_tokens * shape.output_weights // max(shape.hidden, 1), 2 * 256 * 2**20
    )
    subtotal = (weights + gradients + optimizer + activations) / gib
    return MemoryEstimate(
        weights=weights / gib,
        gradients=gradients / gib,
        optimizer=optimizer / gib,
        activations=activations / gib,
        overhead=OVERHEAD_GIB + FRAGMENTATION * subtotal,
    )


@dataclass(frozen=True)
class StrategyChoice:
    strategy: str  # "none", "ddp" or "fsdp"
    world: int
    reason: str
    memory: MemoryEstimate | None = None


def choose_strategy(
    config: Any,
    world: int,
    gpu_memory_gib: float | None,
    shape: ModelShape | None,
    resumed: Mapping[str, Any] | None = None,
) -> StrategyChoice:
    """``training.distributed`` resolved for ``world`` processes; ConfigError when impossible.

    ``auto``: one process on one GPU; the strategy of the checkpoint a run resumes from (its
    files are that strategy's); DDP for LoRA/QLoRA whose estimate fits one GPU (each GPU trains
    a whole replica, and only the adapters' gradients cross the GPUs); FSDP for a full fine-tune
    (its gradients and Adam states are 12-16 bytes a weight) and for LoRA that does not fit.
    Without a GPU (CPU ranks) or a model shape, the memory test is skipped. A run resumes only
    with the process count its checkpoint was trained with (else the global batch and the data
    position would change) and only in FSDP's file layout if it was sharded.
    """
    choice = _choose(config, world, gpu_memory_gib, shape, resumed)
    _check_resumed(resumed, choice.strategy, choice.world)
    return choice


def _choose(
    config: Any,
    world: int,
    gpu_memory_gib: float | None,
    shape: ModelShape | None,
    resumed: Mapping[str, Any] | None,
) -> StrategyChoice:
    method = config.model.method
    requested = config.training.distributed
    memory_of = _memory_function(config, world, gpu_memory_gib, shape)
    if world == 1 and requested in ("auto", "none"):
        return StrategyChoice("none", 1, "one process", memory_of("none"))
    if requested == "none":
        return StrategyChoice(
            "none",
            1,
            f"training.distributed = none: one process; {world - 1} GPU(s) idle",
            memory_of("none"),
        )
    if method == "qlora" and requested == "fsdp":
        raise _qlora_fsdp_error(requested)
    if requested in ("ddp", "fsdp"):
        return StrategyChoice(
            requested, world, f"training.distributed = {requested}", memory_of(requested)
        )
    if resumed and resumed.get("strategy") in ("ddp", "fsdp"):
        strategy = str(resumed["strategy"])
        return StrategyChoice(
            strategy, world, "as the checkpoint it resumes from", memory_of(strategy)
        )
    if method == "full":
        return StrategyChoice(
            "fsdp",
            world,
            f"a full fine-tune: weights, gradients and optimizer state sharded "
            f"across {world} processes",
            memory_of("fsdp"),
        )
    ddp = memory_of("ddp")
    if ddp is None or gpu_memory_gib is None:
        return StrategyChoice("ddp", world, f"{method}: one replica per process", ddp)
    if ddp.total <= FIT_SHARE * gpu_memory_gib:
        return StrategyChoice(
            "ddp",
            world,
            f"{method} fits one GPU ({ddp.total:.1f} of {gpu_memory_gib:.0f} GiB)"
            ": one replica per GPU, only the adapters' gradients are exchanged",
            ddp,
        )
    if method == "qlora":
        raise _qlora_fsdp_error("auto", ddp.total, gpu_memory_gib)
    return StrategyChoice(
        "fsdp",
        world,
        f"{method} does not fit one GPU ({ddp.total:.1f} of "
        f"{gpu_memory_gib:.0f} GiB with DDP): the base weights are sharded",
        memory_of("fsdp"),
    )


def _memory_function(config: Any, world: int, gpu_memory_gib: float | None, shape: Any):
    training = config.training
    precision = training.precision
    if precision == "auto":
        precision = "bf16" if gpu_memory_gib else "fp32"

    def memory_of(strategy: str) -> MemoryEstimate | None:
        if shape is None:
            return None
        return memory_per_gpu(
            shape,
            config.model.method,
            precision,
            strategy,
            world if strategy != "none" else 1,
            training.per_device_train_batch_size * config.data.max_seq_length,
            training.gradient_checkpointing,
            config.lora.r,
            training.optim,
        )

    return memory_of


def _check_resumed(resumed: Mapping[str, Any] | None, strategy: str, world: int) -> None:
    if not resumed:
        return
    was, was_world = str(resumed.get("strategy", "none")), int(resumed.get("world_size", 1))
    # one process and DDP write the same files (a whole model and optimizer); FSDP's are shards
    if (was == "fsdp") != (strategy == "fsdp"):
        raise ConfigError(
            f"training.distributed: the checkpoint to resume was trained with {was} on "
            f"{was_world} process(es) and its files only load that way; set training."
            f"distributed = {'fsdp' if was == 'fsdp' else 'ddp'} on {was_world} GPU(s) or start "
            "over with --resume-from-checkpoint none"
        )
    if was_world != world:
        raise ConfigError(
            f"training.distributed: the checkpoint to resume was trained on {was_world} "
            f"process(es) and this machine runs {world}: the global batch (per-device batch x "
            "accumulation x processes) and the data position would change; resume on "
            f"{was_world} GPU(s) (instance types with that GPU count, or --nproc-per-node "
            f"{was_world}) or start over with --resume-from-checkpoint none"
        )


def _qlora_fsdp_error(requested: str, need: float = 0.0, have: float = 0.0) -> ConfigError:
    fit = f" (~{need:.0f} GiB of {have:.0f} GiB per GPU)" if need else ""
    return ConfigError(
        f"training.distributed = {requested}: QLoRA{fit} is trained with DDP only (FSDP would "
        "shard bitsandbytes' packed 4-bit weights); use model.method lora, which FSDP shards, "
        "or an instance type with larger GPUs"
    )


def fitting_types(config: Any, shape: ModelShape) -> list[tuple[str, str]]:
    """(type, strategy) of every allowed instance type whose GPUs hold the run, ESTIMATED."""
    fitting = []
    for instance_type in supported_instance_types():
        memory = check_instance_type(instance_type).memory_gib
        try:
            choice = choose_strategy(config, gpu_count(instance_type), memory, shape)
        except ConfigError:
            continue
        if choice.memory is not None and choice.memory.total <= FIT_SHARE * memory:
            fitting.append((instance_type, choice.strategy))
    return fitting
