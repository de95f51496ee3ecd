"""The run's ledger, ``<outputUri>/ledger.json`` (docs/contracts.md section 4).

The transitions are pure functions on the ledger dict; :class:`LedgerStore` applies one with a
conditional write (S3 ``If-Match`` on the ETag it read), re-reading and re-applying when another
writer (the safety Lambda) got there first, so neither overwrites the other's fields.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import uuid
from typing import Callable

from . import contract
from .aws import AwsError
from .imds import Identity

log = logging.getLogger(__name__)

CONFLICT_CODES = ("PreconditionFailed", "ConditionalRequestConflict")
WRITE_ID = "writeId"  # who wrote this version (a fresh id per update)
MAX_WRITE_TRIES = 8


def iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> float:
    """Seconds since the epoch of an ISO 8601 UTC time, with or without fractional seconds
    (the safety Lambda writes JavaScript's ``toISOString()``: ``2026-03-01T10:00:00.000Z``)."""
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=parsed.tzinfo or dt.timezone.utc).timestamp()


def new_ledger(run_id: str) -> dict:
    return {
        "schemaVersion": contract.SCHEMA_VERSION,
        "runId": run_id,
        "status": contract.RUNNING,
        "reason": None,
        "instanceId": None,
        "instanceType": None,
        "availabilityZone": None,
        "market": None,
        "startedAt": None,
        "endedAt": None,
        "billableSeconds": 0,
        "estimatedCostUsd": 0.0,
        "attempts": [],
        "interruptions": [],
        "lastStep": None,
        "imageUri": None,
        "finalModelUri": None,
        "logsUri": None,
        "lastLogLines": None,
    }


def begin_instance(ledger: dict | None, run_id: str, who: Identity, now: float) -> tuple:
    """The run is running here; returns (ledger, "started" or "resumed")."""
    resumed = ledger is not None and ledger.get("status") in (
        contract.RUNNING,
        contract.INTERRUPTED,
    )
    ledger = ledger if ledger is not None else new_ledger(run_id)
    ledger.update(
        status=contract.RUNNING,
        reason=None,
        endedAt=None,
        lastLogLines=None,
        instanceId=who.instance_id,
        instanceType=who.instance_type,
        availabilityZone=who.availability_zone,
        market=who.market,
    )
    ledger["startedAt"] = ledger.get("startedAt") or iso(now)
    return ledger, contract.RESUMED if resumed else contract.STARTED


def begin_attempt(ledger: dict, who: Identity, usd_per_hour: float | None, now: float) -> dict:
    ledger.setdefault("attempts", []).append(
        {
            "instanceId": who.instance_id,
            "instanceType": who.instance_type,
            "market": who.market,
            "startedAt": iso(now),
            "endedAt": None,
            "exitCode": None,
            "usdPerHour": usd_per_hour,
        }
    )
    return ledger


def end_attempt(ledger: dict, instance_id: str, exit_code: int | None, now: float) -> dict:
    for attempt in reversed(ledger.get("attempts", [])):
        if attempt.get("instanceId") == instance_id and not attempt.get("endedAt"):
            attempt.update(endedAt=iso(now), exitCode=exit_code)
            break
    return ledger


def add_interruption(ledger: dict, instance_id: str, at: float, action: str) -> dict:
    seen = ledger.setdefault("interruptions", [])
    if not any(i.get("instanceId") == instance_id and i.get("action") == action for i in seen):
        seen.append({"instanceId": instance_id, "at": iso(at), "action": action})
    return ledger


def note_step(ledger: dict, step: int | None) -> dict:
    if step is not None and step > (ledger.get("lastStep") or 0):
        ledger["lastStep"] = step
    return ledger


def finish(ledger: dict, status: str, reason: str, now: float, **fields: object) -> tuple:
    """Record how the run ended here; returns (ledger, whether our status was written).

    The safety Lambda's verdict wins: when it already wrote ``stopped-by-safety`` while this
    instance was running, only the facts (attempt ends, logs, steps) are added, not our status.
    """
    for name, value in fields.items():
        if value is not None:
            ledger[name] = value
    if ledger.get("status") == contract.STOPPED_BY_SAFETY and status != contract.STOPPED_BY_SAFETY:
        return ledger, False
    ledger.update(status=status, reason=reason)
    ledger["endedAt"] = None if status == contract.INTERRUPTED else iso(now)
    return ledger, True


def recompute_totals(
    ledger: dict,
    price_of: Callable[[dict], float | None],
    instance_id: str | None = None,
    instance_end: float | None = None,
) -> dict:
    """Billable seconds and estimated cost of the run's instances that have ended.

    Each instance bills from its first attempt's start (its boot) to its last attempt's end;
    ``instance_id`` ends at ``instance_end`` (now, when this instance is about to go). While an
    instance runs its share is not in the totals. These are the supervisor's report; the safety
    Lambda's cost cap counts from EC2's records in its own meter, and writes the meter's totals
    here when it stops a run. Recomputing from the attempts, rather than adding, makes every
    write idempotent.
    """
    spans: dict = {}
    for attempt in ledger.get("attempts", []):
        owner = attempt.get("instanceId")
        start = parse_iso(attempt["startedAt"])
        end = parse_iso(attempt["endedAt"]) if attempt.get("endedAt") else start
        first, last, price = spans.get(owner, (start, end, None))
        spans[owner] = (min(first, start), max(last, end), price or price_of(attempt))
    if instance_id in spans and instance_end is not None:
        first, last, price = spans[instance_id]
        spans[instance_id] = (first, max(last, instance_end), price)
    seconds = {owner: max(0.0, last - first) for owner, (first, last, _) in spans.items()}
    cost = sum(seconds[owner] / 3600 * (price or 0) for owner, (_, _, price) in spans.items())
    ledger["billableSeconds"] = round(sum(seconds.values()))
    ledger["estimatedCostUsd"] = round(cost, 4)
    return ledger


class LedgerStore:
    def __init__(self, aws: object, output_uri: str) -> None:
        self.aws = aws
        self.uri = f"{output_uri.rstrip('/')}/{contract.LEDGER_NAME}"

    def read(self) -> dict | None:
        found = self.aws.get_object(self.uri)
        return json.loads(found[0]) if found else None

    def update(self, mutate: Callable[[dict | None], dict]) -> dict:
        # A write whose success response was lost is retried by the CLI and then refused (412):
        # the write id tells that from another writer's change, so a change is never applied twice.
        write_id = uuid.uuid4().hex
        for _ in range(MAX_WRITE_TRIES):
            found = self.aws.get_object(self.uri)
            current = json.loads(found[0]) if found else None
            if current is not None and current.get(WRITE_ID) == write_id:
                return current
            ledger = mutate(copy.deepcopy(current))
            ledger[WRITE_ID] = write_id
            body = (json.dumps(ledger, indent=2) + "\n").encode()
            try:
                self.aws.put_object(
                    self.uri,
                    body,
                    "application/json",
                    if_match=found[1] if found else None,
                    if_none_match=found is None,
                )
            except AwsError as error:
                if error.code not in CONFLICT_CODES:
                    raise
                log.info("ledger changed under us (%s); re-reading and re-applying", error.code)
                continue
            return ledger
        raise AwsError(
            "PutObject", "PreconditionFailed", f"{self.uri}: too many concurrent writers"
        )
