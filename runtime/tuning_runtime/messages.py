"""SNS messages about a run, in the one format every sender uses (docs/contracts.md section 5).

The subject carries the run id and status, the attributes allow filtering, and the body reads as
an email: the facts, then what to do next (docs/runbook.md explains each message).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from . import contract

LOG_LINES_IN_MESSAGE = 20


@dataclass(frozen=True)
class Facts:
    run_id: str
    status: str
    reason: str | None
    instance: str
    duration_seconds: float | None
    cost_usd: float | None
    model_uri: str | None
    logs_uri: str | None
    next_step: str
    last_log_lines: list = field(default_factory=list)


def subject(run_id: str, status: str) -> str:
    if status not in contract.MESSAGE_STATUSES:
        raise ValueError(f"status must be one of {contract.MESSAGE_STATUSES}; got '{status}'")
    text = f"tuning-lab {run_id}: {status}"
    return text[: contract.SUBJECT_MAX_CHARS]


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def body(facts: Facts) -> str:
    cost = "-" if facts.cost_usd is None else f"${facts.cost_usd:.2f} (estimate)"
    lines = [
        f"Run: {facts.run_id}",
        f"Status: {facts.status}",
        f"Reason: {facts.reason or '-'}",
        f"Instance: {facts.instance}",
        f"Duration: {duration(facts.duration_seconds)}",
        f"Estimated cost: {cost}",
        f"Model: {facts.model_uri or '-'}",
        f"Logs: {facts.logs_uri or '-'}",
        "",
        "Next step:",
        facts.next_step,
    ]
    tail = facts.last_log_lines[-LOG_LINES_IN_MESSAGE:]
    if tail:
        lines += ["", f"Last {len(tail)} log lines:", *(f"  {line}" for line in tail)]
    return "\n".join(lines) + "\n"


def publish(aws: object, topic_arn: str, facts: Facts) -> None:
    aws.call(
        "sns",
        "Publish",
        {
            "TopicArn": topic_arn,
            "Subject": subject(facts.run_id, facts.status),
            "Message": body(facts),
            "MessageAttributes": {
                contract.ATTRIBUTE_RUN_ID: {"DataType": "String", "StringValue": facts.run_id},
                contract.ATTRIBUTE_STATUS: {"DataType": "String", "StringValue": facts.status},
            },
        },
    )


def record(aws: object, output_uri: str, facts: Facts, source: str, sent_at: float) -> str:
    """Keep the message in the run's messages/ folder (contracts section 12), so it can be read
    without email (``npx tuning-lab messages``); returns its URI."""
    name = contract.message_name(sent_at, source, facts.status)
    uri = f"{output_uri.rstrip('/')}/{contract.MESSAGES_DIR}/{name}"
    document = {
        "schemaVersion": contract.SCHEMA_VERSION,
        "runId": facts.run_id,
        "status": facts.status,
        "reason": facts.reason,
        "source": source,
        "sentAt": _iso_millis(sent_at),
        "subject": subject(facts.run_id, facts.status),
        "body": body(facts),
    }
    aws.put_object(uri, (json.dumps(document, indent=2) + "\n").encode(), "application/json")
    return uri


def _iso_millis(timestamp: float) -> str:
    millis = round(timestamp * 1000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(millis // 1000))
    return f"{stamp}.{millis % 1000:03d}Z"


@dataclass(frozen=True)
class Context:
    """What the next-step advice refers to."""

    instance_id: str
    region: str
    stack_name: str
    run_id: str
    output_uri: str
    image_uri: str
    idle_minutes: float
    last_step: int | None = None
    debug_hold_minutes: float = 0


def operator_command(ctx: Context, *words: str) -> str:
    """The operator's command line (`npx tuning-lab`, cli/) doing ``words`` for this stack."""
    stack = [] if ctx.stack_name == contract.DEFAULT_STACK_NAME else ["--stack", ctx.stack_name]
    return " ".join(["npx tuning-lab", *words, *stack])


def next_step(status: str, reason: str | None, ctx: Context) -> str:
    connect = f"aws ssm start-session --target {ctx.instance_id} --region {ctx.region}"
    watch = (
        f"To watch it: {connect}, then `sudo tmux attach -t training` (detach: Ctrl-b d). "
        f"From your laptop: `{operator_command(ctx, 'status', ctx.run_id, '--watch')}`."
    )
    kept = "Checkpoints are kept: a redeploy with the same runId resumes from the newest one."
    step = f"step {ctx.last_step}" if ctx.last_step else "its newest complete checkpoint"
    advice = {
        (contract.STARTED, None): f"Nothing to do. {watch}",
        (contract.RESUMED, None): f"Nothing to do: the trainer resumes from {step}. {watch}",
        (contract.COMPLETED, contract.REASON_COMPLETED): (
            "Download the model, every file checked against its manifest: "
            f"`{operator_command(ctx, 'pull', ctx.run_id, './model')}`. "
            "The instance terminates itself and its group is set to 0, so nothing else bills. "
            f"Remove the GPU resources: npx cdk deploy {ctx.stack_name} -c createInstance=false"
        ),
        (contract.FAILED, contract.REASON_BAD_INPUT): (
            "The trainer rejected the config or the data (exit 2, never retried). Read the log "
            "lines below, fix the input, check it with `tuning-trainer validate --config <file>`, "
            "then redeploy."
        ),
        (contract.FAILED, contract.REASON_TRAINER_FAILED): (
            f"The trainer failed and its retries are used up. Read the log lines below. {kept}"
        ),
        (contract.FAILED, contract.REASON_IMAGE_PULL_FAILED): (
            f"The image {ctx.image_uri} could not be pulled. Check that the build-and-push "
            "workflow pushed that tag (aws ecr describe-images), then redeploy."
        ),
        (contract.FAILED, contract.REASON_FINAL_MODEL_MISSING): (
            f"The trainer exited 0 but {ctx.output_uri}/final/manifest.json is missing, so there "
            f"is no usable final model. Read the logs. {kept}"
        ),
        (contract.FAILED, contract.REASON_SUPERVISOR_ERROR): (
            f"The host supervisor hit an unexpected error (see the logs). {kept}"
        ),
        (contract.INTERRUPTED, contract.REASON_SPOT_INTERRUPTION): (
            f"Nothing to do: the group launches a replacement that resumes from {step}. If none "
            "starts within 15 minutes (no spot capacity), add instance types "
            "(-c instanceTypes=...) or set -c useSpot=false and redeploy."
        ),
        (contract.INTERRUPTED, contract.REASON_HOST_SHUTDOWN): (
            "The instance was shut down or rebooted from outside the supervisor. The run resumes "
            f"from {step} when the instance or its replacement starts; if nothing starts, redeploy."
        ),
        (contract.STOPPED_BY_SAFETY, contract.REASON_IDLE): (
            f"GPU, CPU and the trainer's step counter were idle for {ctx.idle_minutes:g} minutes, "
            f"so the run was stopped. Read the logs for what it was waiting on. {kept}"
        ),
        (contract.STOPPED_BY_SAFETY, contract.REASON_MAX_RUNTIME): (
            f"The instance reached maxRuntimeHours. {kept} Raise the limit to continue."
        ),
        (contract.STOPPED_BY_SAFETY, contract.REASON_MAX_COST): (
            f"The run reached maxRunCostUsd. {kept} Raise the cap to continue."
        ),
        (contract.STOPPED, contract.REASON_OPERATOR): (
            f"Stopped as asked (npx tuning-lab stop) after {step}. {kept} The group is at 0 and "
            "the instance terminates itself. Remove the GPU resources: npx cdk deploy "
            f"{ctx.stack_name} -c createInstance=false"
        ),
    }
    text = advice.get((status, reason)) or advice.get((status, None)) or f"See the logs. {kept}"
    if status == contract.FAILED and ctx.debug_hold_minutes > 0:
        text += (
            f" The instance stays up {ctx.debug_hold_minutes:g} minutes for debugging ({connect}); "
            "its group is already at 0 and it terminates itself afterwards."
        )
    return text
