"""Regenerate the sample instruction dataset that `make demo` trains on.

    python datasets/sample/generate.py        # rewrites train.jsonl and eval.jsonl beside this file

Our own making, deterministic (fixed seed), alpaca format (instruction / input / output). Short
answers with learnable structure (unit conversions, string transforms, small arithmetic, a glossary
of the terms tuning-lab uses) so that even the tiny builtin model shows a falling loss in a minute.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20261122
TRAIN_SIZE = 320
EVAL_SIZE = 40

GLOSSARY = {
    "spot instance": "Spare EC2 capacity sold at a discount that AWS can reclaim "
    "with a two-minute notice.",
    "on-demand instance": "EC2 capacity billed per second at a fixed price, "
    "never reclaimed by AWS.",
    "LoRA": "Low-rank adaptation: train small adapter matrices beside frozen weights.",
    "QLoRA": "LoRA on top of a base model quantized to 4 bits, to fit larger models in memory.",
    "checkpoint": "A saved training state (weights, optimizer, step) to resume from.",
    "gradient accumulation": "Summing gradients over several micro-batches before one "
    "optimizer step.",
    "learning rate": "The step size of each optimizer update.",
    "warmup": "Raising the learning rate gradually over the first steps of training.",
    "packing": "Concatenating short examples into one sequence to avoid padding.",
    "padding": "Filler tokens that make sequences in a batch the same length.",
    "epoch": "One full pass over the training data.",
    "IMDSv2": "The EC2 instance metadata service with session tokens.",
    "SSM session": "A shell on an instance through AWS Systems Manager, without SSH or open ports.",
    "Auto Scaling group": "A set of EC2 instances kept at a desired capacity.",
    "budget alert": "A notification when spending crosses a threshold.",
    "bf16": "A 16-bit float format with the range of fp32, fast on Ampere GPUs and newer.",
    "fp16": "A 16-bit float format that needs loss scaling to avoid underflow.",
    "tokenizer": "The component that turns text into token ids.",
    "EOS token": "The token that marks the end of a sequence.",
    "manifest": "A list of checkpoint files with sizes and checksums, written last.",
}
UNITS = [
    ("kilometres", "miles", 0.621371),
    ("miles", "kilometres", 1.609344),
    ("kilograms", "pounds", 2.204623),
    ("litres", "gallons", 0.264172),
    ("metres", "feet", 3.280840),
    ("hours", "minutes", 60.0),
    ("gibibytes", "mebibytes", 1024.0),
]
WORDS = [
    "spot",
    "gpu",
    "lora",
    "adapter",
    "bucket",
    "model",
    "token",
    "epoch",
    "batch",
    "budget",
    "alarm",
    "shard",
    "tensor",
    "kernel",
    "cache",
    "queue",
    "ledger",
    "region",
    "subnet",
    "policy",
]


def glossary(rng: random.Random) -> dict:
    term = rng.choice(list(GLOSSARY))
    phrasing = rng.choice(["Define the term.", "What does this term mean?", "Explain briefly."])
    return {"instruction": phrasing, "input": term, "output": GLOSSARY[term]}


def conversion(rng: random.Random) -> dict:
    source, target, factor = rng.choice(UNITS)
    amount = rng.randint(1, 250)
    value = round(amount * factor, 2)
    return {
        "instruction": f"Convert {source} to {target}.",
        "input": f"{amount} {source}",
        "output": f"{amount} {source} is {value:g} {target}.",
    }


def arithmetic(rng: random.Random) -> dict:
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    op, result = rng.choice([("plus", a + b), ("minus", a - b), ("times", a * b)])
    return {"instruction": "Compute the result.", "input": f"{a} {op} {b}", "output": str(result)}


def string_task(rng: random.Random) -> dict:
    words = rng.sample(WORDS, rng.randint(3, 6))
    text = " ".join(words)
    task, output = rng.choice(
        [
            ("Reverse the order of the words.", " ".join(reversed(words))),
            ("Sort the words alphabetically.", " ".join(sorted(words))),
            ("Write the words in upper case.", text.upper()),
            ("Count the words.", str(len(words))),
        ]
    )
    return {"instruction": task, "input": text, "output": output}


def cost(rng: random.Random) -> dict:
    hours = rng.randint(1, 24)
    price = rng.choice([0.45, 0.53, 1.01, 1.21, 3.06])
    total = round(hours * price, 2)
    return {
        "instruction": "Estimate the cost of the run.",
        "input": f"{hours} hours at ${price:.2f} per hour",
        "output": f"About ${total:.2f}.",
    }


MAKERS = [glossary, conversion, arithmetic, string_task, cost]


def examples(rng: random.Random, count: int) -> list[dict]:
    return [rng.choice(MAKERS)(rng) for _ in range(count)]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def main() -> None:
    rng = random.Random(SEED)
    write_jsonl(HERE / "train.jsonl", examples(rng, TRAIN_SIZE))
    write_jsonl(HERE / "eval.jsonl", examples(rng, EVAL_SIZE))


if __name__ == "__main__":
    main()
