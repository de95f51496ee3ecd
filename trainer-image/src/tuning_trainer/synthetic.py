"""Deterministic synthetic datasets for the tests, the demo and the benchmark (no downloads).

    python -m tuning_trainer.synthetic alpaca --count 300 --seed 1 > train.jsonl
    python -m tuning_trainer.synthetic lognormal --count 2000 --seed 0 > bench.jsonl

``alpaca``: short instruction/output pairs with learnable rules (reverse, uppercase, add), so a
tiny model's loss visibly falls. ``lognormal``: alpaca records whose token lengths (for the
builtin byte-level tokenizer, one token per byte) follow a log-normal spread between a minimum
and maximum, the shape of real instruction data, for the packing benchmark.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys

WORDS = [
    "apple",
    "river",
    "stone",
    "cloud",
    "green",
    "quiet",
    "metal",
    "paper",
    "orange",
    "silver",
    "tiger",
    "window",
    "yellow",
    "garden",
    "rocket",
    "pencil",
    "summer",
    "winter",
    "forest",
    "bridge",
    "candle",
    "dragon",
    "marble",
    "planet",
    "violet",
]


def alpaca_examples(count: int, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        kind = rng.randrange(3)
        word = rng.choice(WORDS)
        if kind == 0:
            records.append(
                {"instruction": "Reverse the word.", "input": word, "output": word[::-1]}
            )
        elif kind == 1:
            records.append(
                {"instruction": "Uppercase the word.", "input": word, "output": word.upper()}
            )
        else:
            a, b = rng.randrange(50), rng.randrange(50)
            records.append({"instruction": f"Add {a} and {b}.", "input": "", "output": str(a + b)})
    return records


def lognormal_examples(
    count: int,
    seed: int = 0,
    min_tokens: int = 20,
    max_tokens: int = 1500,
    median_tokens: int = 180,
    sigma: float = 0.9,
) -> list[dict[str, str]]:
    """Alpaca records whose byte lengths follow a clipped log-normal distribution."""
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        total = int(
            min(max_tokens, max(min_tokens, rng.lognormvariate(math.log(median_tokens), sigma)))
        )
        prompt_len = max(4, total // 3)
        records.append(
            {
                "instruction": _words(rng, prompt_len),
                "input": "",
                "output": _words(rng, max(4, total - prompt_len)),
            }
        )
    return records


def _words(rng: random.Random, length: int) -> str:
    text = ""
    while len(text) < length:
        text += rng.choice(WORDS) + " "
    return text[:length].strip() or "ok"


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a synthetic JSONL dataset to stdout.")
    parser.add_argument("kind", choices=["alpaca", "lognormal"])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    make = alpaca_examples if args.kind == "alpaca" else lognormal_examples
    for record in make(args.count, args.seed):
        sys.stdout.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
