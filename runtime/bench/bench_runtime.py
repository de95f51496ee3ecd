"""Instance runtime benchmark: how fast the host supervisor acts, end to end.

    .venv/bin/python runtime/bench/bench_runtime.py              # about 3 minutes on 2 cores
    .venv/bin/python runtime/bench/bench_runtime.py --repeat 3

Runs the supervisor as systemd does (``python -m tuning_runtime run``, the AWS CLI backend as on
the instance, production polling: IMDS every 5 s) with the REAL trainer on CPU standing in for
the container, against moto's server and the fake IMDSv2, and prints one markdown table:

- trainer exit -> shutdown request: the finalisation (logs to S3, ledger, SNS, capacity 0) after
  a completed run; the design bound is 60 s;
- spot notice -> complete checkpoint in S3: from the fake IMDS serving the notice to the
  checkpoint's manifest (written last) being readable, for builtin:tiny-llama (LoRA r=8, <1 MB)
  and builtin:small-llama with a LoRA r=448 adapter (~100 MB with its AdamW state); the design
  bound is the 2-minute spot window (the container's stop timeout is 110 s);
- spot notice -> shutdown request, for the same runs.

moto's S3 on 127.0.0.1 is faster than S3 from an instance; the venv's AWS CLI is the same v1 line
the AMI ships. Rerun rather than trust a copied figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "runtime"), str(REPO / "runtime" / "tests")]

import boto3  # noqa: E402
import yaml  # noqa: E402
from harness import (  # noqa: E402
    DATA_BUCKET,
    OUTPUTS_BUCKET,
    RUN_ID,
    create_cloud,
    install_fakes,
    progress_step,
    start_supervisor_process,
    wait_for,
)
from testing.moto_server import MotoServer  # noqa: E402

from tuning_runtime.ledger import parse_iso  # noqa: E402

TRAINER = shlex.join([sys.executable, "-m", "tuning_trainer"])
PRODUCTION_POLLING = ("--imds-poll-seconds", "5", "--sample-seconds", "30")


def run_config(model: str, lora_r: int, max_steps: int) -> dict:
    config = yaml.safe_load((REPO / "configs" / "tiny-llama-lora.yaml").read_text())
    del config["data"]["root"], config["data"]["eval"], config["training"]["eval_steps"]
    config["model"]["base_model"] = model
    config["lora"].update(r=lora_r, alpha=2 * lora_r)
    config["training"].update(max_steps=max_steps, save_steps=10_000, logging_steps=1)
    return config


def fresh_cloud(moto: MotoServer, root: Path, life_cycle: str):
    moto.reset()
    root.mkdir(parents=True)
    install_fakes(root, os.environ.__setitem__)
    cloud = create_cloud(life_cycle=life_cycle)
    for name in ("train.jsonl", "eval.jsonl"):
        source = REPO / "datasets" / "sample" / name
        boto3.client("s3").upload_file(str(source), DATA_BUCKET, f"datasets/sample/{name}")
    return cloud


def shutdown_at(root: Path) -> float:
    log = root / "shutdown.log"
    wait_for(log.exists, timeout=300, what="the shutdown request")
    return float(log.read_text().split()[0])


def trainer_exit_at(root: Path) -> float:
    """When the supervisor saw the trainer exit (its log has millisecond UTC timestamps)."""
    for line in (root / "supervisor.log").read_text().splitlines():
        if "trainer exited with" in line:
            stamp = line[:23].replace(" ", "T").replace(",", ".") + "Z"
            return parse_iso(stamp)
    raise AssertionError("no 'trainer exited' line in supervisor.log")


def checkpoint_published() -> tuple:
    """(seconds since the epoch, size in MB) once a checkpoint manifest is readable, else None."""
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=OUTPUTS_BUCKET, Prefix=f"runs/{RUN_ID}/checkpoints/")
    for item in listed.get("Contents", []):
        if item["Key"].endswith("/manifest.json"):
            seen = time.time()
            manifest = json.loads(
                s3.get_object(Bucket=OUTPUTS_BUCKET, Key=item["Key"])["Body"].read()
            )
            return seen, sum(entry["size"] for entry in manifest["files"]) / 1e6
    return ()


def completed_run(moto: MotoServer, root: Path) -> dict:
    cloud = fresh_cloud(moto, root, "on-demand")
    cloud.put_settings(runConfig=run_config("builtin:tiny-llama", 8, max_steps=4))
    process = start_supervisor_process(cloud, root, TRAINER, *PRODUCTION_POLLING)
    process.wait(timeout=600)
    cloud.imds.stop()
    return {"exit_to_shutdown": shutdown_at(root) - trainer_exit_at(root)}


def interrupted_run(moto: MotoServer, root: Path, model: str, lora_r: int) -> dict:
    cloud = fresh_cloud(moto, root, "spot")
    cloud.put_settings(runConfig=run_config(model, lora_r, max_steps=10_000))
    process = start_supervisor_process(cloud, root, TRAINER, *PRODUCTION_POLLING)
    wait_for(lambda: progress_step(root) >= 2, timeout=600, what="training steps")
    noticed = time.time()
    cloud.imds.interrupt()
    published, size_mb = wait_for(checkpoint_published, timeout=300, what="the checkpoint")
    process.wait(timeout=600)
    cloud.imds.stop()
    return {
        "notice_to_checkpoint": published - noticed,
        "notice_to_shutdown": shutdown_at(root) - noticed,
        "checkpoint_mb": size_mb,
    }


def row(what: str, values: list, bound: str) -> str:
    cells = f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"
    return f"| {what} | {len(values)} | {cells} | {bound} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results: dict = {"completed": [], "tiny": [], "large": []}
    with MotoServer() as moto, tempfile.TemporaryDirectory() as tmp:
        os.environ.update(moto.env())
        os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        for index in range(args.repeat):
            base = Path(tmp) / str(index)
            results["completed"].append(completed_run(moto, base / "completed"))
            results["tiny"].append(interrupted_run(moto, base / "tiny", "builtin:tiny-llama", 8))
            results["large"].append(
                interrupted_run(moto, base / "large", "builtin:small-llama", 448)
            )
    tiny_mb = results["tiny"][0]["checkpoint_mb"]
    large_mb = results["large"][0]["checkpoint_mb"]
    print("| measurement | runs | seconds min / median / max | bound |")
    print("| --- | --- | --- | --- |")
    exits = [r["exit_to_shutdown"] for r in results["completed"]]
    print(row("trainer exit -> shutdown request (completed run)", exits, "60 s"))
    for key, mb in (("tiny", tiny_mb), ("large", large_mb)):
        label = f"{mb:.1f} MB checkpoint"
        checkpoints = [r["notice_to_checkpoint"] for r in results[key]]
        shutdowns = [r["notice_to_shutdown"] for r in results[key]]
        print(row(f"spot notice -> complete checkpoint in S3 ({label})", checkpoints, "110 s"))
        print(row(f"spot notice -> shutdown request ({label})", shutdowns, "120 s"))


if __name__ == "__main__":
    main()
