"""Ranks on one machine: one process vs DDP and FSDP with 2 ranks, at the same global batch.

    make bench-distributed
    .venv/bin/python trainer-image/bench/distributed.py --rounds 3 --steps 30

Each configuration is the real command, ``tuning-trainer train`` (with ``--nproc-per-node 2``
for the ranks, under torchrun with gloo), on builtin:small-llama and the sample data, packed rows
of up to 256 tokens, bf16 autocast where the CPU has it: the same data, seed, steps, learning
rate and global batch (one process: 4 rows a step; two ranks: 2 rows each). Every rank count
shares this machine's cores (torchrun's ranks get cores / ranks OpenMP threads each), so the
efficiency column says what splitting the same cores into ranks costs here, not what a second
GPU adds.

tokens/s is the trainer's own figure for the job (real tokens of all ranks from the first step
to the last, ``tokens_per_second`` of its last metric line), so process start and model load are
not counted. Rounds alternate the order. Correctness: each configuration's final loss against
one process of the same method (same global batch, so equal within float tolerance).
Prints a Markdown table (docs/performance.md, "Several processes").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import REPO, cpu_busy, resolve_precision

CONFIGS = {
    # name: (method, ranks, distributed)
    "lora-1": ("lora", 1, "none"),
    "lora-ddp-2": ("lora", 2, "ddp"),
    "lora-fsdp-2": ("lora", 2, "fsdp"),
    "full-1": ("full", 1, "none"),
    "full-ddp-2": ("full", 2, "ddp"),
    "full-fsdp-2": ("full", 2, "fsdp"),
}
GLOBAL_ROWS = 4


def write_config(folder: Path, name: str, steps: int, precision: str) -> Path:
    method, ranks, strategy = CONFIGS[name]
    config = {
        "model": {"base_model": "builtin:small-llama", "method": method},
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
        "data": {
            "train": str(REPO / "datasets" / "sample" / "train.jsonl"),
            "max_seq_length": 256,
            "packing": True,
        },
        "training": {
            "max_steps": steps,
            "per_device_train_batch_size": GLOBAL_ROWS // ranks,
            "gradient_accumulation_steps": 1,
            "learning_rate": 1.0e-4 if method == "full" else 1.0e-3,
            "lr_scheduler_type": "constant",
            "warmup_ratio": 0.0,
            "logging_steps": steps,
            "save_steps": 10 * steps,  # the final model only
            "precision": precision,
            "distributed": strategy,
            "seed": 0,
            "report_to": "none",
        },
        "output": {"uri": str(folder / "out")},
        "interruption": {"spot_polling": "never"},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_one(name: str, work: Path, steps: int, precision: str) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))
    config = write_config(folder, name, steps, precision)
    ranks = CONFIGS[name][1]
    command = [sys.executable, "-m", "tuning_trainer", "train", "--config", str(config)]
    command += ["--nproc-per-node", str(ranks)]
    before_busy, before_total = cpu_busy()
    started = time.monotonic()
    done = subprocess.run(
        command, capture_output=True, text=True, check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    wall = time.monotonic() - started
    after_busy, after_total = cpu_busy()
    metrics = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"_aws"')]
    speeds = [m["tokens_per_second"] for m in metrics if "tokens_per_second" in m]
    if done.returncode != 0 or not speeds:
        sys.stderr.write(done.stderr[-4000:])
        return {"failed": f"exit {done.returncode}"}
    state = json.loads((folder / "out" / "final" / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    busy = (after_busy - before_busy) / max(after_total - before_total, 1)
    return {"tokens_per_second": speeds[-1], "loss": losses[-1], "wall": wall, "busy": busy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    parser.add_argument("--configs", nargs="*", choices=sorted(CONFIGS), default=list(CONFIGS))
    args = parser.parse_args()
    precision = resolve_precision(args.precision)
    work = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    results: dict[str, list[dict]] = {name: [] for name in args.configs}
    for round_number in range(args.rounds):
        order = args.configs if round_number % 2 == 0 else list(reversed(args.configs))
        for name in order:
            result = run_one(name, work, args.steps, precision)
            results[name].append(result)
            print(f"round {round_number + 1} {name}: {result}", file=sys.stderr, flush=True)
    print_table(results, args, precision)


def print_table(results: dict[str, list[dict]], args, precision: str) -> None:
    cpus = os.cpu_count()
    print(
        f"\nbuiltin:small-llama, {args.steps} steps of {GLOBAL_ROWS} packed rows (<= 256 tokens), "
        f"{precision}, {cpus} CPU cores shared by all ranks, {args.rounds} rounds alternated\n"
    )
    print(
        "| configuration | ranks | tokens/s median (range) | vs one process | "
        "final loss (vs one process) | CPU busy |"
    )
    print("| --- | ---: | ---: | ---: | --- | ---: |")
    for name, runs in results.items():
        method, ranks, strategy = CONFIGS[name]
        good = [r for r in runs if "failed" not in r]
        if not good:
            print(f"| {name} | {ranks} | failed: {runs[0]['failed']} | | | |")
            continue
        speeds = [r["tokens_per_second"] for r in good]
        base = [r for r in results.get(f"{method}-1", []) if "failed" not in r]
        ratio = ""
        check = f"{good[-1]['loss']:.4f}"
        if base and ranks > 1:
            pairs = [
                r["tokens_per_second"] / b["tokens_per_second"]
                for r, b in zip(good, base, strict=False)
            ]
            ratio = f"{statistics.median(pairs):.2f}x"
            difference = abs(good[-1]["loss"] - base[-1]["loss"]) / abs(base[-1]["loss"])
            check += f" (rel. {difference:.1e}: {'equal' if difference < 1e-3 else 'DIFFERS'})"
        busy = statistics.median(r["busy"] for r in good)
        print(
            f"| {method}, {strategy if ranks > 1 else 'one process'} | {ranks} | "
            f"{statistics.median(speeds):.0f} ({min(speeds):.0f}-{max(speeds):.0f}) | "
            f"{ratio or '1.00x'} | {check} | {100 * busy:.0f} % |"
        )


if __name__ == "__main__":
    main()
