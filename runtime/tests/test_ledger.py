"""The ledger (docs/contracts.md section 4): pure transitions, and conditional writes to S3 that
never lose another writer's fields."""

from __future__ import annotations

import json

import boto3
import pytest
from harness import OUTPUTS_BUCKET, REGION

from tuning_runtime import ledger
from tuning_runtime.aws import Boto3Aws
from tuning_runtime.imds import Identity

T0 = ledger.parse_iso("2026-03-01T10:00:00Z")
FIRST = Identity("i-first", "g5.xlarge", "eu-west-1a", "spot")
SECOND = Identity("i-second", "g6.xlarge", "eu-west-1b", "on-demand")


def test_a_new_run_starts_running():
    doc, event = ledger.begin_instance(None, "run-1", FIRST, T0)

    assert event == "started"
    assert (doc["status"], doc["startedAt"], doc["market"]) == (
        "running",
        "2026-03-01T10:00:00Z",
        "spot",
    )
    assert doc["attempts"] == [] and doc["interruptions"] == []


@pytest.mark.parametrize(
    ("previous", "event"),
    [
        ("interrupted", "resumed"),
        ("running", "resumed"),
        ("completed", "started"),
        ("failed", "started"),
        ("stopped-by-safety", "started"),
    ],
)
def test_begin_on_an_existing_run(previous, event):
    doc, _ = ledger.begin_instance(None, "run-1", FIRST, T0)
    doc["status"], doc["endedAt"] = previous, "2026-03-01T11:00:00Z"

    doc, got = ledger.begin_instance(doc, "run-1", SECOND, T0 + 7200)

    assert got == event
    assert (doc["status"], doc["endedAt"], doc["instanceId"]) == ("running", None, "i-second")
    assert doc["startedAt"] == "2026-03-01T10:00:00Z"  # the run's first start stays


def recorded_price(attempt: dict) -> float:
    return attempt["usdPerHour"]


def test_billable_time_and_cost_are_summed_per_instance():
    doc, _ = ledger.begin_instance(None, "run-1", FIRST, T0)
    ledger.begin_attempt(doc, FIRST, 0.5, T0)
    ledger.end_attempt(doc, "i-first", 1, T0 + 600)
    ledger.begin_attempt(doc, FIRST, 0.5, T0 + 610)  # a retry on the same instance
    ledger.end_attempt(doc, "i-first", 75, T0 + 3600)
    ledger.begin_attempt(doc, SECOND, 1.2, T0 + 4000)
    ledger.end_attempt(doc, "i-second", 0, T0 + 4000 + 1700)

    ledger.recompute_totals(doc, recorded_price, "i-second", T0 + 4000 + 1800)  # shutting down

    assert doc["billableSeconds"] == 3600 + 1800
    assert doc["estimatedCostUsd"] == pytest.approx(0.5 + 0.6)


def test_totals_leave_out_the_instance_still_running():
    doc, _ = ledger.begin_instance(None, "run-1", FIRST, T0)
    ledger.begin_attempt(doc, FIRST, 0.5, T0)
    ledger.end_attempt(doc, "i-first", 75, T0 + 3600)
    ledger.begin_attempt(doc, SECOND, 1.2, T0 + 4000)  # the safety Lambda prices it live

    ledger.recompute_totals(doc, recorded_price)

    assert (doc["billableSeconds"], doc["estimatedCostUsd"]) == (3600, 0.5)


def test_recomputing_twice_changes_nothing():
    doc, _ = ledger.begin_instance(None, "run-1", FIRST, T0)
    ledger.begin_attempt(doc, FIRST, 0.5, T0)
    ledger.end_attempt(doc, "i-first", 0, T0 + 3600)

    once = dict(ledger.recompute_totals(doc, recorded_price, "i-first", T0 + 3610))
    twice = ledger.recompute_totals(doc, recorded_price, "i-first", T0 + 3610)

    assert once == twice and twice["billableSeconds"] == 3610


def test_an_attempt_the_safety_lambda_closed_is_priced_by_its_type():
    doc, _ = ledger.begin_instance(None, "run-1", FIRST, T0)
    doc["attempts"].append(
        {
            "instanceId": "i-9",
            "instanceType": "g5.xlarge",
            "market": "spot",
            "startedAt": "2026-03-01T10:00:00.000Z",
            "exitCode": None,
            "endedAt": "2026-03-01T12:00:00.000Z",
        }
    )

    ledger.recompute_totals(doc, lambda attempt: attempt.get("usdPerHour") or 1.006)

    assert (doc["billableSeconds"], doc["estimatedCostUsd"]) == (7200, 2.012)


def test_interruptions_are_recorded_once_per_instance_and_action():
    doc, _ = ledger.begin_instance(None, "run-1", FIRST, T0)

    ledger.add_interruption(doc, "i-first", T0 + 5, "terminate")
    ledger.add_interruption(doc, "i-first", T0 + 9, "terminate")

    assert doc["interruptions"] == [
        {"instanceId": "i-first", "at": "2026-03-01T10:00:05Z", "action": "terminate"}
    ]


def test_finish_records_status_reason_and_end():
    doc, _ = ledger.begin_instance(None, "run-1", FIRST, T0)

    doc, written = ledger.finish(doc, "failed", "bad-input", T0 + 60, lastLogLines=["bad"])

    assert written and (doc["status"], doc["reason"]) == ("failed", "bad-input")
    assert doc["endedAt"] == "2026-03-01T10:01:00Z" and doc["lastLogLines"] == ["bad"]


def test_an_interrupted_run_has_not_ended():
    doc, _ = ledger.begin_instance(None, "run-1", FIRST, T0)

    doc, _ = ledger.finish(doc, "interrupted", "spot-interruption", T0 + 60)

    assert doc["endedAt"] is None


def test_finish_keeps_the_safety_lambdas_verdict_but_adds_facts():
    doc, _ = ledger.begin_instance(None, "run-1", FIRST, T0)
    doc.update(status="stopped-by-safety", reason="max-cost", endedAt="2026-03-01T12:00:00Z")

    doc, written = ledger.finish(doc, "interrupted", "host-shutdown", T0 + 9000, logsUri="s3://l/")

    assert not written
    assert (doc["status"], doc["reason"], doc["endedAt"]) == (
        "stopped-by-safety",
        "max-cost",
        "2026-03-01T12:00:00Z",
    )
    assert doc["logsUri"] == "s3://l/"


@pytest.fixture
def store(aws_env):
    boto3.client("s3").create_bucket(Bucket=OUTPUTS_BUCKET)
    return ledger.LedgerStore(Boto3Aws(REGION), f"s3://{OUTPUTS_BUCKET}/runs/run-1")


def test_store_creates_then_updates_the_ledger(store):
    store.update(lambda doc: ledger.begin_instance(doc, "run-1", FIRST, T0)[0])
    store.update(lambda doc: ledger.note_step(doc, 40))

    assert store.read()["lastStep"] == 40 and store.read()["instanceId"] == "i-first"


def test_store_reapplies_its_change_when_another_writer_got_there_first(store):
    store.update(lambda doc: ledger.begin_instance(doc, "run-1", FIRST, T0)[0])
    s3 = boto3.client("s3")
    calls = []

    def note_step_while_the_lambda_writes(doc):
        if not calls:  # between our read and our write, the safety Lambda writes its verdict
            verdict = {**doc, "status": "stopped-by-safety", "reason": "max-runtime"}
            s3.put_object(
                Bucket=OUTPUTS_BUCKET, Key="runs/run-1/ledger.json", Body=json.dumps(verdict)
            )
        calls.append(doc["status"])
        return ledger.note_step(doc, 12)

    store.update(note_step_while_the_lambda_writes)

    assert calls == ["running", "stopped-by-safety"]  # re-read, re-applied
    saved = store.read()
    assert (saved["status"], saved["lastStep"]) == ("stopped-by-safety", 12)


def test_store_does_not_overwrite_a_ledger_created_concurrently(store):
    s3 = boto3.client("s3")

    def create_while_another_creates(doc):
        if doc is None:
            s3.put_object(
                Bucket=OUTPUTS_BUCKET,
                Key="runs/run-1/ledger.json",
                Body=json.dumps({"runId": "run-1", "status": "stopped-by-safety"}),
            )
            return {"runId": "run-1", "status": "running"}
        return {**doc, "lastStep": 3}

    store.update(create_while_another_creates)

    stored = store.read()
    assert stored.pop("writeId")  # this update's id: the next one knows whether it landed
    assert stored == {"runId": "run-1", "status": "stopped-by-safety", "lastStep": 3}
