"""`tuning-trainer validate`: check config and data and print what training would do; no GPU.

    tuning-trainer validate --config configs/tiny-llama-lora.yaml
    tuning-trainer validate --config configs/tiny-llama-lora.yaml --instance-type g5.2xlarge

Loads only the tokenizer (never the weights), reads and tokenizes every example exactly as
training would, and prints the examples per format and shape, token statistics, truncation
(exit 2 past ``data.max_truncated_fraction``, as ``train`` does), padding and rows with and
without packing, the optimizer steps and the tokens to train. Hardware checks (qlora needs
CUDA, ...) are left to `train` on the instance: a laptop validating a GPU run is the normal case.

With ``--instance-type`` it also prints an ESTIMATE of the run's time and cost on that instance
(:mod:`tuning_trainer.estimate`): the tokens to train from the data above, the model's FLOPs per
token (its config is read on the meta device, so no weights are loaded), an assumed share of the
GPU's datasheet peak, an assumed startup time, and the on-demand price of lib/pricing.ts. Every
assumed number is labelled as such in the output. An instance type the stack does not accept
exits 2 and names the allowed ones.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tuning_trainer import data, distributed, estimate, model
from tuning_trainer.config import RunConfig, load_config
from tuning_trainer.errors import EXIT_OK

DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class FileReport:
    rows: int  # rows the Trainer gets (packed or one example each)
    tokens_per_epoch: float  # tokens the model processes in one epoch, padding included
    lengths: list[int]  # kept examples' token lengths


@dataclass(frozen=True)
class Plan:
    steps: int
    epochs: float  # steps / steps per epoch


def run_validate(
    config_location: str,
    overrides: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    instance_type: str | None = None,
    region: str | None = None,
) -> int:
    env = os.environ if env is None else env
    if instance_type is not None:
        estimate.check_instance_type(instance_type)  # before any work: exit 2 names the allowed
    loaded = load_config(config_location, env, overrides)
    config = loaded.config
    model.builtin_name(config.model.base_model)
    model.check_base_model(config)
    model.check_hub_reachable(config)
    tokenizer = model.load_tokenizer(config)
    print(f"config   {loaded.location}: valid")
    print(
        f"model    {config.model.base_model} ({config.model.method}), tokenizer vocabulary "
        f"{len(tokenizer)}"
    )
    print(f"output   {config.output.uri}")
    train = _report_file("train", config.data.train, config, tokenizer)
    if config.data.eval:
        _report_file("eval", config.data.eval, config, tokenizer)
    shape = _shape_or_none(config)
    choice = _report_distribution(config, shape, instance_type, env)
    plan = _report_plan(config, train.rows, choice.world)
    if instance_type is not None:
        region = region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        _report_estimate(config, shape, train, plan, instance_type, region, choice)
    print("OK: config and data are valid; nothing was trained")
    return EXIT_OK


def _report_file(label: str, uri: str, config: RunConfig, tokenizer: Any) -> FileReport:
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
    # Packed micro-batches go to the model as one row without padding (collator.py).
    padding = 0.0 if settings.packing else unpacked
    return FileReport(rows, sum(lengths) / max(1.0 - padding, 1e-9), lengths)


def _shape_or_none(config: RunConfig) -> estimate.ModelShape | None:
    try:
        return model.base_shape(config)
    except (OSError, ValueError, AttributeError) as err:
        print(f"model    shape unknown: the model's config could not be read ({err})")
        return None


def _report_distribution(
    config: RunConfig,
    shape: estimate.ModelShape | None,
    instance_type: str | None,
    env: Mapping[str, str],
) -> estimate.StrategyChoice:
    """Processes, strategy and memory per GPU on ``instance_type`` (else on this machine), the
    global batch, and every allowed type the run fits on."""
    if instance_type is not None:
        world = estimate.gpu_count(instance_type)
        memory = estimate.check_instance_type(instance_type).memory_gib
        where = instance_type
    else:
        world = distributed.resolve_nproc(None, env)
        memory = distributed.gpu_memory_gib()
        where = "this machine"
    choice = estimate.choose_strategy(config, world, memory, shape)
    training = config.training
    print(f"parallel {choice.strategy} on {choice.world} process(es) ({where}): {choice.reason}")
    rows = training.per_device_train_batch_size * training.gradient_accumulation_steps
    print(
        f"  global batch {rows * choice.world} rows of up to {config.data.max_seq_length} tokens"
        f" = per_device_train_batch_size {training.per_device_train_batch_size} x "
        f"gradient_accumulation_steps {training.gradient_accumulation_steps} x {choice.world} "
        f"process(es); learning_rate {training.learning_rate:g} is used as given (not rescaled)"
    )
    if choice.memory is not None:
        fits = (
            ""
            if memory is None
            else (
                f" of {memory:.1f} GiB: "
                + ("fits" if choice.memory.total <= estimate.FIT_SHARE * memory else "DOES NOT FIT")
            )
        )
        print(f"  memory per GPU, ESTIMATED: {choice.memory.text()}{fits}")
    if shape is not None:
        fitting = estimate.fitting_types(config, shape)
        print(
            "  fits on (ESTIMATED, at most "
            f"{100 * estimate.FIT_SHARE:.0f} % of GPU memory): "
            + (_types_text(fitting) or "no allowed instance type")
        )
    return choice


def _types_text(fitting: list[tuple[str, str]]) -> str:
    """``g5 (all sizes), g5.12xlarge ddp, ...``: a family named once when every size fits."""
    allowed = estimate.supported_instance_types()
    chosen = dict(fitting)
    parts: list[str] = []
    for instance_type in allowed:
        if instance_type not in chosen:
            continue
        family = instance_type.split(".")[0]
        gpus = estimate.gpu_count(instance_type)
        same = [t for t in allowed if t.startswith(f"{family}.") and estimate.gpu_count(t) == gpus]
        label = f"{gpus} GPU" + ("s, " + chosen[instance_type] if gpus > 1 else "")
        if len(same) > 1 and all(t in chosen for t in same):
            text = f"{family} {gpus}-GPU sizes ({label})"
            if text not in parts:
                parts.append(text)
        else:
            parts.append(f"{instance_type} ({label})")
    return ", ".join(parts)


def _report_plan(config: RunConfig, rows: int, world: int = 1) -> Plan:
    training = config.training
    per_step = training.per_device_train_batch_size * training.gradient_accumulation_steps * world
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
    return Plan(steps, steps / steps_per_epoch)


def _report_estimate(
    config: RunConfig,
    shape: estimate.ModelShape | None,
    train: FileReport,
    plan: Plan,
    instance_type: str,
    region: str,
    choice: estimate.StrategyChoice,
) -> None:
    if shape is None:
        print(f"estimate {instance_type}: none: the model's shape is unknown (above)")
        return
    method, training = config.model.method, config.training
    pairs = estimate.causal_pairs_per_token(train.lengths)
    tokens = train.tokens_per_epoch * plan.epochs
    e = estimate.estimate_run(
        instance_type,
        region,
        shape,
        method,
        training.precision,
        training.gradient_checkpointing,
        tokens,
        pairs,
        choice.strategy,
        choice.world,
    )
    gpu, prices = e.gpu, estimate.prices()
    peak = gpu.dense_tflops.get(e.precision, gpu.dense_tflops["fp16"])
    low, high = estimate.ASSUMED_HFU[method]
    start_low, start_high = estimate.ASSUMED_STARTUP_MINUTES
    model_flops = estimate.model_flops_per_token(shape, method, pairs)
    recompute = e.flops_per_token - model_flops
    count = estimate.count_text
    price_basis = (
        f"us-east-1 x {prices['other_region_factor']:g}: lib/pricing.ts has no {region} price"
        if e.price_estimated
        else f"lib/pricing.ts, {region}"
    )
    print(
        f"estimate {instance_type} in {region}: an ESTIMATE, not a measurement or a quote; "
        "derived as follows (ASSUMED marks what is not measured)"
    )
    print(
        f"  GPU    {gpu.name} ({gpu.memory_gib:g} GiB), trains in {e.precision}; datasheet peak "
        f"{peak:g} TFLOP/s dense (docs/external-names.md)"
    )
    print(
        f"  tokens {count(tokens)} to train = {count(train.tokens_per_epoch)} per epoch (the "
        f"train file above, {'packed, no padding' if config.data.packing else 'padding included'}"
        f") x {plan.epochs:.2f} epochs ({plan.steps} steps); evaluation not counted"
    )
    print(
        f"  FLOPs  {e.flops_per_token / 1e9:.3g} GFLOP per token = {model_flops / 1e9:.3g} model "
        f"({6 if method == 'full' else 4} x N + 12 x L x w x s: "
        f"N = {count(shape.matmul_weights)} weights in matrix multiplications, "
        f"L = {shape.layers}, w = {shape.query_width}, s = {pairs:.0f} keys per token in this "
        "data)"
        + (
            f" + {recompute / 1e9:.3g} recompute (gradient checkpointing)"
            if training.gradient_checkpointing
            else ""
        )
    )
    print(
        f"  speed  ASSUMED {100 * low:.0f}-{100 * high:.0f} % of the peak for {method} "
        f"-> {count(e.tokens_per_second[0])}-{count(e.tokens_per_second[1])} tokens/s "
        "(make gpu-check measures this share on a real GPU)"
    )
    print(
        f"  time   {estimate.hours_text(e.train_hours[0])}-{estimate.hours_text(e.train_hours[1])}"
        f" training + ASSUMED {start_low:g}-{start_high:g} min startup (boot, image pull, base "
        f"model download, final publish) = {estimate.hours_text(e.total_hours[0])}-"
        f"{estimate.hours_text(e.total_hours[1])} (h:mm)"
    )
    print(
        f"  cost   {e.usd[0]:.2f}-{e.usd[1]:.2f} USD on demand at {e.usd_per_hour:g} USD/h "
        f"({price_basis}; prices of {prices['us_east_1_date']} for us-east-1, "
        f"{prices['price_table_date']} elsewhere); spot: at most that (the stack sets no spot "
        "maximum price, so AWS caps it at the on-demand price), usually less; today's: aws ec2 "
        f"describe-spot-price-history --instance-types {instance_type} --product-descriptions "
        f'Linux/UNIX --region {region} --start-time "$(date -u +%Y-%m-%dT%H:%M:%SZ)"'
    )
    kind = {"qlora": "4-bit NF4, the rest fp32", "full": "with gradients and Adam states"}
    print(
        f"  memory base weights ~{e.weights_gib:.1f} GiB ({kind.get(method, '16-bit')}) of the "
        f"GPU's {gpu.memory_gib:g} GiB, before activations"
    )
    if e.weights_gib > 0.9 * gpu.memory_gib:
        print(
            f"  WARNING: the weights alone need ~{e.weights_gib:.0f} GiB of the {gpu.name}'s "
            f"{gpu.memory_gib:g} GiB: this run will not fit; use model.method qlora or an "
            "instance with a larger GPU (g6e: 48 GiB)"
        )
    if e.precision == "fp32":
        print(
            "  WARNING: training.precision fp32 on a GPU runs without 16-bit tensor cores; the "
            "estimate uses the 16-bit peak, so read the time as a lower bound (use auto)"
        )
    elif e.precision not in gpu.dense_tflops:
        print(
            f"  WARNING: training.precision {e.precision} needs compute capability >= 8.0; the "
            f"{gpu.name} has {gpu.capability[0]}.{gpu.capability[1]}: train exits 2 there (use "
            "auto, which trains in fp16 on it)"
        )
    if shape.matmul_weights < estimate.SMALL_MODEL_WEIGHTS:
        print(
            f"  note   below {count(estimate.SMALL_MODEL_WEIGHTS)} weights, kernel launches and "
            "data handling bound the speed, not FLOPs: read the time as a lower bound"
        )
