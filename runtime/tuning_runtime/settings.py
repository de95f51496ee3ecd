"""The run settings the stack writes to SSM (docs/contracts.md section 1), parsed and checked.

    python3 -m tuning_runtime check-settings settings.json    # exit 0, or the first problem

Every problem names the field, what is allowed and what was received, so a bad document fails
on the instance before the image is pulled (and the stack's tests can run the same check).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from . import contract

RUN_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}$")  # as lib/contract.ts
MAX_RETRIES_LIMIT = 10
DEBUG_HOLD_LIMIT_MINUTES = 24 * 60


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class RunSettings:
    stack_name: str
    region: str
    run_id: str
    image_uri: str
    trainer_role_arn: str
    run_config: dict
    data_root_uri: str
    output_uri: str
    log_group_name: str
    topic_arn: str
    max_runtime_hours: float
    max_run_cost_usd: float | None
    idle_minutes: float
    max_retries: int
    debug_hold_minutes: float
    on_demand_usd_per_hour: dict

    def on_demand_price(self, instance_type: str) -> float | None:
        return self.on_demand_usd_per_hour.get(instance_type)


FIELDS = (
    "schemaVersion",
    "stackName",
    "region",
    "runId",
    "imageUri",
    "trainerRoleArn",
    "runConfig",
    "dataRootUri",
    "outputUri",
    "logGroupName",
    "topicArn",
    "maxRuntimeHours",
    "maxRunCostUsd",
    "idleMinutes",
    "maxRetries",
    "debugHoldMinutes",
    "onDemandUsdPerHour",
)
OPTIONAL_FIELDS = ("maxRunCostUsd",)


def _fail(field: str, allowed: str, got: Any) -> SettingsError:
    return SettingsError(f"run settings: '{field}' must be {allowed}; got {json.dumps(got)}")


def _string(doc: dict, field: str, prefix: str = "") -> str:
    value = doc[field]
    if not isinstance(value, str) or not value.strip() or not value.startswith(prefix):
        allowed = f"a string starting with '{prefix}'" if prefix else "a non-empty string"
        raise _fail(field, allowed, value)
    return value


def _number(doc: dict, field: str, minimum: float, maximum: float = math.inf) -> float:
    value = doc[field]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not minimum < value <= maximum:
        upper = "" if maximum == math.inf else f" and at most {maximum:g}"
        raise _fail(field, f"a number greater than {minimum:g}{upper}", value)
    return float(value)


def parse_settings(text: str) -> RunSettings:
    try:
        doc = json.loads(text)
    except ValueError as error:
        raise SettingsError(f"run settings: not valid JSON ({error})") from None
    if not isinstance(doc, dict):
        raise SettingsError("run settings: must be a JSON object")
    unknown = sorted(set(doc) - set(FIELDS))
    if unknown:
        raise SettingsError(
            f"run settings: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(FIELDS)}"
        )
    missing = [name for name in FIELDS if name not in doc and name not in OPTIONAL_FIELDS]
    if missing:
        raise SettingsError(f"run settings: missing field(s) {', '.join(missing)}")
    if doc["schemaVersion"] != contract.SCHEMA_VERSION:
        raise _fail("schemaVersion", str(contract.SCHEMA_VERSION), doc["schemaVersion"])

    run_id = doc["runId"]
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id):
        raise _fail("runId", "3 to 63 lower-case letters, digits and '-'", run_id)
    output_uri = _string(doc, "outputUri", "s3://").rstrip("/")
    if not output_uri.endswith(f"/runs/{run_id}"):
        raise _fail("outputUri", f"'s3://<OutputsBucket>/runs/{run_id}'", doc["outputUri"])
    if not isinstance(doc["runConfig"], dict) or not doc["runConfig"]:
        raise _fail("runConfig", "a non-empty object (the parsed run config)", doc["runConfig"])

    cost_cap = doc.get("maxRunCostUsd")
    if cost_cap is not None:
        cost_cap = _number(doc, "maxRunCostUsd", 0)

    retries = doc["maxRetries"]
    if not isinstance(retries, int) or isinstance(retries, bool):
        raise _fail("maxRetries", f"an integer from 0 to {MAX_RETRIES_LIMIT}", retries)
    if not 0 <= retries <= MAX_RETRIES_LIMIT:
        raise _fail("maxRetries", f"an integer from 0 to {MAX_RETRIES_LIMIT}", retries)

    hold = doc["debugHoldMinutes"]
    hold_ok = isinstance(hold, (int, float)) and not isinstance(hold, bool)
    if not hold_ok or not 0 <= hold <= DEBUG_HOLD_LIMIT_MINUTES:
        raise _fail("debugHoldMinutes", f"a number from 0 to {DEBUG_HOLD_LIMIT_MINUTES}", hold)

    prices = doc["onDemandUsdPerHour"]
    valid_prices = isinstance(prices, dict) and all(
        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
        for k, v in prices.items()
    )
    if not valid_prices or not prices:
        raise _fail("onDemandUsdPerHour", "an object of instance type -> USD per hour", prices)

    return RunSettings(
        stack_name=_string(doc, "stackName"),
        region=_string(doc, "region"),
        run_id=run_id,
        image_uri=_string(doc, "imageUri"),
        trainer_role_arn=_string(doc, "trainerRoleArn", "arn:"),
        run_config=doc["runConfig"],
        data_root_uri=_string(doc, "dataRootUri", "s3://"),
        output_uri=output_uri,
        log_group_name=_string(doc, "logGroupName"),
        topic_arn=_string(doc, "topicArn", "arn:"),
        max_runtime_hours=_number(doc, "maxRuntimeHours", 0),
        max_run_cost_usd=cost_cap,
        idle_minutes=_number(doc, "idleMinutes", 0),
        max_retries=retries,
        debug_hold_minutes=float(hold),
        on_demand_usd_per_hour={k: float(v) for k, v in prices.items()},
    )


def fetch_settings_text(aws: object, parameter_name: str) -> str:
    """The run settings document from its SSM parameter."""
    found = aws.call("ssm", "GetParameter", {"Name": parameter_name})
    return found["Parameter"]["Value"]
