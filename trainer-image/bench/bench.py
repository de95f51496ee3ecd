"""Trainer benchmark: tuning-trainer (packing) vs TRL's SFTTrainer defaults, side by side.

    make bench
    .venv/bin/python trainer-image/bench/bench.py --steps 12 --examples 800

Same CPU, model (builtin:small-llama: 4 layers, hidden 256, LoRA r=16 on all linear layers),
data (alpaca records whose token lengths follow a log-normal spread between 20 and 1,500), batch
size, max length, learning rate and seed. Each variant runs in its own process (so peak RSS is
its own) and the parent prints one markdown table:

- effective tokens/s: non-padding tokens per second of training, steps 2..N (step 1 warms up);
- padding: share of the tokens the model processed that were padding, over steps 1..N;
- peak RSS of the process;
- the time to publish a ~100 MB checkpoint (LoRA r=448 adapter + AdamW state) to moto's S3;
- the time from a spot notice (fake IMDSv2) to a complete checkpoint in moto's S3 and to exit 75.

TRL runs with its defaults (no packing, pad to the longest example of each batch); only
max_length is set to ours so both truncate the same way. Numbers vary with the machine and its
load: rerun rather than trust a copied figure.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
MAX_SEQ_LENGTH = 1536
LORA = {"r": 16, "alpha": 32, "dropout": 0.0}


def make_data(folder: Path, count: int, seed: int) -> Path:
    from tuning_trainer.synthetic import lognormal_examples

    path = folder / "train.jsonl"
    records = lognormal_examples(count, seed=seed, min_tokens=20, max_tokens=1500)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


class StepClock:
    """A Trainer callback recording the wall time at the end of every optimizer step."""

    def __new__(cls):  # built lazily so the parent process never imports transformers
        from transformers import TrainerCallback

        class _Clock(TrainerCallback):
            def __init__(self) -> None:
                self.times: list[float] = []

            def on_step_end(self, args, state, control, **kwargs) -> None:
                self.times.append(time.perf_counter())

        return _Clock()


class CountingCollator:
    """Wraps a collator and records (real, padded) token counts of every batch it builds."""

    def __init__(self, inner: Any, real_tokens) -> None:
        self.inner = inner
        self.real_tokens = real_tokens
        self.batches: list[tuple[int, int]] = []

    def __call__(self, features):
        batch = self.inner(features)
        self.batches.append((self.real_tokens(features, batch), batch["input_ids"].numel()))
        return batch


def summarise(name: str, clock, counter: CountingCollator, steps: int) -> dict[str, Any]:
    batches = counter.batches[:steps]  # the DataLoader collates one batch ahead
    seconds = clock.times[steps - 1] - clock.times[0]
    real_after_first = sum(real for real, _ in batches[1:])
    real, padded = sum(r for r, _ in batches), sum(p for _, p in batches)
    return {
        "name": name,
        "tokens_per_second": real_after_first / seconds,
        "padding": 1 - real / padded,
        "tokens_per_step": real / steps,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def train_measured(trainer: Any, name: str, real_tokens, steps: int) -> dict[str, Any]:
    """Train with the token counter and the step clock attached; the row of the table."""
    counter = CountingCollator(trainer.data_collator, real_tokens)
    trainer.data_collator = counter
    clock = StepClock()
    trainer.add_callback(clock)
    trainer.train()
    return summarise(name, clock, counter, steps)


def run_config(data: Path, out: Path, steps: int, seed: int, lora: dict, save_steps: int) -> Path:
    import yaml

    config = {
        "model": {"base_model": "builtin:small-llama", "method": "lora"},
        "lora": lora,
        "data": {"train": str(data.resolve()), "max_seq_length": MAX_SEQ_LENGTH, "packing": True},
        "training": {
            "max_steps": steps,
            "per_device_train_batch_size": 4,
            "gradient_accumulation_steps": 1,
            "learning_rate": 2e-4,
            "warmup_ratio": 0.0,
            "logging_steps": 1,
            "save_steps": save_steps,
            "seed": seed,
            "report_to": "none",
        },
        "output": {"uri": str(out)},
        "interruption": {"spot_polling": "never"},
    }
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def build_tuning_trainer(config_path: Path, output_uri: str | None = None):
    from tuning_trainer import model, storage
    from tuning_trainer.config import load_config
    from tuning_trainer.signals import Interruption
    from tuning_trainer.train import build_trainer, load_seeded_model, prepare_data

    env = {"LLM_OUTPUT__URI": output_uri} if output_uri else {}
    config = load_config(str(config_path), env=env).config
    plan = model.plan_hardware(config)
    prepared = prepare_data(config)
    lm = load_seeded_model(config, plan, len(prepared.tokenizer))
    store = storage.Store(config.output.uri)
    staging = Path(tempfile.mkdtemp(prefix="bench-staging-"))
    return build_trainer(
        config, config.to_yaml(), plan, prepared, lm, store, staging, {}, Interruption(100)
    )


def variant_tuning(data: Path, work: Path, steps: int, seed: int) -> dict[str, Any]:
    config = run_config(data, work / "tuning", steps, seed, LORA, save_steps=10_000)
    trainer, _ = build_tuning_trainer(config)
    return train_measured(
        trainer,
        "tuning-trainer (packing, block-diagonal mask)",
        lambda rows, batch: sum(len(r.input_ids) for r in rows),
        steps,
    )


def variant_trl(data: Path, work: Path, steps: int, seed: int) -> dict[str, Any]:
    from peft import LoraConfig
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer
    from tuning_trainer.data import to_messages
    from tuning_trainer.model import build_builtin_model, builtin_tokenizer

    import datasets

    tokenizer = builtin_tokenizer()
    records = [json.loads(line) for line in data.read_text().splitlines()]
    dataset = datasets.Dataset.from_list([{"messages": to_messages(r, "alpaca")} for r in records])
    set_seed(seed)
    lm = build_builtin_model("small-llama", len(tokenizer), "sdpa")
    args = SFTConfig(
        output_dir=str(work / "trl"),
        max_steps=steps,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=1,
        learning_rate=2e-4,
        max_length=MAX_SEQ_LENGTH,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=seed,
        use_cpu=True,
        disable_tqdm=True,
    )
    peft_config = LoraConfig(
        r=LORA["r"],
        lora_alpha=LORA["alpha"],
        lora_dropout=LORA["dropout"],
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    trainer = SFTTrainer(
        model=lm,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    return train_measured(
        trainer,
        "TRL SFTTrainer defaults (no packing)",
        lambda rows, batch: int(batch["attention_mask"].sum()),
        steps,
    )


def variant_publish(data: Path, work: Path, steps: int, seed: int) -> dict[str, Any]:
    """One optimizer step of a LoRA big enough for a ~100 MB checkpoint, published to moto."""
    import os

    sys.path.insert(0, str(REPO))
    import boto3
    from tuning_trainer import storage

    from testing.moto_server import MotoServer

    with MotoServer() as moto:
        os.environ.update(moto.env())
        storage.s3_client.cache_clear()
        boto3.client("s3").create_bucket(Bucket="outputs")
        big_lora = {"r": 448, "alpha": 448, "dropout": 0.0}
        config = run_config(data, work / "publish", 1, seed, big_lora, save_steps=1)
        trainer, publisher = build_tuning_trainer(config, "s3://outputs/runs/bench")
        trainer.train()
        manifest = json.loads(
            storage.Store("s3://outputs/runs/bench").get_bytes("checkpoints/step-1/manifest.json")
        )
    size = sum(entry["size"] for entry in manifest["files"])
    return {
        "name": "publish",
        "checkpoint_mb": size / 1e6,
        "publish_seconds": publisher.last_publish_seconds,
    }


def variant_spot(data: Path, work: Path, steps: int, seed: int) -> dict[str, Any]:
    """Seconds from a spot notice (fake IMDSv2, polled every 5 s) to a complete checkpoint."""
    import os

    sys.path.insert(0, str(REPO))
    import boto3
    from tuning_trainer import checkpoint, storage

    from testing.fake_imds import FakeImds
    from testing.moto_server import MotoServer

    with MotoServer() as moto, FakeImds() as imds:
        os.environ.update(moto.env())
        storage.s3_client.cache_clear()
        boto3.client("s3").create_bucket(Bucket="outputs")
        config = run_config(data, work / "spot", 10_000, seed, LORA, save_steps=10_000)
        text = config.read_text().replace("spot_polling: never", "spot_polling: auto")
        config.write_text(text)
        progress = work / "spot-progress.json"
        progress.unlink(missing_ok=True)
        env = {
            **os.environ,
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url,
            "TUNING_PROGRESS_FILE": str(progress),
            "LLM_OUTPUT__URI": "s3://outputs/runs/spot",
        }
        command = [sys.executable, "-m", "tuning_trainer", "train", "--config", str(config)]
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        while not progress.exists() or json.loads(progress.read_text())["step"] < 2:
            if process.poll() is not None:
                raise SystemExit(f"trainer exited early: {process.returncode}")
            time.sleep(0.05)
        noticed = time.monotonic()
        imds.interrupt()
        run = storage.Store("s3://outputs/runs/spot")
        complete = None
        while process.poll() is None:
            if complete is None and any(
                checkpoint.read_manifest(run, checkpoint.step_prefix(step))
                for step in checkpoint.published_steps(run)
            ):
                complete = time.monotonic() - noticed
            time.sleep(0.05)
        exited = time.monotonic() - noticed
    return {
        "name": "spot",
        "exit_code": process.returncode,
        "checkpoint_seconds": complete if complete is not None else float("nan"),
        "exit_seconds": exited,
    }


VARIANTS = {
    "tuning": variant_tuning,
    "trl": variant_trl,
    "publish": variant_publish,
    "spot": variant_spot,
}


def run_variant_process(name: str, data: Path, work: Path, steps: int, seed: int) -> dict:
    command = [sys.executable, __file__, "--variant", name, "--data", str(data)]
    command += ["--work", str(work), "--steps", str(steps), "--seed", str(seed)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH ")]
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"variant {name} failed ({done.returncode})")
    return json.loads(lines[-1][len("BENCH ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--examples", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", choices=sorted(VARIANTS))
    parser.add_argument("--data", type=Path)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    if args.variant:  # a child process: one variant, one JSON line
        import logging
        import warnings

        logging.disable(logging.WARNING)
        warnings.filterwarnings("ignore")
        result = VARIANTS[args.variant](args.data, args.work, args.steps, args.seed)
        print("BENCH " + json.dumps(result), flush=True)
        return

    work = REPO / "bench-output"
    work.mkdir(exist_ok=True)
    data = make_data(work, args.examples, args.seed)
    print(
        f"data: {args.examples} alpaca records, log-normal 20..1500 tokens; model "
        f"builtin:small-llama + LoRA r={LORA['r']}; batch 4, max length {MAX_SEQ_LENGTH}, "
        f"{args.steps} steps, seed {args.seed}",
        flush=True,
    )
    results = {}
    for name in ("trl", "tuning", "publish", "spot"):
        results[name] = run_variant_process(name, data, work, args.steps, args.seed)
    baseline = results["trl"]["tokens_per_second"]
    print()
    print("| trainer | effective tokens/s | speed-up | padding | tokens/step | peak RSS |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in ("trl", "tuning"):
        r = results[name]
        print(
            f"| {r['name']} | {r['tokens_per_second']:.0f} | "
            f"{r['tokens_per_second'] / baseline:.2f}x | {100 * r['padding']:.1f} % | "
            f"{r['tokens_per_step']:.0f} | {r['peak_rss_gib']:.2f} GiB |"
        )
    p = results["publish"]
    print()
    print(
        f"checkpoint publish to moto S3: {p['checkpoint_mb']:.0f} MB (adapter + optimizer state, "
        f"LoRA r=448) in {p['publish_seconds']:.2f} s (sha256 + upload, multipart above 64 MB)"
    )
    spot = results["spot"]
    print(
        f"spot notice (IMDSv2 polled every 5 s) -> complete checkpoint in S3: "
        f"{spot['checkpoint_seconds']:.1f} s; -> trainer exit {spot['exit_code']}: "
        f"{spot['exit_seconds']:.1f} s (small-llama, batch of 4 rows of 1,536 tokens per step)"
    )


if __name__ == "__main__":
    main()
