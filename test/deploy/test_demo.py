"""`make demo` in a reduced form: the same pipeline (scripts/demo.py's run_demo) with a 4-step run.

    .venv/bin/python -m pytest -q test/deploy/test_demo.py      # also: make test-deploy

The stack is deployed into moto with the real CDK CLI, the host supervisor runs the real trainer
CLI, and the end state is read back here through boto3 on the test's own terms: its own SQS
subscriber on the stack's topic, the ledger and the final model's manifest from the outputs
bucket, the group's capacity before `cdk destroy`, the stack after it. The demo runs with
--keep-emulator and is released by a SIGTERM, as a user's `kill` would.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from scripts import demo
from testing.emulated_instance import descendants
from testing.emulated_stack import ROOT, Deployment, EmulatedAws
from testing.sns_inbox import SnsInbox

pytestmark = [
    pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning"),
    pytest.mark.filterwarnings("ignore:Exception\\(DependencyViolationError\\):UserWarning"),
]

STEPS = 4
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Observed:
    """What the test itself saw in the emulated account, and what the demo returned."""

    result: demo.DemoResult | None = None
    printed: list[str] = field(default_factory=list)
    inbox: SnsInbox | None = None
    messages: list[dict] = field(default_factory=list)
    ledger: dict = field(default_factory=dict)
    final_files: dict[str, bytes] = field(default_factory=dict)
    desired_capacity: int | None = None
    stack_status: str | None = "not read"
    buckets: set[str] = field(default_factory=set)
    outputs: dict[str, str] = field(default_factory=dict)
    processes_left: list[str] = field(default_factory=list)
    output_dir: Path | None = None


def subscribe_own_queue(deployment: Deployment, observed: Observed) -> None:
    observed.inbox = SnsInbox.subscribe(
        deployment.client("sns"),
        deployment.client("sqs"),
        deployment.outputs["AlertsTopicArn"],
        "test-demo-subscriber",
    )
    observed.outputs = dict(deployment.outputs)


def read_end_state(deployment: Deployment, observed: Observed) -> None:
    s3 = deployment.client("s3")
    observed.messages = observed.inbox.read()
    bucket = deployment.outputs["OutputsBucketName"]
    prefix = f"runs/{deployment.outputs['RunId']}/"
    observed.ledger = json.loads(
        s3.get_object(Bucket=bucket, Key=prefix + "ledger.json")["Body"].read()
    )
    for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "final/")["Contents"]:
        name = item["Key"][len(prefix + "final/") :]
        observed.final_files[name] = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    observed.desired_capacity = deployment.group()["DesiredCapacity"]


def sigterm_once_kept(printed: list[str]) -> threading.Thread:
    """Sends this process SIGTERM once the kept demo says how to end it."""

    def send() -> None:
        deadline = time.monotonic() + 600
        while not any(line.startswith("Press Ctrl-C here") for line in printed):
            if time.monotonic() > deadline:
                return
            time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def leftover_processes() -> list[str]:
    """Processes below this one that belong to the demo (the supervisor, the trainer)."""
    left = []
    for pid in descendants(os.getpid()):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "tuning_runtime" in command or "tuning_trainer" in command or "cdk" in command:
            left.append(command)
    return left


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Observed:
    seen = Observed()
    hooks = demo.Hooks(
        deployed=lambda deployment: subscribe_own_queue(deployment, seen),
        before_destroy=lambda deployment: read_end_state(deployment, seen),
    )
    seen.output_dir = tmp_path_factory.mktemp("demo-output")
    options = demo.Options(steps=STEPS, output_dir=seen.output_dir, keep_emulator=True)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    demo._stop_on_sigterm()  # as main() installs it
    try:
        with EmulatedAws() as emulator:
            sigterm_once_kept(seen.printed)
            seen.result = demo.run_demo(options, seen.printed.append, emulator, hooks)
            seen.stack_status = emulator.stack_status()
            seen.buckets = {b["Name"] for b in emulator.client("s3").list_buckets()["Buckets"]}
            seen.processes_left = leftover_processes()
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return seen


def test_the_ledger_says_completed_at_the_last_step(observed: Observed) -> None:
    ledger = observed.ledger
    assert (ledger["status"], ledger["reason"], ledger["lastStep"]) == (
        "completed",
        "completed",
        STEPS,
    )
    assert [attempt["exitCode"] for attempt in ledger["attempts"]] == [0]


def test_final_model_matches_its_manifest(observed: Observed) -> None:
    manifest = json.loads(observed.final_files["manifest.json"])
    assert (manifest["kind"], manifest["step"]) == ("final", STEPS)
    listed = {entry["path"]: entry for entry in manifest["files"]}
    assert "adapter_model.safetensors" in listed
    for path, entry in listed.items():
        body = observed.final_files[path]
        assert (len(body), hashlib.sha256(body).hexdigest()) == (entry["size"], entry["sha256"])


def test_a_subscriber_receives_started_then_completed(observed: Observed) -> None:
    run_id = observed.outputs["RunId"]
    received = [(m["subject"], m["status"]) for m in observed.messages]
    assert received == [
        (f"tuning-lab {run_id}: started", "started"),
        (f"tuning-lab {run_id}: completed", "completed"),
    ]


def test_the_demo_shows_the_messages_the_run_sent(observed: Observed) -> None:
    assert [m["status"] for m in observed.result.messages] == ["started", "completed"]
    assert f"  tuning-lab {observed.outputs['RunId']}: completed    [status=completed]" in (
        observed.printed
    )


def test_the_group_is_back_at_capacity_zero(observed: Observed) -> None:
    assert observed.desired_capacity == 0
    assert observed.result.desired_capacity == 0


def test_the_instance_requested_its_shutdown_once(observed: Observed) -> None:
    assert [request["args"] for request in observed.result.shutdown_requests] == [["-h", "now"]]


def test_training_progress_is_shown_while_it_trains(observed: Observed) -> None:
    steps = [line for line in observed.printed if line.startswith("  trainer    | step ")]
    assert any(f"step {STEPS}/{STEPS} loss" in line for line in steps), steps


def test_a_loss_curve_png_is_written(observed: Observed) -> None:
    png = observed.result.loss_curve.read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    assert width >= 400 and height >= 300


def test_a_kept_demo_destroys_the_stack_on_sigterm(observed: Observed) -> None:
    kept_at = next(i for i, line in enumerate(observed.printed) if line.startswith("Press Ctrl-C"))
    assert "(SIGTERM)" in observed.printed[kept_at]
    assert any("== destroy:" in line for line in observed.printed[kept_at:])
    assert observed.stack_status is None


def test_the_stack_is_destroyed_and_the_data_kept(observed: Observed) -> None:
    assert observed.stack_status is None
    assert observed.result.stack_status_after_destroy is None
    assert observed.outputs["OutputsBucketName"] in observed.buckets  # RemovalPolicy.RETAIN


def test_nothing_of_the_run_is_left_running(observed: Observed) -> None:
    assert observed.processes_left == []


def run_demo_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_busy_port_stops_the_demo_with_a_message_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        done = run_demo_cli("--port", str(port), "--steps", "2")

    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stdout
    assert "choose another one" in done.stdout


def test_too_few_steps_for_a_spot_interruption_are_refused() -> None:
    done = run_demo_cli("--spot-interrupt", "--steps", "5")

    assert done.returncode == 2
    assert "--steps must be at least 20 with --spot-interrupt" in done.stderr
    assert "got 5" in done.stderr


def test_the_run_went_under_the_stacks_own_roles_with_nothing_refused(observed: Observed) -> None:
    assert any(line.startswith("IAM enforced from here on") for line in observed.printed)
    instance_id = observed.ledger["attempts"][0]["instanceId"]
    log = (observed.output_dir / "logs" / instance_id / "tuning-supervisor.log").read_text()
    refused = [line for line in log.splitlines() if "failed" in line or "AccessDenied" in line]
    assert refused == []  # best-effort steps (spot price, messages) would only log a denial
    assert "@sha256:" in observed.ledger["imageUri"]  # pinned: ecr:DescribeImages was allowed


def test_instance_logs_are_kept_under_their_names_on_the_instance(observed: Observed) -> None:
    instance_id = observed.ledger["attempts"][0]["instanceId"]
    kept = observed.output_dir / "logs" / instance_id

    assert sorted(p.name for p in kept.iterdir()) == ["training.log", "tuning-supervisor.log"]
    assert f"step {STEPS}/{STEPS}" in (kept / "training.log").read_text()


def test_doctor_runs_first_and_the_quota_it_asks_for_is_raised(observed: Observed) -> None:
    doctor = observed.result.doctor_output
    assert "PASS  credentials" in doctor and "PASS  CDK bootstrap" in doctor
    assert "FAIL  quota" in doctor and "request-service-quota-increase" in doctor
    assert "ESTIMATE g5.xlarge" in doctor
    assert observed.result.quota_raised
    first_doctor = observed.printed.index(
        next(line for line in observed.printed if line.startswith("$ npx tuning-lab doctor"))
    )
    assert first_doctor < observed.printed.index(
        next(line for line in observed.printed if "== deploy:" in line)
    )


def test_the_operator_commands_show_the_run_and_succeed(observed: Observed) -> None:
    codes = observed.result.operator_exit_codes
    assert codes == {name: 0 for name in ("runs", "status", "messages", "logs", "pull", "cost",
                                          "sweep")}  # fmt: skip
    run_id = observed.outputs["RunId"]
    shown = "\n".join(observed.printed)
    assert f"$ npx tuning-lab status {run_id}" in shown
    assert "$ npx tuning-lab cost" in shown and "$ npx tuning-lab sweep" in shown
    assert (observed.output_dir / "model" / "tuning-lab.json").is_file()
