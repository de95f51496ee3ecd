"""Runs in an outputs bucket, written by the instance runtime's own code, for the command line's
tests and measurements (test/cli/).

    python -m testing.run_fixtures --bucket B [--extra N]   # AWS_ENDPOINT_URL points at moto

Four runs as a stack accumulates them: ``run-fin00001`` finished, ``run-live0001`` running with
published progress, ``run-resu0001`` interrupted by a spot notice and resumed on a second
instance to the end, ``run-fail0001`` failed after its retries; ``--extra N`` adds N more
finished runs (the 50-run measurement). The ledger goes through ``LedgerStore`` and the ledger
transitions the supervisor uses, progress and metrics through ``ProgressPublisher`` fed with the
trainer's own metric lines, messages through ``messages.record``: the documents are the ones a
real run writes, at fixed times. Prints a JSON summary on stdout (what the tests compare with).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import tempfile
from pathlib import Path

RUNTIME_DIR = Path(__file__).resolve().parents[1] / "runtime"
if str(RUNTIME_DIR) not in sys.path:
    sys.path.insert(0, str(RUNTIME_DIR))

from tuning_runtime import contract, ledger, messages  # noqa: E402
from tuning_runtime.aws import Boto3Aws  # noqa: E402
from tuning_runtime.imds import Identity  # noqa: E402
from tuning_runtime.progress import ProgressPublisher  # noqa: E402

T0 = 1_796_032_800.0  # 2026-11-30T10:00:00Z
USD_PER_HOUR = 1.006
MAX_STEPS = 60
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/trainer@sha256:" + "ab" * 32
CONFIG = {
    "model": {"base_model": "builtin:tiny-llama", "method": "lora"},
    "data": {"train": "datasets/sample/train.jsonl", "eval": "datasets/sample/eval.jsonl"},
    "training": {"max_steps": MAX_STEPS, "logging_steps": 10, "eval_steps": 30},
}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class RunWriter:
    """One run's objects, written the way the supervisor writes them."""

    def __init__(self, aws: Boto3Aws, bucket: str, run_id: str, started: float, work: Path):
        self.aws = aws
        self.bucket = bucket
        self.run_id = run_id
        self.output_uri = f"s3://{bucket}/runs/{run_id}"
        self.store = ledger.LedgerStore(aws, self.output_uri)
        self.clock = Clock(started)
        self.work = work / run_id
        self.work.mkdir(parents=True)
        self.publisher: ProgressPublisher | None = None
        self.put(f"runs/{run_id}/config.yaml", json.dumps(CONFIG, indent=2).encode() + b"\n")

    def put(self, key: str, body: bytes) -> None:
        self.aws.put_object(f"s3://{self.bucket}/{key}", body, "application/octet-stream")

    def start_instance(self, who: Identity) -> str:
        now = self.clock()
        event = {}

        def begin(doc):
            doc, event["value"] = ledger.begin_instance(doc, self.run_id, who, now)
            doc["imageUri"] = doc.get("imageUri") or IMAGE
            return ledger.begin_attempt(doc, who, USD_PER_HOUR, now)

        self.store.update(begin)
        self.message(event["value"], None, who)
        self.publisher = ProgressPublisher(
            self.aws,
            self.output_uri,
            self.run_id,
            who.instance_id,
            str(self.work / f"progress-{who.instance_id}.json"),
            logging_steps=10,
            interval_seconds=30,
            clock=self.clock,
        )
        self.publisher.load_history()
        self.publisher.new_attempt()
        return event["value"]

    def train(self, first: int, last: int, seconds_per_step: float = 2.0) -> None:
        """The trainer's progress file and metric lines for steps first..last."""
        for step in range(first, last + 1):
            self.clock.now += seconds_per_step
            loss = 2.5 * 0.97**step
            (self.work / f"progress-{self.publisher.instance_id}.json").write_text(
                json.dumps({"step": step, "max_steps": MAX_STEPS, "loss": round(loss, 4)})
            )
            if step % 10 == 0:
                line = {"_aws": {}, "RunId": self.run_id, "step": step, "loss": loss}
                line.update(learning_rate=2e-4 * (1 - step / MAX_STEPS), tokens_per_second=1800.0)
                self.publisher.observe_line(json.dumps(line))
                if step % 30 == 0:
                    eval_line = {"_aws": {}, "RunId": self.run_id, "step": step}
                    self.publisher.observe_line(json.dumps({**eval_line, "eval_loss": loss + 0.1}))
                self.publisher.publish_if_due()
            if step == first:
                self.publisher.publish_if_due()  # the attempt's first step, for the ETA

    def checkpoint(self, step: int) -> None:
        self.folder(f"runs/{self.run_id}/checkpoints/step-{step}/", "checkpoint", step, 4096)

    def folder(self, prefix: str, kind: str, step: int, size: int) -> list:
        rng = random.Random(f"{self.run_id}/{prefix}")
        files = {
            "adapter_model.safetensors": rng.randbytes(size),
            "adapter_config.json": json.dumps({"r": 8, "base": CONFIG["model"]}).encode(),
            "tokenizer/tokenizer.json": json.dumps({"vocab": list(range(50))}).encode(),
        }
        entries = []
        for path, body in files.items():
            self.put(prefix + path, body)
            entries.append(
                {"path": path, "size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
            )
        manifest = {
            "schemaVersion": 1,
            "kind": kind,
            "step": step,
            "createdAt": ledger.iso(self.clock()),
            "files": entries,
        }
        self.put(prefix + contract.MANIFEST_NAME, json.dumps(manifest, indent=2).encode())
        return entries

    def end(self, who: Identity, status: str, reason: str, exit_code: int, **fields) -> None:
        self.publisher.stop(publish=True)
        now = self.clock()
        logs_uri = f"{self.output_uri}/{contract.LOGS_DIR}/"
        log_lines = [f"[tuning-supervisor] run {self.run_id} on {who.instance_id}"]
        log_lines += [f"step {s}/{MAX_STEPS} loss {2.5 * 0.97**s:.4f}" for s in range(10, 61, 10)]
        self.put(
            f"runs/{self.run_id}/logs/{who.instance_id}/training.log",
            ("\n".join(log_lines) + "\n").encode(),
        )

        def finish(doc):
            ledger.end_attempt(doc, who.instance_id, exit_code, now)
            if status == contract.INTERRUPTED:
                ledger.add_interruption(doc, who.instance_id, now, "terminate")
            ledger.note_step(doc, self.publisher.published_step)
            doc, _ = ledger.finish(doc, status, reason, now, logsUri=logs_uri, **fields)
            return ledger.recompute_totals(doc, lambda a: a.get("usdPerHour"), who.instance_id, now)

        doc = self.store.update(finish)
        self.message(status, reason, who, doc, fields.get("lastLogLines") or [])

    def message(self, status, reason, who: Identity, doc=None, last_lines=()) -> None:
        doc = doc or self.store.read() or {}
        facts = messages.Facts(
            run_id=self.run_id,
            status=status,
            reason=reason,
            instance=f"{who.instance_id} ({who.instance_type}, {who.market})",
            duration_seconds=self.clock() - ledger.parse_iso(doc["startedAt"])
            if doc.get("startedAt")
            else None,
            cost_usd=doc.get("estimatedCostUsd"),
            model_uri=doc.get("finalModelUri"),
            logs_uri=doc.get("logsUri"),
            next_step="(fixture)",
            last_log_lines=list(last_lines),
        )
        messages.record(self.aws, self.output_uri, facts, who.instance_id, self.clock())


def instance(n: int, market: str = "spot") -> Identity:
    return Identity(f"i-{n:017x}", "g5.xlarge", "us-east-1a", market)


def write_finished(aws, bucket, run_id, started, work, n, model_bytes=200_000) -> dict:
    run = RunWriter(aws, bucket, run_id, started, work)
    who = instance(n)
    run.start_instance(who)
    run.train(1, MAX_STEPS)
    run.checkpoint(30)
    files = run.folder(f"runs/{run_id}/final/", "final", MAX_STEPS, model_bytes)
    final_uri = f"{run.output_uri}/final/"
    run.end(who, contract.COMPLETED, contract.REASON_COMPLETED, 0, finalModelUri=final_uri)
    return {"runId": run_id, "instanceId": who.instance_id, "finalFiles": files}


def write_all(aws: Boto3Aws, bucket: str, extra: int, work: Path) -> dict:
    summary: dict = {"bucket": bucket, "runs": {}}
    summary["runs"]["finished"] = write_finished(aws, bucket, "run-fin00001", T0, work, 1)

    resumed = RunWriter(aws, bucket, "run-resu0001", T0 + 3600, work)
    first, second = instance(2), instance(3)
    resumed.start_instance(first)
    resumed.train(1, 35)
    resumed.checkpoint(30)
    resumed.end(first, contract.INTERRUPTED, contract.REASON_SPOT_INTERRUPTION, 75)
    resumed.clock.now += 120
    resumed.start_instance(second)
    resumed.train(31, MAX_STEPS)
    resumed.folder("runs/run-resu0001/final/", "final", MAX_STEPS, 50_000)
    resumed.end(
        second,
        contract.COMPLETED,
        contract.REASON_COMPLETED,
        0,
        finalModelUri=f"{resumed.output_uri}/final/",
    )
    summary["runs"]["resumed"] = {
        "runId": "run-resu0001",
        "instances": [first.instance_id, second.instance_id],
    }

    failed = RunWriter(aws, bucket, "run-fail0001", T0 + 7200, work)
    who = instance(4, "on-demand")
    failed.start_instance(who)
    failed.train(1, 12)
    lines = ["step 12/60 loss 1.74", "RuntimeError: CUDA error: an illegal memory access"]
    failed.end(who, contract.FAILED, contract.REASON_TRAINER_FAILED, 1, lastLogLines=lines)
    summary["runs"]["failed"] = {"runId": "run-fail0001", "instanceId": who.instance_id}

    live = RunWriter(aws, bucket, "run-live0001", T0 + 10800, work)
    who = instance(5)
    live.start_instance(who)
    live.train(1, 40)
    live.publisher.stop(publish=True)
    summary["runs"]["live"] = {"runId": "run-live0001", "instanceId": who.instance_id}

    summary["extra"] = [
        write_finished(aws, bucket, f"run-x{i:07d}", T0 - 3600 * (i + 1), work, 100 + i, 1024)[
            "runId"
        ]
        for i in range(extra)
    ]
    return summary


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--extra", type=int, default=0, help="more finished runs")
    args = parser.parse_args(argv)
    aws = Boto3Aws(os.environ.get("AWS_REGION", "us-east-1"))
    with tempfile.TemporaryDirectory() as work:
        summary = write_all(aws, args.bucket, args.extra, Path(work))
    json.dump(summary, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
