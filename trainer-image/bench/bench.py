"""Trainer benchmark: tuning-trainer against TRL's SFTTrainer at its best, on equal terms.

    make bench                                               # both shapes, 3 alternated rounds
    .venv/bin/python trainer-image/bench/bench.py --shape realistic --rounds 5
    .venv/bin/python trainer-image/bench/bench.py --scaling  # time and memory vs max_seq_length

Every configuration trains the same model (random weights from a config, seeded), the same
records, with LoRA r=16 on every linear layer, the same learning rate, seed, precision, gradient
checkpointing (on) and number of optimizer steps, at the same tokens per optimizer step (rows x
max length; unpacked configurations take as many examples as hold that many tokens on average).
Each run is its own process, so its peak RSS is its own. Configurations run in rounds, the order
reversed every round, and the table shows the median and the range over the rounds; the speed
ratio is taken within each round (paired) against TRL's fastest correct configuration of that
round. Before timing, each configuration passes a correctness check: one of its own training
batches, as its own collator builds it, goes through its own forward (training mode, no
gradients), and every document's logits and the batch's loss must equal those of each document
run alone; a configuration that fails is shown as failing and not ranked.

The machine's other work is measured during every run (CPU time of other processes, from
/proc/stat): above 10 % of the cores the table says so, because numbers taken on a busy machine
are not comparable.

Shapes: ``tiny`` is builtin:small-llama (4 layers, hidden 256, a 259-token vocabulary) and
``realistic`` is builtin:small-qwen2 (Qwen2.5's 151,936-token vocabulary, tied output layer, GQA
8:2, 4 layers of hidden 512), where the logits dominate as in real fine-tunes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
LORA = {"r": 16, "alpha": 32, "dropout": 0.0}
LEARNING_RATE = 2e-4
OPTIMIZER = "adamw_torch"  # both sides: TRL's default would be the fused AdamW
BUSY_SHARE = 0.10  # other processes' CPU share above which a run is flagged
TEMPLATE_TOKENS = 40  # the chat template's tokens around a user turn and an answer, rounded up


@dataclass(frozen=True)
class Shape:
    model: str
    max_length: int
    rows: int  # rows of max_length per optimizer step
    steps: int
    examples: int


SHAPES = {
    "tiny": Shape("small-llama", 1024, 4, 8, 600),
    "realistic": Shape("small-qwen2", 1024, 2, 6, 400),
}
SCALING_LENGTHS = (256, 512, 1024, 2048, 4096, 8192, 16384)
SCALING_TOKENS = 16384  # tokens per optimizer step in the scaling table

# name -> what the configuration is. "tuning-*" are this project's trainer (the last two with one
# lever turned off, to show what it gives); "trl-*" are TRL's SFTTrainer.
CONFIGS = {
    "trl-defaults": "TRL defaults (no packing, padded batches)",
    "trl-padding-free": "TRL padding_free=True (no packing, one flat row)",
    "trl-bfd": "TRL packing=True (bfd), 1 row x grad. accumulation",
    "trl-bfd-rows": "TRL packing=True (bfd), all rows in one micro-batch",
    "trl-bfd-full-logits": "TRL packing=True (bfd), 1 row, full-logits loss (compute_loss_func)",
    "tuning": "tuning-trainer (packing, per-document attention, chunked loss)",
    "tuning-no-chunked-loss": "tuning-trainer, model's own loss (full logits)",
    "tuning-mask-attention": "tuning-trainer, transformers' packed mask instead of per-document",
}
TIMED = {
    "tiny": ["trl-defaults", "trl-padding-free", "trl-bfd", "trl-bfd-rows", "tuning"],
    "realistic": [  # TRL's defaults pad every batch (2.5x the tokens): too slow to repeat here
        "trl-padding-free",
        "trl-bfd",
        "trl-bfd-rows",
        "trl-bfd-full-logits",
        "tuning",
        "tuning-no-chunked-loss",
    ],
}


# --- data --------------------------------------------------------------------------------------


def make_data(folder: Path, count: int, seed: int, max_tokens: int) -> Path:
    """Conversations whose token lengths follow a log-normal spread (one user, one answer turn)."""
    from tuning_trainer.synthetic import lognormal_examples

    path = folder / f"train-{count}-{seed}-{max_tokens}.jsonl"
    records = lognormal_examples(count, seed=seed, min_tokens=20, max_tokens=max_tokens)
    lines = []
    for r in records:
        messages = [
            {"role": "user", "content": r["instruction"]},
            {"role": "assistant", "content": r["output"]},
        ]
        lines.append(json.dumps({"messages": messages}) + "\n")
    path.write_text("".join(lines))
    return path


def read_messages(data: Path) -> list[list[dict[str, str]]]:
    return [json.loads(line)["messages"] for line in data.read_text().splitlines()]


# --- one run (a child process) -----------------------------------------------------------------


class StepClock:
    """A Trainer callback recording the wall time at the end of every optimizer step."""

    def __new__(cls):  # built lazily so the parent process never imports transformers
        from transformers import TrainerCallback

        class _Clock(TrainerCallback):
            def __init__(self) -> None:
                self.times: list[float] = []
                self.losses: list[float] = []
                self.cpu: list[tuple[int, int, float]] = []  # (busy, total) jiffies, own CPU s

            def on_step_end(self, args, state, control, **kwargs) -> None:
                self.times.append(time.perf_counter())
                self.cpu.append((*cpu_busy(), time.process_time()))

            def on_log(self, args, state, control, logs=None, **kwargs) -> None:
                if logs and "loss" in logs:
                    self.losses.append(float(logs["loss"]))

        return _Clock()


class CountingCollator:
    """Wraps a collator and records (real, processed) token counts of every batch it builds."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.batches: list[tuple[int, int]] = []

    def __call__(self, features):
        batch = self.inner(features)
        ids = batch["input_ids"]
        mask = batch.get("attention_mask")
        real = int(mask.sum()) if mask is not None and mask.dim() == 2 else ids.numel()
        self.batches.append((real, ids.numel()))
        return batch


def train_measured(trainer: Any, steps: int, accumulation: int) -> dict[str, Any]:
    counter = CountingCollator(trainer.data_collator)
    trainer.data_collator = counter
    clock = StepClock()
    trainer.add_callback(clock)
    reset_peak_memory()
    trainer.train()
    peak = peak_memory_gib()
    batches = counter.batches[: steps * accumulation]  # the DataLoader collates one ahead
    real = [
        sum(r for r, _ in batches[i * accumulation : (i + 1) * accumulation]) for i in range(steps)
    ]
    processed = sum(p for _, p in batches)
    seconds = clock.times[steps - 1] - clock.times[0]
    (busy0, total0, own0), (busy1, total1, own1) = clock.cpu[0], clock.cpu[steps - 1]
    ticks = os.sysconf("SC_CLK_TCK")
    others = (busy1 - busy0 - (own1 - own0) * ticks) / max(total1 - total0, 1)
    return {
        "peak_rss_gib": peak,
        "others_share": max(0.0, others),  # other processes' CPU share over steps 2..N
        "tokens_per_second": sum(real[1:]) / seconds,  # step 1 warms up
        "seconds_per_step": seconds / (steps - 1),
        "tokens_per_step": sum(real) / steps,
        "padding": 1 - sum(real) / processed,
        "loss_first": clock.losses[0] if clock.losses else float("nan"),
        "loss_last": clock.losses[-1] if clock.losses else float("nan"),
    }


def reset_peak_memory() -> None:
    """Start the process's peak RSS (VmHWM) again from its current RSS (Linux clear_refs)."""
    with contextlib.suppress(OSError):  # then the peak is the whole process's
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def tuning_config(data: Path, out: Path, shape: Shape, seed: int, precision: str) -> Path:
    import yaml

    config = {
        "model": {"base_model": f"builtin:{shape.model}", "method": "lora"},
        "lora": LORA,
        "data": {
            "train": str(data.resolve()),
            "max_seq_length": shape.max_length,
            "packing": True,
            # the bench's log-normal spread reaches max_length; nothing is cut
            "max_truncated_fraction": 1.0,
        },
        "training": {
            "max_steps": shape.steps,
            "per_device_train_batch_size": shape.rows,
            "gradient_accumulation_steps": 1,
            "learning_rate": LEARNING_RATE,
            "optim": OPTIMIZER,
            "warmup_ratio": 0.0,
            "lr_scheduler_type": "linear",
            "logging_steps": 1,
            "save_steps": 10_000,
            "seed": seed,
            "precision": precision,
            "gradient_checkpointing": True,
            "report_to": "none",
        },
        "output": {"uri": str(out)},
        "interruption": {"spot_polling": "never"},
    }
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def build_tuning(config_path: Path, variant: str = "tuning", output_uri: str | None = None):
    from tuning_trainer import model, storage
    from tuning_trainer.config import load_config
    from tuning_trainer.signals import Interruption
    from tuning_trainer.train import build_trainer, load_seeded_model, prepare_data

    env = {"LLM_OUTPUT__URI": output_uri} if output_uri else {}
    config = load_config(str(config_path), env=env).config
    plan = model.plan_hardware(config)
    prepared = prepare_data(config)
    lm = load_seeded_model(config, plan, len(prepared.tokenizer))
    if variant == "tuning-mask-attention":
        # transformers' own reading of the packed row: a block-diagonal mask from position ids
        lm.set_attn_implementation(plan.attn_implementation)
        lm.config.use_cache = False
    store = storage.Store(config.output.uri)
    staging = Path(tempfile.mkdtemp(prefix="bench-staging-"))
    trainer, publisher = build_trainer(
        config, config.to_yaml(), plan, prepared, lm, store, staging, {}, Interruption(100)
    )
    if variant == "tuning-no-chunked-loss":
        trainer.chunked_loss = False
    return trainer, publisher


def build_trl(variant: str, data: Path, work: Path, shape: Shape, seed: int, precision: str):
    """SFTTrainer for one TRL configuration, with the run's model, data and settings."""
    import torch
    from transformers import set_seed
    from tuning_trainer.model import build_builtin_model, builtin_tokenizer

    tokenizer = builtin_tokenizer()
    lm = build_builtin_model(shape.model, len(tokenizer), "sdpa")
    if precision == "bf16":
        lm = lm.to(torch.bfloat16)  # as tuning-trainer loads a LoRA base under bf16
    set_seed(seed)
    batch, accumulation, extra = examples_per_step(variant, data, shape, tokenizer)
    trainer = trl_trainer(
        lm,
        tokenizer,
        data,
        work / variant,
        {
            "max_steps": shape.steps,
            "per_device_train_batch_size": batch,
            "gradient_accumulation_steps": accumulation,
            "bf16": precision == "bf16",
            "seed": seed,
            "use_cpu": True,
            **{"max_length": shape.max_length, **extra},
        },
        full_logits_loss if variant == "trl-bfd-full-logits" else None,
    )
    return trainer, accumulation


def trl_trainer(lm, tokenizer, data: Path, out: Path, settings: dict, loss=None):
    """TRL's SFTTrainer with this benchmark's fixed terms; ``settings`` adds to SFTConfig.

    The records become conversational prompt-completion, so TRL's loss is on the answer only,
    as tuning-trainer's. Used by the GPU check too.
    """
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    import datasets

    dataset = datasets.Dataset.from_list(
        [{"prompt": m[:-1], "completion": m[-1:]} for m in read_messages(data)]
    )
    seed = settings.get("seed", 0)
    args = SFTConfig(
        output_dir=str(out),
        learning_rate=LEARNING_RATE,
        optim=OPTIMIZER,
        lr_scheduler_type="linear",
        warmup_steps=0,
        gradient_checkpointing=True,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        data_seed=seed,
        disable_tqdm=True,
        **settings,
    )
    peft_config = LoraConfig(
        r=LORA["r"],
        lora_alpha=LORA["alpha"],
        lora_dropout=LORA["dropout"],
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    return SFTTrainer(
        model=lm,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        compute_loss_func=loss,
    )


def full_logits_loss(outputs, labels, num_items_in_batch=None):
    """transformers' causal-LM loss over the model's full logits (TRL's compute_loss_func hook)."""
    from transformers.loss.loss_utils import ForCausalLMLoss

    logits = outputs.logits
    return ForCausalLMLoss(logits, labels, logits.shape[-1], num_items_in_batch)


def examples_per_step(variant: str, data: Path, shape: Shape, tokenizer) -> tuple[int, int, dict]:
    """(per-device batch, accumulation, extra SFTConfig) giving rows x max_length tokens a step."""
    if variant in ("trl-bfd", "trl-bfd-full-logits"):
        return 1, shape.rows, {"packing": True}
    if variant == "trl-bfd-rows":
        return shape.rows, 1, {"packing": True}
    # the builtin tokenizer has one token per byte of the rendered conversation
    lengths = [len(tokenizer.apply_chat_template(m, tokenize=False)) for m in read_messages(data)]
    count = max(1, round(shape.rows * shape.max_length / statistics.mean(lengths)))
    if variant == "trl-padding-free":
        # TRL refuses max_length with padding_free and no packing; no record here is longer
        return count, 1, {"padding_free": True, "max_length": None}
    return count, 1, {}


def run_timed(variant: str, data: Path, work: Path, shape: Shape, seed: int, precision: str):
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    if variant.startswith("tuning"):
        out = work / variant
        trainer, _ = build_tuning(tuning_config(data, out, shape, seed, precision), variant)
        accumulation = 1
    else:
        trainer, accumulation = build_trl(variant, data, work, shape, seed, precision)
    return train_measured(trainer, shape.steps, accumulation)


# --- the correctness check (a child process) ---------------------------------------------------


def run_check(variant: str, data: Path, work: Path, shape: Shape, seed: int, precision: str):
    """One training batch of the configuration vs each of its documents run alone (fp32)."""
    import torch

    if variant.startswith("tuning"):
        out = work / f"check-{variant}"
        trainer, _ = build_tuning(tuning_config(data, out, shape, seed, "fp32"), variant)
    else:
        trainer, _ = build_trl(variant, data, work, shape, seed, "fp32")
    batch = next(iter(trainer.get_train_dataloader()))
    model = trainer.model
    model.train()  # the forward as training runs it (dropout is 0)
    with torch.no_grad():  # the trainer's own loss function, as in training
        loss = trainer.compute_loss(model, dict(batch))
    # tuning-trainer's documents run alone through plain sdpa, not its own per-document code
    reference = "sdpa" if variant.startswith("tuning") else None
    return check_batch(model, batch, split_documents(batch), float(loss), reference)


def check_batch(
    model: Any, batch: dict, documents: list, loss: float, reference: str | None = None
) -> dict[str, Any]:
    """Each document's logits in the batch's forward vs run alone, and the loss vs theirs.

    ``reference``: the attention implementation for the documents run alone (default: the
    model's own).
    """
    import torch
    from tuning_trainer.loss import causal_model

    features = {k: v for k, v in batch.items() if k not in ("labels", "shift_labels")}
    base = causal_model(model)
    trained_with = base.config._attn_implementation
    with torch.no_grad():
        logits = model(**features, use_cache=False).logits.float()
        base.set_attn_implementation(reference or trained_with)
        try:
            alone_logits = [
                model(
                    input_ids=batch["input_ids"][row, start:end][None], use_cache=False
                ).logits.float()[0]
                for row, start, end in documents
            ]
        finally:
            base.set_attn_implementation(trained_with)
        worst, total, count = 0.0, 0.0, 0
        for (row, start, end), alone in zip(documents, alone_logits, strict=True):
            worst = max(worst, float((logits[row, start:end] - alone).abs().max()))
            targets = document_targets(batch, row, start, end)
            keep = targets != -100
            if keep.any():
                losses = torch.nn.functional.cross_entropy(
                    alone[keep], targets[keep], reduction="sum"
                )
                total, count = total + float(losses), count + int(keep.sum())
    reference = total / max(count, 1)
    loss_error = abs(loss - reference) / max(abs(reference), 1e-12)
    return {
        "documents": len(documents),
        "logit_error": worst,
        "loss_error": loss_error,
        "correct": worst < 1e-3 and loss_error < 1e-4,
    }


def split_documents(batch: dict) -> list[tuple[int, int, int]]:
    """(row, start, end) of every document of a batch: by position ids, else by the padding mask."""
    documents = []
    ids = batch["input_ids"]
    positions = batch.get("position_ids")
    mask = batch.get("attention_mask")
    for row in range(ids.shape[0]):
        end = int(mask[row].sum()) if mask is not None and mask.dim() == 2 else ids.shape[1]
        if positions is None:
            documents.append((row, 0, end))
            continue
        p = positions[row, :end].tolist()
        starts = [i for i in range(end) if i == 0 or p[i] != p[i - 1] + 1]
        documents += [(row, s, e) for s, e in zip(starts, [*starts[1:], end], strict=True)]
    return documents


def document_targets(batch: dict, row: int, start: int, end: int):
    """The document's next-token targets as its trainer defines them: its labels, shifted."""
    import torch

    labels = batch["labels"][row, start:end]
    return torch.cat([labels[1:], torch.tensor([-100])])


# --- the parent: rounds, load, tables ----------------------------------------------------------


def cpu_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def run_child(mode: str, variant: str, shape_name: str, data: Path, work: Path, args) -> dict:
    command = [sys.executable, __file__, "--child", mode, "--variant", variant]
    command += ["--shape", shape_name, "--data", str(data), "--work", str(work)]
    command += ["--seed", str(args.seed), "--precision", args.precision]
    if args.max_length:
        command += ["--max-length", str(args.max_length)]
    before_busy, before_total = cpu_busy()
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    after_busy, after_total = cpu_busy()
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH ")]
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stderr[-4000:])
        return {"failed": f"exit {done.returncode}"}
    result = json.loads(lines[-1][len("BENCH ") :])
    ticks = os.sysconf("SC_CLK_TCK")
    own = (
        after_children.ru_utime
        + after_children.ru_stime
        - before_children.ru_utime
        - before_children.ru_stime
    ) * ticks
    total = max(after_total - before_total, 1)
    result["others_share_run"] = max(0.0, (after_busy - before_busy - own) / total)
    result.setdefault("others_share", result["others_share_run"])
    return result


def resolve_precision(requested: str) -> str:
    if requested != "auto":
        return requested
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return "bf16" if ("amx_bf16" in flags or "avx512_bf16" in flags) else "fp32"


def bench_shape(shape_name: str, args, work: Path) -> None:
    shape = SHAPES[shape_name]
    data = make_data(work, shape.examples, args.seed, shape.max_length - TEMPLATE_TOKENS)
    configs = args.configs or TIMED[shape_name]
    print(
        f"\n## {shape_name}: builtin:{shape.model} + LoRA r={LORA['r']} (all linear layers), "
        f"{shape.rows} x {shape.max_length} tokens per optimizer step, {shape.steps} steps, "
        f"{args.precision}, gradient checkpointing on, seed {args.seed}",
        flush=True,
    )
    checks = {c: run_child("check", c, shape_name, data, work, args) for c in configs}
    for name, check in checks.items():
        print(f"check {name}: {json.dumps(check)}", flush=True)
    timed = [c for c in configs if checks[c].get("correct")]
    rounds: list[dict[str, dict]] = []
    for number in range(args.rounds):
        order = timed if number % 2 == 0 else list(reversed(timed))
        results = {}
        for name in order:
            results[name] = run_child("timed", name, shape_name, data, work, args)
            print(f"round {number + 1} {name}: {json.dumps(results[name])}", flush=True)
        rounds.append(results)
    print_table(shape_name, configs, checks, rounds)


def print_table(shape_name: str, configs, checks, rounds) -> None:
    def values(name: str, key: str) -> list[float]:
        return [r[name][key] for r in rounds if name in r and key in r[name]]

    trl = [c for c in configs if c.startswith("trl") and checks[c].get("correct")]
    best = max(trl, key=lambda c: statistics.median(values(c, "tokens_per_second") or [0]))
    ratios: dict[str, list[float]] = {}
    for name in configs:
        for r in rounds:
            if name in r and best in r and "tokens_per_second" in r[name]:
                trl_best = max(
                    r[c]["tokens_per_second"] for c in trl if "tokens_per_second" in r[c]
                )
                ratios.setdefault(name, []).append(r[name]["tokens_per_second"] / trl_best)
    busy = max((r[c].get("others_share", 0) for r in rounds for c in r), default=0)
    print(f"\n### {shape_name} ({len(rounds)} alternated rounds; TRL's best: {best})\n")
    print(
        "| configuration | correct (docs, max logit err, loss rel. err) | tokens/step | padding "
        "| tokens/s median (range) | vs TRL's best, paired | peak RSS GiB median (range) "
        "| loss step 1 -> last |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for name in configs:
        check = checks[name]
        if "failed" in check:
            verdict = f"check failed to run ({check['failed']})"
        else:
            verdict = (
                f"{'yes' if check['correct'] else 'NO'} ({check['documents']}, "
                f"{check['logit_error']:.1e}, {check['loss_error']:.1e})"
            )
        speeds = values(name, "tokens_per_second")
        if not speeds:
            print(f"| {CONFIGS[name]} | {verdict} | | | not ranked | | | |")
            continue
        rss = values(name, "peak_rss_gib")
        ratio = ratios.get(name, [])
        last = rounds[-1][name]
        tokens = statistics.median(values(name, "tokens_per_step"))
        print(
            f"| {CONFIGS[name]} | {verdict} | {tokens:.0f} "
            f"| {100 * statistics.median(values(name, 'padding')):.1f} % "
            f"| {statistics.median(speeds):.0f} ({min(speeds):.0f}-{max(speeds):.0f}) "
            f"| {statistics.median(ratio):.2f}x ({min(ratio):.2f}-{max(ratio):.2f}) "
            f"| {statistics.median(rss):.2f} ({min(rss):.2f}-{max(rss):.2f}) "
            f"| {last['loss_first']:.3f} -> {last['loss_last']:.3f} |"
        )
    note = "idle" if busy <= BUSY_SHARE else f"BUSY: other processes used up to {busy:.0%}"
    print(
        f"\nmachine during the runs: other processes used at most {busy:.1%} of the CPUs ({note})"
    )
    if busy > BUSY_SHARE:
        print("WARNING: the machine was busy; rerun on an idle machine before trusting the ratios")


SCALING_DOCUMENT_TOKENS = 216  # every document fits the shortest row: the rows change, not the data


def scaling_shape(length: int) -> Shape:
    return Shape("small-llama", length, max(1, SCALING_TOKENS // length), 3, 600)


def bench_scaling(args, work: Path) -> None:
    """Seconds and peak RSS per optimizer step vs max_seq_length at a fixed token budget."""
    print(
        f"\n## scaling: builtin:small-llama + LoRA, {SCALING_TOKENS} tokens per optimizer step "
        f"(rows = {SCALING_TOKENS} / max_seq_length), documents of 20-{SCALING_DOCUMENT_TOKENS} "
        f"tokens, {args.precision}, 3 steps (s/step over steps 2-3)\n"
    )
    print(
        "| max_seq_length | rows | tuning-trainer s/step | peak RSS | TRL bfd s/step | peak RSS |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    data = make_data(work, 600, args.seed, SCALING_DOCUMENT_TOKENS)
    for length in SCALING_LENGTHS:
        args.max_length = length
        cells = []
        for name in ("tuning", "trl-bfd"):
            r = run_child("timed", name, "scaling", data, work, args)
            if "seconds_per_step" in r:
                cells += [f"{r['seconds_per_step']:.2f}", f"{r['peak_rss_gib']:.2f} GiB"]
            else:
                cells += [r.get("failed", "failed"), ""]
        rows = scaling_shape(length).rows
        print(f"| {length} | {rows} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=[*SHAPES, "both", "scaling"], default="both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    parser.add_argument("--configs", nargs="*", choices=sorted(CONFIGS))
    parser.add_argument("--scaling", action="store_true")
    parser.add_argument("--child", choices=["timed", "check"])
    parser.add_argument("--variant", choices=sorted(CONFIGS))
    parser.add_argument("--data", type=Path)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--max-length", type=int, help=argparse.SUPPRESS)
    parser.set_defaults(max_length=None)
    args = parser.parse_args()
    args.precision = resolve_precision(args.precision)
    if args.child:
        import logging
        import warnings

        logging.disable(logging.WARNING)
        warnings.filterwarnings("ignore")
        shape = scaling_shape(args.max_length) if args.shape == "scaling" else SHAPES[args.shape]
        run = run_timed if args.child == "timed" else run_check
        result = run(args.variant, args.data, args.work, shape, args.seed, args.precision)
        print("BENCH " + json.dumps(result), flush=True)
        return

    work = REPO / "bench-output"
    work.mkdir(exist_ok=True)
    print(f"precision {args.precision}; {os.cpu_count()} CPUs; load average {os.getloadavg()}")
    if args.scaling or args.shape == "scaling":
        bench_scaling(args, work)
        return
    for name in ("tiny", "realistic") if args.shape == "both" else (args.shape,):
        bench_shape(name, args, work)


if __name__ == "__main__":
    main()
