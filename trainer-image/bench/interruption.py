"""Checkpoint publish time and spot-notice-to-checkpoint time, against moto's S3 on loopback.

    make bench-interruption
    .venv/bin/python trainer-image/bench/interruption.py

Prints two lines (docs/performance.md):
- the time to publish a ~100 MB checkpoint (LoRA r=448 adapter + AdamW state of
  builtin:small-llama): sha256 of every file for the manifest, then boto3's managed upload;
- the time from a spot notice (a fake IMDSv2, polled every 5 s) to a complete checkpoint in S3
  and to the trainer's exit 75.

moto on localhost measures this project's side, not S3's network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import REPO, SHAPES, build_tuning, make_data, tuning_config

sys.path.insert(0, str(REPO))
from testing.fake_imds import FakeImds
from testing.moto_server import MotoServer

SHAPE = SHAPES["tiny"]


def with_settings(config: Path, **training) -> Path:
    document = yaml.safe_load(config.read_text())
    document["training"].update(training)
    config.write_text(yaml.safe_dump(document))
    return config


def publish(data: Path, work: Path) -> tuple[float, float]:
    """(megabytes, seconds) of publishing one checkpoint of a LoRA r=448 to moto."""
    import boto3
    from tuning_trainer import storage

    with MotoServer() as moto:
        os.environ.update(moto.env())
        storage.s3_client.cache_clear()
        boto3.client("s3").create_bucket(Bucket="outputs")
        config = tuning_config(data, work / "publish", SHAPE, 0, "fp32")
        document = yaml.safe_load(config.read_text())
        document["lora"] = {"r": 448, "alpha": 448, "dropout": 0.0}
        config.write_text(yaml.safe_dump(document))
        with_settings(config, max_steps=1, save_steps=1)
        trainer, publisher = build_tuning(config, output_uri="s3://outputs/runs/bench")
        trainer.train()
        run = storage.Store("s3://outputs/runs/bench")
        manifest = json.loads(run.get_bytes("checkpoints/step-1/manifest.json"))
    size = sum(entry["size"] for entry in manifest["files"])
    return size / 1e6, publisher.last_publish_seconds


def spot(data: Path, work: Path) -> tuple[int, float, float]:
    """(exit code, seconds to a complete checkpoint, seconds to exit) after a spot notice."""
    import boto3
    from tuning_trainer import checkpoint, storage

    with MotoServer() as moto, FakeImds() as imds:
        os.environ.update(moto.env())
        storage.s3_client.cache_clear()
        boto3.client("s3").create_bucket(Bucket="outputs")
        config = tuning_config(data, work / "spot", SHAPE, 0, "fp32")
        with_settings(config, max_steps=10_000)
        config.write_text(config.read_text().replace("spot_polling: never", "spot_polling: auto"))
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
        complete = float("nan")
        while process.poll() is None:
            if complete != complete and any(  # still NaN: not seen yet
                checkpoint.read_manifest(run, checkpoint.step_prefix(step))
                for step in checkpoint.published_steps(run)
            ):
                complete = time.monotonic() - noticed
            time.sleep(0.05)
        return process.returncode, complete, time.monotonic() - noticed


def main() -> None:
    import logging
    import warnings

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    work = REPO / "bench-output"
    work.mkdir(exist_ok=True)
    data = make_data(work, SHAPE.examples, 0, SHAPE.max_length - 40)
    size, seconds = publish(data, work)
    print(
        f"checkpoint publish to moto S3: {size:.0f} MB (adapter + optimizer state, LoRA r=448) "
        f"in {seconds:.2f} s (sha256 + upload, multipart above 64 MB)"
    )
    code, complete, exited = spot(data, work)
    print(
        f"spot notice (IMDSv2 polled every 5 s) -> complete checkpoint in S3: {complete:.1f} s; "
        f"-> trainer exit {code}: {exited:.1f} s (builtin:small-llama, {SHAPE.rows} rows of "
        f"{SHAPE.max_length} tokens per step, fp32)"
    )


if __name__ == "__main__":
    main()
