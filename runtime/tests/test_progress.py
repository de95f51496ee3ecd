"""What the supervisor publishes about a run for the operator (docs/contracts.md sections 11 and
12): the trainer's progress and metrics at a bounded rate, and every message it sends, kept in
the run's prefix; against moto through boto3.

    .venv/bin/python -m pytest -q runtime/tests/test_progress.py
"""

from __future__ import annotations

import dataclasses
import json

import boto3
from harness import (
    FAST,
    OUTPUTS_BUCKET,
    RUN_ID,
    Background,
    build_supervisor,
    wait_for,
)

from tuning_runtime import contract
from tuning_runtime.aws import Boto3Aws
from tuning_runtime.progress import MAX_POINTS, ProgressPublisher, parse_metric_line

PREFIX = f"runs/{RUN_ID}"


def emf(step: int, **metrics: float) -> str:
    return json.dumps({"_aws": {"Timestamp": 1}, "RunId": RUN_ID, "step": step, **metrics})


def read(key: str) -> dict | None:
    try:
        body = boto3.client("s3").get_object(Bucket=OUTPUTS_BUCKET, Key=f"{PREFIX}/{key}")["Body"]
    except boto3.client("s3").exceptions.NoSuchKey:
        return None
    return json.loads(body.read())


def message_keys() -> list:
    listed = boto3.client("s3").list_objects_v2(Bucket=OUTPUTS_BUCKET, Prefix=f"{PREFIX}/messages/")
    return [item["Key"] for item in listed.get("Contents", [])]


class Clock:
    def __init__(self) -> None:
        self.now = 1_796_032_800.0

    def __call__(self) -> float:
        return self.now


def publisher(tmp_path, clock=None) -> ProgressPublisher:
    return ProgressPublisher(
        Boto3Aws("us-east-1"),
        f"s3://{OUTPUTS_BUCKET}/{PREFIX}",
        RUN_ID,
        "i-0123456789abcdef0",
        str(tmp_path / "progress.json"),
        logging_steps=10,
        clock=clock or Clock(),
    )


def write_progress(tmp_path, step: int, loss: float | None = None) -> None:
    progress = {"step": step, "max_steps": 100, "loss": loss, "updated_at": 0}
    (tmp_path / "progress.json").write_text(json.dumps(progress))


def test_metric_lines_are_read_as_untrusted_input():
    assert parse_metric_line(emf(10, loss=1.5, tokens_per_second=900.0)) == (
        10,
        {"loss": 1.5, "tokensPerSecond": 900.0},
    )
    assert parse_metric_line(emf(30, eval_loss=1.2)) == (30, {"evalLoss": 1.2})
    refused = [
        "step 10/100 loss 1.5",  # a human line
        '{"_aws": {}, "step": "10", "loss": 1.5}',  # step not an integer
        '{"_aws": {}, "step": true, "loss": 1.5}',
        '{"_aws": {}, "step": 10, "loss": NaN}',  # no finite metric
        '{"_aws": {}, "step": 10, "loss": "1.5"}',
        '{"_aws": {}, "step": -1, "loss": 1.5}',
        '{"_aws": {}, "step": 10, "loss": 1.5, "pad": "' + "x" * 70_000 + '"}',
        '{"_aws": [',
    ]
    assert [parse_metric_line(line) for line in refused] == [None] * len(refused)


def test_progress_is_written_once_every_logging_steps_window(cloud, tmp_path):
    clock, published = Clock(), publisher(tmp_path)
    published.clock = clock
    written = []
    for step in (1, 5, 9, 11, 12, 20, 21, 31):
        clock.now += 30  # each tick of the publisher's thread
        write_progress(tmp_path, step, loss=2.0 / step)
        if step % 10 == 1:
            published.observe_line(emf(step, loss=2.0 / step, learning_rate=1e-4))
        if published.publish_if_due():
            written.append(step)

    assert written == [1, 11, 21, 31]  # not 5, 9, 12 or 20: fewer than 10 steps since the last
    progress = read("progress.json")
    assert progress == {
        "schemaVersion": 1,
        "runId": RUN_ID,
        "instanceId": "i-0123456789abcdef0",
        "step": 31,
        "maxSteps": 100,
        "loss": 2.0 / 31,
        "evalLoss": None,
        "learningRate": 1e-4,
        "tokensPerSecond": None,
        "attemptFirstStep": 1,
        "attemptFirstStepAt": "2026-11-30T10:00:30Z",
        "updatedAt": "2026-11-30T10:04:00Z",
    }
    assert [p["step"] for p in read("metrics.json")["points"]] == [1, 11, 21, 31]


def test_the_trainers_exit_publishes_what_is_new_once(cloud, tmp_path):
    published = publisher(tmp_path)
    write_progress(tmp_path, 3)
    assert published.publish_if_due()
    write_progress(tmp_path, 7)  # fewer than logging_steps: not yet...

    assert not published.publish_if_due()
    published.stop(publish=True)  # ...but the trainer exited

    assert read("progress.json")["step"] == 7
    assert not published.publish_if_due(force=True)  # nothing new


def test_a_resumed_run_continues_the_history_and_replaces_replayed_steps(cloud, tmp_path):
    first = publisher(tmp_path)
    for step in (10, 20, 30, 40):
        first.observe_line(emf(step, loss=1.0 / step))
        if step == 30:
            first.observe_line(emf(30, eval_loss=0.5))  # the eval follows its step's log
    write_progress(tmp_path, 40)
    first.publish_if_due(force=True)

    second = publisher(tmp_path)  # a replacement, resuming from the checkpoint of step 30
    second.load_history()
    second.observe_line(emf(40, loss=0.0125))
    write_progress(tmp_path, 40)
    second.publish_if_due(force=True)

    points = read("metrics.json")["points"]
    assert [(p["step"], p.get("loss"), p.get("evalLoss")) for p in points] == [
        (10, 0.1, None),
        (20, 0.05, None),
        (30, 1.0 / 30, 0.5),
        (40, 0.0125, None),
    ]


def test_a_long_run_keeps_a_bounded_history_with_every_eval_point(cloud, tmp_path):
    published = publisher(tmp_path)
    for step in range(1, 3 * MAX_POINTS):
        published.observe_line(emf(step, loss=1.0))
        if step % 500 == 0:
            published.observe_line(emf(step, eval_loss=1.0))
    write_progress(tmp_path, 3 * MAX_POINTS - 1)
    published.publish_if_due(force=True)

    points = read("metrics.json")["points"]
    assert len(points) <= MAX_POINTS
    assert [p["step"] for p in points if "evalLoss" in p] == list(range(500, 3 * MAX_POINTS, 500))
    assert points[-1]["step"] == 3 * MAX_POINTS - 1


def test_a_run_publishes_its_progress_while_training_and_at_the_end(
    cloud, fakes, tmp_path, monkeypatch
):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "train-40")
    config = {"model": {"base_model": "builtin:tiny-llama"}, "training": {"logging_steps": 10}}
    cloud.put_settings(runConfig=config)
    timings = dataclasses.replace(FAST, progress_seconds=0.5)
    background = Background(build_supervisor(cloud, tmp_path, timings=timings))

    live = wait_for(lambda: (read("progress.json") or {}).get("step"), timeout=20)
    ledger_then = cloud.ledger()
    assert background.join(timeout=60) == 0

    assert live is not None and ledger_then["status"] == contract.RUNNING
    final = read("progress.json")
    assert (final["step"], final["maxSteps"], final["instanceId"]) == (40, 1000, cloud.instance_id)
    assert final["tokensPerSecond"] == 1000.0 and final["loss"] == 2.0 / 40
    assert [p["step"] for p in read("metrics.json")["points"]] == [10, 20, 30, 40]


def test_every_message_is_kept_in_the_run_as_sent(cloud, fakes, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "complete")
    cloud.put_settings()

    assert build_supervisor(cloud, tmp_path).run() == 0

    keys = message_keys()
    assert [key.rsplit("-", 1)[-1] for key in keys] == ["started.json", "completed.json"]
    assert all(f"-{cloud.instance_id}-" in key for key in keys)
    records = [read(key.removeprefix(f"{PREFIX}/")) for key in keys]
    sent = cloud.messages()
    assert [(r["subject"], r["body"]) for r in records] == [(m["subject"], m["body"]) for m in sent]
    assert records[1]["reason"] == "completed" and records[1]["source"] == cloud.instance_id
