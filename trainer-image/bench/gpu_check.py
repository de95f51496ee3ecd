"""GPU check: the real trainer on one NVIDIA GPU, offline: speed, MFU, memory and resume.

    make gpu-check                                   # on the GPU machine (CONTRIBUTING.md)
    make gpu-check GPU_CHECK_FLAGS=--dry-run         # the plan, anywhere, no GPU needed
    python trainer-image/bench/gpu_check.py --sizes 1b --steps 4

Prints one markdown table. Models are random-initialised Llamas built from a config (no
download): about 1B parameters (Llama-3.2-1B's published shape) and about 8B (Llama-3.1-8B's;
docs/external-names.md). Every tuning-trainer row runs the trainer's own code end to end:
``train.prepare_data`` (chat template, packing into rows), ``train.load_seeded_model`` (LoRA,
QLoRA through bitsandbytes' NF4 loading of a saved random model, per-document attention for
packed rows under sdpa), ``train.build_trainer`` (the Trainer with the chunked loss, the
collator and the publishing callbacks). Rows, per model size:

- LoRA bf16, sdpa, packed rows (per-document attention, chunked loss): the default path;
- the same with FlashAttention 2's variable-length kernel, if ``flash_attn`` imports;
- QLoRA (NF4 base, bf16 compute), if ``bitsandbytes`` imports;
- LoRA fp16 with fp32 adapters and loss scaling under sdpa: the path a V100 takes;
- on the ~1B model, issue 9's GPU claims: the default path with each lever off (transformers'
  dense block-diagonal mask instead of per-document attention; the model's own loss over the
  full logits) and TRL 1.16's SFTTrainer with ``packing=True`` (bfd; 1 row x accumulation, and
  all rows in one micro-batch) at the same tokens per optimizer step, precision, LoRA shape,
  gradient checkpointing (on everywhere) and data.

Columns: tokens/s over optimizer steps 2..N (step 1 warms up; the GPU is synchronised at every
step end); MFU and HFU (``tuning_trainer.estimate``: model FLOPs per token = k x N + 12 x L x
w x s, k = 4 for LoRA/QLoRA, 6 for full; HFU adds gradient checkpointing's recompute, 2 x N +
4 x L x w x s) against the dense bf16/fp16 peak of the GPU, looked up by
``torch.cuda.get_device_name()``; peak GPU memory (``torch.cuda.max_memory_allocated``, from
before the model is built to the end of step N+1, weights included); and the resume check: the
run trains N+1 steps straight, publishing a checkpoint at step N on the way; a second Trainer
then resumes the same model from that published checkpoint (fetched and verified as ``train``
does) and trains step N+1; the adapter weights of both must be equal (exactly, or within 1 % of
the last step's update, which a wrong optimizer state, schedule or data position exceeds by far).

A row that cannot run says why instead: a missing package, "OOM" (CUDA out of memory, caught),
an error (its type and message; the traceback goes to stderr), or the time budget
(``--budget-seconds``, default 450: a row starts only if its estimated end, see the dry run, falls
within it). Estimated time on one H200: under 7 minutes with every row, about 6 when flash-attn is
absent (the dry run prints the estimate per row). Without a CUDA GPU the script exits 2;
``--dry-run`` builds the model configs (parameters counted on the meta device) and the run
configs and prints the plan.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import LEARNING_RATE, LORA, make_data, train_measured, trl_trainer

EXIT_NO_GPU = 2
SEED = 0
TEMPLATE_TOKENS = 40  # chat template tokens around one exchange (byte tokenizer), rounded up

# Published shapes (docs/external-names.md), registered as builtin models of the trainer so the
# trainer's own loading path builds them; random weights, seeded.
SHAPES: dict[str, dict[str, Any]] = {
    "1b": {
        "name": "gpu-check-llama-1b",
        "title": "Llama-3.2-1B shape",
        "layers": 16,
        "hidden": 2048,
        "heads": 32,
        "kv_heads": 8,
        "intermediate": 8192,
        "vocab": 128_256,
        "tied": True,
    },
    "8b": {
        "name": "gpu-check-llama-8b",
        "title": "Llama-3.1-8B shape",
        "layers": 32,
        "hidden": 4096,
        "heads": 32,
        "kv_heads": 8,
        "intermediate": 14_336,
        "vocab": 128_256,
        "tied": False,
    },
}
ROWS_PER_STEP = {"1b": 4, "8b": 2}  # rows of --max-length tokens per optimizer step
# Seconds spent outside the timed steps, for the plan's estimate: building (or saving and
# quantising) the model, the first step's warm-up, the checkpoint publish and fetch.
SETUP_SECONDS = {"1b": 15, "8b": 30}
QLORA_SAVE_SECONDS = {"1b": 20, "8b": 90}
PLAN_MFU = 0.35  # assumed for the time estimate of the plan only
PLAN_GPU = "H200"


@dataclass(frozen=True)
class Row:
    key: str
    size: str
    label: str
    trainer: str = "tuning"  # tuning | trl-bfd | trl-bfd-rows | launched (the CLI, torchrun)
    method: str = "lora"
    precision: str = "bf16"
    attention: str = "sdpa"
    variant: str = ""  # "" | mask-attention | own-loss; launched rows: ddp | fsdp
    resume_check: bool = True
    needs: tuple[str, ...] = ()


def rows_for(sizes: list[str]) -> list[Row]:
    rows: list[Row] = []
    for size in sizes:
        rows += [
            Row(f"{size}-sdpa", size, "LoRA bf16, sdpa: per-document attention, chunked loss"),
            Row(
                f"{size}-fa2",
                size,
                "LoRA bf16, FlashAttention 2 (variable length), chunked loss",
                attention="flash_attention_2",
                needs=("flash_attn",),
            ),
            Row(
                f"{size}-fp16",
                size,
                "LoRA fp16, fp32 adapters, loss scaling, sdpa (V100's path)",
                precision="fp16",
            ),
        ]
        if size == "1b":
            rows += [
                Row(
                    "1b-mask",
                    size,
                    "LoRA bf16, sdpa with transformers' dense block-diagonal mask",
                    variant="mask-attention",
                    resume_check=False,
                ),
                Row(
                    "1b-own-loss",
                    size,
                    "LoRA bf16, sdpa per-document, the model's own loss (full logits)",
                    variant="own-loss",
                    resume_check=False,
                ),
                Row(
                    "1b-trl-bfd",
                    size,
                    "TRL 1.16 SFTTrainer packing=True (bfd), 1 row x accumulation",
                    trainer="trl-bfd",
                    resume_check=False,
                    needs=("trl",),
                ),
                Row(
                    "1b-trl-bfd-rows",
                    size,
                    "TRL 1.16 SFTTrainer packing=True (bfd), all rows in one micro-batch",
                    trainer="trl-bfd-rows",
                    resume_check=False,
                    needs=("trl",),
                ),
            ]
            rows += [
                Row(
                    f"1b-torchrun-{strategy}",
                    size,
                    f"LoRA bf16, sdpa: `tuning-trainer train --nproc-per-node 1` with "
                    f"training.distributed {strategy} (torchrun, world size 1; tokens/s from "
                    "step 1, the trainer's own figure)",
                    trainer="launched",
                    variant=strategy,
                    resume_check=False,
                )
                for strategy in ("ddp", "fsdp")
            ]
        # last of its size: it saves the random model to disk first (16 GB at 8B)
        rows.append(
            Row(
                f"{size}-qlora",
                size,
                "QLoRA: NF4 base (bitsandbytes), bf16 compute, sdpa per-document",
                method="qlora",
                needs=("bitsandbytes",),
            )
        )
    return rows


def missing_packages(row: Row) -> list[str]:
    return [name for name in row.needs if importlib.util.find_spec(name) is None]


# --- configs -----------------------------------------------------------------------------------


def register_shapes() -> None:
    """Make the check's shapes loadable as ``builtin:<name>`` by the trainer's model loader."""
    from tuning_trainer import model

    for shape in SHAPES.values():
        model.BUILTIN_MODELS[shape["name"]] = {
            k: v for k, v in shape.items() if k not in ("name", "title")
        }


def model_shape(size: str) -> Any:
    """Parameter counts of a size, from its config on the meta device (no memory, no GPU)."""
    import torch
    from tuning_trainer import estimate, model

    register_shapes()
    with torch.device("meta"):
        lm = model.build_builtin_model(SHAPES[size]["name"], 259, "sdpa")
    return estimate.shape_of(lm)


def run_config(row: Row, data: Path, out: Path, args: argparse.Namespace, base: str) -> Path:
    """The row's run config as a YAML file, loaded by ``load_config`` like any run's."""
    document = {
        "model": {"base_model": base, "method": row.method, "attn_implementation": row.attention},
        "lora": {**LORA, "target_modules": "all-linear"},
        "data": {
            "train": str(data.resolve()),
            "max_seq_length": args.max_length,
            "packing": True,
            "max_truncated_fraction": 1.0,  # the log-normal spread is clipped at max_length
        },
        "training": {
            "max_steps": args.steps + 1,
            "save_steps": args.steps,
            "save_total_limit": 1,
            "per_device_train_batch_size": ROWS_PER_STEP[row.size],
            "gradient_accumulation_steps": 1,
            "learning_rate": LEARNING_RATE,
            "warmup_ratio": 0.0,
            "lr_scheduler_type": "linear",
            "logging_steps": 1,
            "seed": SEED,
            "precision": row.precision,
            "gradient_checkpointing": True,
            "report_to": "none",
        },
        "output": {"uri": str(out)},
        "interruption": {"spot_polling": "never"},
    }
    path = out.parent / f"{row.key}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def base_model_of(row: Row, work: Path) -> str:
    if row.method == "qlora":
        return str(work / f"random-{row.size}")  # saved by saved_random_model before the row
    return f"builtin:{SHAPES[row.size]['name']}"


# --- the plan ----------------------------------------------------------------------------------


@dataclass
class Context:
    args: argparse.Namespace
    work: Path
    data: Path
    shapes: dict[str, Any] = field(default_factory=dict)
    prepared: Any = None  # train.prepare_data of the check's data: the same for every row
    pairs_per_token: float = 0.0
    gpu: Any = None
    device_name: str = ""
    started: float = field(default_factory=time.monotonic)  # the budget counts from here


def planned_pairs_per_token(args: argparse.Namespace) -> float:
    """Mean keys per token of the check's data, from the generator's lengths (no tokenizer)."""
    from tuning_trainer import estimate
    from tuning_trainer.synthetic import lognormal_examples

    limit = args.max_length - TEMPLATE_TOKENS
    records = lognormal_examples(args.examples, seed=SEED, min_tokens=20, max_tokens=limit)
    lengths = [len(r["instruction"]) + len(r["output"]) + TEMPLATE_TOKENS for r in records]
    return estimate.causal_pairs_per_token(lengths)


def row_seconds(row: Row, ctx: Context) -> float:
    """The plan's time estimate for a row on an H200 at PLAN_MFU (HFU, recompute included)."""
    from tuning_trainer import estimate

    shape = ctx.shapes[row.size]
    flops = estimate.model_flops_per_token(shape, row.method, ctx.pairs_per_token)
    flops += estimate.recompute_flops_per_token(shape, ctx.pairs_per_token)
    peak = estimate.GPUS[PLAN_GPU].dense_tflops[row.precision] * 1e12
    steps = ctx.args.steps + 1 + (1 if row.resume_check else 0)
    tokens = steps * ROWS_PER_STEP[row.size] * ctx.args.max_length
    seconds = tokens * flops / (PLAN_MFU * peak) + SETUP_SECONDS[row.size]
    return seconds + (QLORA_SAVE_SECONDS[row.size] if row.method == "qlora" else 0)


def print_plan(rows: list[Row], ctx: Context) -> None:
    from tuning_trainer import estimate

    args = ctx.args
    print("# GPU check plan (dry run: nothing runs on a GPU)\n")
    for size, shape in ctx.shapes.items():
        s = SHAPES[size]
        print(
            f"- model {size}: {s['title']} ({s['layers']} layers, hidden {s['hidden']}, "
            f"{s['heads']}/{s['kv_heads']} heads, MLP {s['intermediate']}, vocabulary "
            f"{s['vocab']:,}, {'tied' if s['tied'] else 'untied'} output layer), random weights: "
            f"{shape.parameters / 1e9:.2f}B parameters, {shape.matmul_weights / 1e9:.2f}B in "
            f"matrix multiplications (counted on the meta device)"
        )
    print(
        f"- data: {args.examples} synthetic conversations, log-normal lengths 20 to "
        f"{args.max_length - TEMPLATE_TOKENS} tokens (median ~180), packed into rows of "
        f"{args.max_length}; s ~ {ctx.pairs_per_token:.0f} keys per token"
    )
    print(
        f"- every row: {args.steps + 1} optimizer steps (tokens/s over steps 2..{args.steps}), "
        "LoRA r=16 alpha 32 on every linear layer, gradient checkpointing on, seed 0"
    )
    print(f"- {versions()}")
    print(f"- work folder: {ctx.work}; offline (HF_HUB_OFFLINE=1)\n")
    print(
        "| row | model | configuration | tokens/step | resume check | needs | "
        f"est. seconds on an {PLAN_GPU} |"
    )
    print("| --- | --- | --- | ---: | --- | --- | ---: |")
    total = 0.0
    for row in rows:
        missing = missing_packages(row)
        needs = ", ".join(row.needs) or "-"
        if missing:
            needs += f" (not importable here: {', '.join(missing)})"
        seconds = row_seconds(row, ctx)
        total += seconds
        tokens = ROWS_PER_STEP[row.size] * args.max_length
        print(
            f"| {row.key} | {row.size} | {row.label} | ~{tokens} | "
            f"{'yes' if row.resume_check else '-'} | {needs} | {seconds:.0f} |"
        )
    peak = estimate.GPUS[PLAN_GPU].dense_tflops["bf16"]
    print(
        f"\nEstimated total: {total / 60:.1f} min on one {PLAN_GPU} (compute at an assumed "
        f"{PLAN_MFU:.0%} of its {peak:g} TFLOP/s dense bf16 peak, plus model builds, QLoRA's "
        f"save and quantised load, checkpoints); a row starts only if its estimate ends within "
        f"{args.budget_seconds} s."
    )
    print(f"FLOPs: {estimate.FLOPS_FORMULA}.")


# --- running rows (a GPU) ----------------------------------------------------------------------


@contextlib.contextmanager
def built_on_gpu(dtype: Any) -> Iterator[None]:
    """Build a model directly on the GPU in its training dtype (8B in fp32 on the CPU is slow)."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device("cuda"):
            yield
    finally:
        torch.set_default_dtype(previous)


def saved_random_model(size: str, folder: Path) -> None:
    """The random model of a size as a local model folder, which QLoRA loads (and quantises)."""
    import torch
    from tuning_trainer import model

    if (folder / "config.json").exists():
        return
    with built_on_gpu(torch.bfloat16):
        lm = model.build_builtin_model(SHAPES[size]["name"], 259, "sdpa")
    lm.save_pretrained(folder)
    model.builtin_tokenizer().save_pretrained(folder)
    del lm
    gc.collect()
    torch.cuda.empty_cache()


def step_sync() -> Any:
    """A callback that waits for the GPU at every step end, so the step clock times real work.

    Added before the bench's clock, so it runs first at each step end."""
    import torch
    from transformers import TrainerCallback

    class _Sync(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs) -> None:
            torch.cuda.synchronize()

    return _Sync()


def adapter_weights(lm: Any) -> dict[str, Any]:
    return {
        n: p.detach().float().cpu().clone() for n, p in lm.named_parameters() if p.requires_grad
    }


def weights_at(step: int) -> Any:
    """A callback that keeps the trainable weights as they are after optimizer step ``step``."""
    from transformers import TrainerCallback

    class _Snapshot(TrainerCallback):
        weights: dict[str, Any] | None = None

        def on_step_end(self, args, state, control, model=None, **kwargs) -> None:
            if state.global_step == step:
                self.weights = adapter_weights(model)

    return _Snapshot()


def run_tuning(row: Row, ctx: Context) -> dict[str, Any]:
    import torch
    from tuning_trainer import checkpoint, model, storage, train
    from tuning_trainer.config import load_config
    from tuning_trainer.signals import Interruption

    work = ctx.work / row.key
    shutil.rmtree(work, ignore_errors=True)
    if row.method == "qlora":
        saved_random_model(row.size, Path(base_model_of(row, ctx.work)))
    config_path = run_config(row, ctx.data, work / "run", ctx.args, base_model_of(row, ctx.work))
    config = load_config(str(config_path), env={}).config
    plan = model.plan_hardware(config)
    prepared = ctx.prepared
    torch.cuda.reset_peak_memory_stats()
    building = built_on_gpu(plan.torch_dtype) if row.method != "qlora" else contextlib.nullcontext()
    with building:
        lm = train.load_seeded_model(config, plan, len(prepared.tokenizer))
    if row.variant == "mask-attention":
        # transformers' own reading of a packed row: a dense block-diagonal mask (as bench.py)
        lm.set_attn_implementation(plan.attn_implementation)
        lm.config.use_cache = False
    store = storage.Store(config.output.uri)

    def trainer_in(staging: Path) -> Any:
        trainer, _ = train.build_trainer(
            config, config.to_yaml(), plan, prepared, lm, store, staging, {}, Interruption(100)
        )
        if row.variant == "own-loss":
            trainer.chunked_loss = False
        return trainer

    trainer = trainer_in(work / "staging")
    trainer.add_callback(step_sync())
    snapshot = weights_at(ctx.args.steps)
    trainer.add_callback(snapshot)
    result = train_measured(trainer, ctx.args.steps, 1)
    result["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    if row.resume_check:
        straight = adapter_weights(lm)
        del trainer
        gc.collect()
        torch.cuda.empty_cache()
        found = checkpoint.fetch_latest(store, work / "staging-resume")
        if found is None:
            result["resume"] = "no published checkpoint"
        else:
            resumed_trainer = trainer_in(work / "staging-resume")
            resumed_trainer.train(resume_from_checkpoint=str(found))
            result["resume"] = resume_verdict(straight, adapter_weights(lm), snapshot.weights)
    return result


def run_launched(row: Row, ctx: Context) -> dict[str, Any]:
    """The distributed path end to end: the CLI starts torchrun with one rank on the GPU."""
    import json
    import re
    import subprocess

    from tuning_trainer import checkpoint, storage

    work = ctx.work / row.key
    shutil.rmtree(work, ignore_errors=True)
    base = ctx.work / f"random-{row.size}"
    saved_random_model(row.size, base)  # a separate process cannot see register_shapes()
    config_path = run_config(row, ctx.data, work / "run", ctx.args, str(base))
    document = yaml.safe_load(config_path.read_text())
    document["training"]["distributed"] = row.variant
    config_path.write_text(yaml.safe_dump(document, sort_keys=False))
    done = subprocess.run(
        [sys.executable, "-m", "tuning_trainer", "train", "--config", str(config_path),
         "--nproc-per-node", "1"],
        capture_output=True, text=True, check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    sys.stderr.write(done.stderr[-3000:])
    chosen = f"distributed: {row.variant} on 1 process(es)"
    if done.returncode != 0 or chosen not in done.stderr:
        line = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"skipped": f"error: exit {done.returncode}: {line[:120]}"}
    speeds = [
        json.loads(line)["tokens_per_second"]
        for line in done.stdout.splitlines()
        if line.startswith('{"_aws"') and "tokens_per_second" in line
    ]
    memory = re.findall(r"gpu mem ([\d.]+) GiB", done.stderr)
    final = checkpoint.read_manifest(storage.Store(document["output"]["uri"]), checkpoint.FINAL)
    return {
        "tokens_per_step": ROWS_PER_STEP[row.size] * ctx.args.max_length,
        "tokens_per_second": speeds[-1],
        "peak_gib": float(memory[-1]) if memory else float("nan"),
        "resume": "final/ published" if final else "NO final/",
    }


def resume_verdict(straight: dict, resumed: dict, before: dict | None) -> str:
    difference = max(float((straight[n] - resumed[n]).abs().max()) for n in straight)
    if before is None:
        return f"no step-N weights (max diff {difference:.1e})"
    update = max(float((straight[n] - before[n]).abs().max()) for n in straight)
    if difference == 0:
        return "equal (max diff 0)"
    if difference <= 0.01 * update:
        return (
            f"equal within 1 % of a step's update (max diff {difference:.1e}, update {update:.1e})"
        )
    return f"DIFFERS: max diff {difference:.1e} vs a step's update {update:.1e}"


def run_trl(row: Row, ctx: Context) -> dict[str, Any]:
    """TRL's SFTTrainer on the same model, data, LoRA, precision and tokens per step."""
    import torch
    from transformers import set_seed
    from tuning_trainer import model

    rows = ROWS_PER_STEP[row.size]
    tokenizer = model.builtin_tokenizer()
    torch.cuda.reset_peak_memory_stats()
    with built_on_gpu(torch.bfloat16):
        lm = model.build_builtin_model(SHAPES[row.size]["name"], len(tokenizer), "sdpa")
    set_seed(SEED)
    batch, accumulation = (1, rows) if row.trainer == "trl-bfd" else (rows, 1)
    settings = {
        "max_steps": ctx.args.steps,
        "per_device_train_batch_size": batch,
        "gradient_accumulation_steps": accumulation,
        "max_length": ctx.args.max_length,
        "packing": True,
        "bf16": True,
        "seed": SEED,
        "use_cpu": not torch.cuda.is_available(),  # only for a CPU smoke run of this function
    }
    trainer = trl_trainer(lm, tokenizer, ctx.data, ctx.work / row.key, settings)
    trainer.add_callback(step_sync())
    result = train_measured(trainer, ctx.args.steps, accumulation)
    result["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def run_row(row: Row, ctx: Context) -> dict[str, Any]:
    import torch

    missing = missing_packages(row)
    if missing:
        return {"skipped": f"{', '.join(missing)} not importable"}
    if row.precision == "bf16" and torch.cuda.get_device_capability() < (8, 0):
        return {"skipped": "bf16 needs compute capability >= 8.0"}
    run = {"tuning": run_tuning, "launched": run_launched}.get(row.trainer, run_trl)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the trainer's metric lines
            return run(row, ctx)
    except torch.cuda.OutOfMemoryError:
        return {"skipped": "OOM"}
    except Exception as err:  # one broken row must not hide the others
        if "out of memory" in str(err).lower():
            return {"skipped": "OOM"}
        traceback.print_exc()
        return {"skipped": f"error: {type(err).__name__}: {str(err).splitlines()[0][:120]}"}
    finally:
        gc.collect()
        torch.cuda.empty_cache()


def utilisation(row: Row, result: dict[str, Any], ctx: Context) -> str:
    from tuning_trainer import estimate

    if ctx.gpu is None:
        return f"n/a (no peak known for {ctx.device_name})"
    peak = ctx.gpu.dense_tflops.get(row.precision)
    if peak is None:
        return f"n/a (no {row.precision} peak)"
    shape = ctx.shapes[row.size]
    model_flops = estimate.model_flops_per_token(shape, row.method, ctx.pairs_per_token)
    recompute = estimate.recompute_flops_per_token(shape, ctx.pairs_per_token)
    mfu = result["tokens_per_second"] * model_flops / (peak * 1e12)
    hfu = result["tokens_per_second"] * (model_flops + recompute) / (peak * 1e12)
    return f"{mfu:.1%} ({hfu:.1%})"


def print_table(rows: list[Row], results: dict[str, dict[str, Any]], ctx: Context) -> None:
    from tuning_trainer import estimate

    peak = "unknown" if ctx.gpu is None else f"{ctx.gpu.dense_tflops.get('bf16', 0):g}"
    print(
        f"\n## GPU check: {ctx.device_name}, dense bf16 peak {peak} TFLOP/s; {ctx.args.steps + 1} "
        f"steps a row, rows of {ctx.args.max_length} tokens, gradient checkpointing on\n"
    )
    print(f"{versions()}\n")
    print(
        "| model | configuration | tokens/step | tokens/s | vs LoRA bf16 sdpa | MFU (HFU) "
        "| peak GPU memory | resume: N+1 straight = N, publish, resume, 1 |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        r = results.get(row.key, {"skipped": "not run"})
        if "skipped" in r:
            print(f"| {row.size} | {row.label} | | {r['skipped']} | | | | |")
            continue
        base = results.get(f"{row.size}-sdpa", {}).get("tokens_per_second")
        ratio = f"{r['tokens_per_second'] / base:.2f}x" if base else ""
        print(
            f"| {row.size} | {row.label} | {r['tokens_per_step']:.0f} "
            f"| {r['tokens_per_second']:.0f} | {ratio} | {utilisation(row, r, ctx)} "
            f"| {r['peak_gib']:.1f} GiB | {r.get('resume', '-')} |"
        )
    print(
        f"\nMFU: tokens/s x model FLOPs per token / the GPU's dense peak in the row's precision "
        "(tuning_trainer.estimate.GPUS, keyed by torch.cuda.get_device_name()); "
        f"{estimate.FLOPS_FORMULA}; "
        f"s = {ctx.pairs_per_token:.0f} keys per token in this data. Peak memory: "
        "torch.cuda.max_memory_allocated from before the model is built."
    )


def print_claims(results: dict[str, dict[str, Any]]) -> None:
    """Issue 9's GPU claims on the ~1B model, as ratios of the rows above (None: not measured)."""

    def ratio(a: str, b: str, key: str) -> str:
        x, y = results.get(a, {}).get(key), results.get(b, {}).get(key)
        return f"{x / y:.2f}x" if x and y else "not measured"

    trl = [
        k for k in ("1b-trl-bfd", "1b-trl-bfd-rows") if "tokens_per_second" in results.get(k, {})
    ]
    best = max(trl, key=lambda k: results[k]["tokens_per_second"]) if trl else "1b-trl-bfd"
    print("\nIssue 9's levers on the ~1B model (tokens/s ratio, peak-memory ratio):")
    print(
        f"- per-document attention vs transformers' dense block-diagonal mask under sdpa: "
        f"{ratio('1b-sdpa', '1b-mask', 'tokens_per_second')} speed, "
        f"{ratio('1b-sdpa', '1b-mask', 'peak_gib')} memory"
    )
    print(
        f"- chunked loss vs the model's own loss over the full logits: "
        f"{ratio('1b-sdpa', '1b-own-loss', 'tokens_per_second')} speed, "
        f"{ratio('1b-sdpa', '1b-own-loss', 'peak_gib')} memory"
    )
    print(
        f"- tuning-trainer vs TRL's fastest packing=True configuration here ({best}): "
        f"{ratio('1b-sdpa', best, 'tokens_per_second')} speed, "
        f"{ratio('1b-sdpa', best, 'peak_gib')} memory"
    )


def versions() -> str:
    """The packages the numbers depend on, as installed (the pins: gpu-check-requirements.txt)."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    found = [f"torch {torch.__version__} (CUDA {torch.version.cuda})"]
    for name in ("transformers", "peft", "trl", "accelerate", "bitsandbytes", "flash-attn"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} absent")
    return "versions: " + ", ".join(found)


def run_all(rows: list[Row], ctx: Context) -> dict[str, dict[str, Any]]:
    from tuning_trainer import estimate, train
    from tuning_trainer.config import load_config

    # The data as train prepares it (tokenized, packed into rows), once: every row reads it.
    plain = Row("data", rows[0].size, "")
    path = run_config(
        plain, ctx.data, ctx.work / "data" / "run", ctx.args, base_model_of(plain, ctx.work)
    )
    ctx.prepared = train.prepare_data(load_config(str(path), env={}).config)
    ctx.pairs_per_token = estimate.causal_pairs_per_token(ctx.prepared.train_stats.lengths)
    results: dict[str, dict[str, Any]] = {}
    for row in rows:
        elapsed = time.monotonic() - ctx.started
        expected = 0 if missing_packages(row) else row_seconds(row, ctx)
        if elapsed + expected > ctx.args.budget_seconds:
            results[row.key] = {
                "skipped": f"would end past the {ctx.args.budget_seconds} s budget "
                f"(at {elapsed:.0f} s, about {expected:.0f} s more)"
            }
            continue
        print(f"gpu-check: {row.key} ({elapsed:.0f} s so far)", file=sys.stderr, flush=True)
        results[row.key] = run_row(row, ctx)
        print(f"gpu-check: {row.key}: {results[row.key]}", file=sys.stderr, flush=True)
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print the plan; no GPU needed")
    parser.add_argument("--sizes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--steps", type=int, default=5, help="N: timed steps 2..N, resume at N")
    parser.add_argument("--max-length", type=int, default=4096, help="tokens per packed row")
    parser.add_argument("--examples", type=int, default=1200, help="synthetic conversations")
    parser.add_argument(
        "--budget-seconds",
        type=int,
        default=450,
        help="a row starts only if its estimated end is within this many seconds of the start",
    )
    parser.add_argument("--only", nargs="+", metavar="ROW", help="run only these rows (keys)")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a new temp folder)")
    args = parser.parse_args(argv)
    if args.steps < 3:
        parser.error("--steps must be at least 3 (step 1 warms up, then at least two timed)")
    return args


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = parse_args(argv)
    import torch
    from tuning_trainer import estimate
    from tuning_trainer.config import load_config

    if not args.dry_run and not torch.cuda.is_available():
        print(
            "gpu_check: needs a CUDA GPU (torch.cuda.is_available() is False); "
            "--dry-run prints the plan without one",
            file=sys.stderr,
        )
        return EXIT_NO_GPU
    rows = [r for r in rows_for(args.sizes) if not args.only or r.key in args.only]
    work = (args.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    try:
        register_shapes()
        data = make_data(work, args.examples, SEED, args.max_length - TEMPLATE_TOKENS)
        ctx = Context(args, work, data, started=started)
        ctx.shapes = {size: model_shape(size) for size in args.sizes}
        for row in rows:  # every row's run config must load, in the dry run too
            path = run_config(row, data, work / row.key / "run", args, base_model_of(row, work))
            load_config(str(path), env={})
        if args.dry_run:
            ctx.pairs_per_token = planned_pairs_per_token(args)
            print_plan(rows, ctx)
            return 0
        import logging
        import warnings

        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        warnings.filterwarnings("ignore")
        ctx.device_name = torch.cuda.get_device_name()
        ctx.gpu = estimate.gpu_for_device_name(ctx.device_name)
        results = run_all(rows, ctx)
        print_table(rows, results, ctx)
        print_claims(results)
        return 0
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
