"""Names the instance runtime shares with the stack and the safety Lambda (docs/contracts.md).

The TypeScript side is lib/contract.ts; a change here is a contract change for all three parts.
"""

from __future__ import annotations

import time

SCHEMA_VERSION = 1
DEFAULT_STACK_NAME = "TrainingStack"  # what `npx tuning-lab` reads without --stack


def settings_parameter_name(stack_name: str) -> str:
    """The SSM String parameter holding the run settings (contracts section 1)."""
    return f"/tuning-lab/{stack_name}/run-settings"


# Section 2: tags the Auto Scaling group propagates to its instances.
TAG_STACK = "tuning-lab:stack"
TAG_RUN_ID = "tuning-lab:run-id"
TAG_MAX_RUNTIME_HOURS = "tuning-lab:max-runtime-hours"
TAG_MAX_RUN_COST_USD = "tuning-lab:max-run-cost-usd"

# Section 3: the trainer's side of the seam.
ENV_OUTPUT_URI = "LLM_OUTPUT__URI"
ENV_DATA_ROOT = "LLM_DATA__ROOT"
ENV_PROGRESS_FILE = "TUNING_PROGRESS_FILE"
ENV_IMDS_ENDPOINT = "AWS_EC2_METADATA_SERVICE_ENDPOINT"
# The supervisor forwards spot notices as SIGTERM; the trainer cannot reach IMDS (hop limit 1).
ENV_SPOT_POLLING = "LLM_INTERRUPTION__SPOT_POLLING"

# Section 3b: the trainer's credentials, files in the run folder the trainer shares.
CREDENTIALS_NAME = "credentials.json"  # credential_process output: Version 1, keys, Expiration
AWS_CONFIG_NAME = "aws-config"  # [default] credential_process = cat <credentials.json>

EXIT_COMPLETED = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 75

# Run layout under outputUri (DESIGN.md section 3).
LEDGER_NAME = "ledger.json"
LEASE_NAME = "lease.json"  # section 7
FINAL_DIR = "final"
MANIFEST_NAME = "manifest.json"
LOGS_DIR = "logs"
# Section 9: the operator's stop request (`tuning-lab stop`), which the supervisor polls.
STOP_REQUEST_NAME = "control/stop-request.json"

# Section 4: ledger statuses and the reasons this runtime writes.
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
INTERRUPTED = "interrupted"
STOPPED_BY_SAFETY = "stopped-by-safety"
STOPPED = "stopped"  # by the operator (`tuning-lab stop`), after a checkpoint
STATUSES = (RUNNING, COMPLETED, FAILED, INTERRUPTED, STOPPED_BY_SAFETY, STOPPED)
TERMINAL_STATUSES = (COMPLETED, FAILED, STOPPED_BY_SAFETY, STOPPED)

REASON_COMPLETED = "completed"
REASON_BAD_INPUT = "bad-input"
REASON_TRAINER_FAILED = "trainer-failed"
REASON_FINAL_MODEL_MISSING = "final-model-missing"
REASON_IMAGE_PULL_FAILED = "image-pull-failed"
REASON_SUPERVISOR_ERROR = "supervisor-error"
REASON_SPOT_INTERRUPTION = "spot-interruption"
REASON_HOST_SHUTDOWN = "host-shutdown"
REASON_IDLE = "idle"
REASON_MAX_RUNTIME = "max-runtime"
REASON_MAX_COST = "max-cost"
REASON_OPERATOR = "operator"

LAST_LOG_LINES = 50

# Section 5: SNS. The statuses of a message; `started` and `resumed` are events, not ledger states.
STARTED = "started"
RESUMED = "resumed"
EXTRA_INSTANCE_STOPPED = "extra-instance-stopped"  # the safety Lambda's, never the supervisor's
MESSAGE_STATUSES = (
    STARTED,
    COMPLETED,
    FAILED,
    INTERRUPTED,
    RESUMED,
    STOPPED_BY_SAFETY,
    STOPPED,
    EXTRA_INSTANCE_STOPPED,
)
SUBJECT_MAX_CHARS = 100
ATTRIBUTE_RUN_ID = "runId"
ATTRIBUTE_STATUS = "status"

# Section 11: what the supervisor publishes of the trainer's progress (``npx tuning-lab status``),
# at most every PROGRESS_MIN_INTERVAL_SECONDS and every ``logging_steps`` steps.
PROGRESS_NAME = "progress.json"
METRICS_NAME = "metrics.json"
PROGRESS_MIN_INTERVAL_SECONDS = 30

# Section 12: every message the supervisor and the safety Lambda send is kept in the run's
# messages/ folder too, as <stamp>-<source>-<status>.json (``npx tuning-lab messages``).
MESSAGES_DIR = "messages"
SAFETY_MESSAGE_SOURCE = "safety"  # the Lambda's source; an instance writes its instance id


def message_name(sent_at: float, source: str, status: str) -> str:
    """A message's file name; sorts by the time it was sent (``lib/contract.ts`` messageKey)."""
    millis = round(sent_at * 1000)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(millis // 1000))
    return f"{stamp}.{millis % 1000:03d}Z-{source}-{status}.json"
