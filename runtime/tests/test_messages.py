"""The SNS message format (docs/contracts.md section 5), readable as an email."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuning_runtime import messages

# The cases the supervisor and the safety Lambda (test/safety-report.test.ts) render identically.
GOLDEN = json.loads(
    (Path(__file__).resolve().parents[2] / "testing" / "run-messages.golden.json").read_text()
)["cases"]

CTX = messages.Context(
    instance_id="i-0abc",
    region="eu-west-1",
    stack_name="LlmStack",
    run_id="run-1",
    output_uri="s3://outputs/runs/run-1",
    image_uri="123.dkr.ecr.eu-west-1.amazonaws.com/trainer:v3",
    idle_minutes=30,
    last_step=1200,
)


def facts(**changes: object) -> messages.Facts:
    base = {
        "run_id": "run-1",
        "status": "completed",
        "reason": "completed",
        "instance": "i-0abc (g5.xlarge, spot, eu-west-1a)",
        "duration_seconds": 3 * 3600 + 25 * 60,
        "cost_usd": 1.234,
        "model_uri": "s3://outputs/runs/run-1/final/",
        "logs_uri": "s3://outputs/runs/run-1/logs/",
        "next_step": "Download the model.",
    }
    return messages.Facts(**{**base, **changes})


@pytest.mark.parametrize("case", GOLDEN, ids=[case["name"] for case in GOLDEN])
def test_renders_the_shared_golden_case(case):
    given = case["facts"]
    rendered = messages.Facts(
        run_id=given["runId"],
        status=given["status"],
        reason=given["reason"],
        instance=given["instance"],
        duration_seconds=given["durationSeconds"],
        cost_usd=given["estimatedCostUsd"],
        model_uri=given["modelUri"],
        logs_uri=given["logsUri"],
        next_step=given["nextStep"],
        last_log_lines=given["lastLogLines"],
    )

    assert messages.subject(given["runId"], given["status"]) == case["subject"]
    assert messages.body(rendered) == case["body"]


def test_subject_names_run_and_status():
    assert messages.subject("run-1", "interrupted") == "tuning-lab run-1: interrupted"


def test_subject_is_at_most_100_characters():
    assert len(messages.subject("r" * 120, "stopped-by-safety")) == 100


def test_subject_rejects_an_unknown_status():
    with pytest.raises(ValueError, match="status must be one of"):
        messages.subject("run-1", "done")


def test_body_lists_the_contract_lines_in_order_then_the_next_step():
    body = messages.body(facts())

    lines = body.splitlines()
    assert [line.split(":")[0] for line in lines[:8]] == [
        "Run",
        "Status",
        "Reason",
        "Instance",
        "Duration",
        "Estimated cost",
        "Model",
        "Logs",
    ]
    assert lines[4] == "Duration: 3 h 25 min" and lines[5] == "Estimated cost: $1.23 (estimate)"
    assert lines[9:11] == ["Next step:", "Download the model."]


def test_body_ends_with_the_last_log_lines_of_a_failure():
    body = messages.body(facts(status="failed", last_log_lines=[f"line {n}" for n in range(50)]))

    assert body.rstrip().endswith("  line 49")
    assert "Last 20 log lines:" in body and "line 29" not in body


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "-"), (42, "42 s"), (125, "2 min 05 s"), (7260, "2 h 01 min")]
)
def test_duration_reads_naturally(seconds, text):
    assert messages.duration(seconds) == text


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        ("started", None, "sudo tmux attach -t training"),
        ("started", None, "npx tuning-lab status run-1 --watch --stack LlmStack"),
        ("resumed", None, "resumes from step 1200"),
        ("completed", "completed", "npx tuning-lab pull run-1 ./model --stack LlmStack"),
        ("completed", "completed", "npx cdk deploy LlmStack -c createInstance=false"),
        ("failed", "bad-input", "tuning-trainer validate --config"),
        ("failed", "trainer-failed", "resumes from the newest one"),
        ("failed", "image-pull-failed", "trainer:v3 could not be pulled"),
        ("failed", "final-model-missing", "final/manifest.json is missing"),
        ("failed", "supervisor-error", "host supervisor hit an unexpected error"),
        ("interrupted", "spot-interruption", "replacement that resumes from step 1200"),
        ("interrupted", "host-shutdown", "shut down or rebooted from outside"),
        ("stopped-by-safety", "idle", "idle for 30 minutes"),
        ("stopped-by-safety", "max-runtime", "reached maxRuntimeHours"),
        ("stopped-by-safety", "max-cost", "reached maxRunCostUsd"),
    ],
)
def test_next_step_says_what_to_do(status, reason, expected):
    assert expected in messages.next_step(status, reason, CTX)


def test_next_step_of_a_held_failure_says_how_to_connect():
    held = messages.Context(**{**CTX.__dict__, "debug_hold_minutes": 45})

    text = messages.next_step("failed", "trainer-failed", held)

    assert "stays up 45 minutes" in text and "aws ssm start-session --target i-0abc" in text


def test_operator_commands_name_the_stack_only_when_it_is_not_the_default():
    default = messages.Context(**{**CTX.__dict__, "stack_name": "TrainingStack"})

    assert messages.operator_command(default, "pull", "run-1") == "npx tuning-lab pull run-1"
    assert messages.operator_command(CTX, "pull", "run-1") == (
        "npx tuning-lab pull run-1 --stack LlmStack"
    )


def test_the_golden_completed_case_holds_the_supervisors_own_advice():
    case = next(c for c in GOLDEN if c["facts"]["status"] == "completed")
    ctx = messages.Context(
        **{**CTX.__dict__, "stack_name": "TrainingStack", "run_id": case["facts"]["runId"]}
    )

    assert case["facts"]["nextStep"] == messages.next_step("completed", "completed", ctx)
