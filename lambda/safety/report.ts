/**
 * Pure builders for what the safety Lambda writes when it stops a run: the ledger update
 * (contract section 4) and the SNS message (contract section 5). No AWS imports.
 */
import {
  METRICS,
  SCHEMA_VERSION,
  messageKey,
  runPrefix,
  SAFETY_MESSAGE_SOURCE,
  type Ledger,
  type Market,
  type MessageRecord,
  type MessageStatus,
} from '../../lib/contract';
import { round2, type Decision } from './decide';

export interface StoppedInstance {
  readonly decision: Decision;
  readonly instanceType: string;
  readonly availabilityZone?: string;
  readonly market: Market;
  readonly launchTime: Date;
  /** The run's totals from its meter (EC2's records), when the run has one. */
  readonly runTotals?: { readonly billableSeconds: number; readonly costUsd: number };
}

/**
 * The ledger after the Lambda stopped `stopped`'s instance: status `stopped-by-safety` with the
 * reason, end time, and the run's billable seconds and cost as the meter counted them (else the
 * ledger's totals plus this instance). Every other field the supervisor wrote is kept.
 */
export function ledgerAfterSafetyStop(
  existing: Ledger | undefined,
  stopped: StoppedInstance,
  runId: string,
  now: Date,
): Ledger {
  const { decision } = stopped;
  const endedAt = now.toISOString();
  const base: Ledger = existing ?? {
    schemaVersion: SCHEMA_VERSION,
    runId,
    status: 'running',
    instanceId: decision.instanceId,
    instanceType: stopped.instanceType,
    availabilityZone: stopped.availabilityZone,
    market: stopped.market,
    startedAt: stopped.launchTime.toISOString(),
    attempts: [],
  };
  const attempts = [...(base.attempts ?? [])];
  const onThisInstance = attempts.flatMap((a, i) => (a.instanceId === decision.instanceId ? [i] : []));
  // The supervisor may have run several attempts here: close the one still open, if any. An
  // instance with no attempt at all (the supervisor never started one) gets one, so the ledger
  // shows where the time went.
  const open = onThisInstance.filter((i) => !attempts[i].endedAt).pop();
  if (open !== undefined) {
    attempts[open] = { ...attempts[open], endedAt };
  } else if (onThisInstance.length === 0) {
    attempts.push({
      instanceId: decision.instanceId,
      instanceType: stopped.instanceType,
      market: stopped.market,
      startedAt: stopped.launchTime.toISOString(),
      exitCode: null,
      endedAt,
    });
  }

  const billable =
    stopped.runTotals?.billableSeconds ??
    (base.billableSeconds ?? 0) + Math.round(decision.runtimeSeconds);
  const cost =
    stopped.runTotals?.costUsd ??
    decision.runCostUsd ??
    (base.estimatedCostUsd ?? 0) + (decision.instanceCostUsd ?? 0);
  return {
    ...base,
    schemaVersion: base.schemaVersion ?? SCHEMA_VERSION,
    runId: base.runId ?? runId,
    status: 'stopped-by-safety',
    reason: decision.reason,
    endedAt,
    billableSeconds: billable,
    estimatedCostUsd: round2(cost),
    attempts,
  };
}

export interface RunMessage {
  readonly subject: string;
  readonly body: string;
  readonly attributes: { readonly runId: string; readonly status: MessageStatus };
}

export interface RunMessageFields {
  readonly runId: string;
  readonly status: MessageStatus;
  readonly reason?: string | null;
  readonly instance: string;
  readonly durationSeconds?: number | null;
  readonly estimatedCostUsd?: number | null;
  readonly modelUri?: string | null;
  readonly logsUri?: string | null;
  readonly nextStep: string;
  readonly lastLogLines?: readonly string[];
}

/** At most this many of a failed trainer's last log lines go into a message. */
export const LOG_LINES_IN_MESSAGE = 20;
const SUBJECT_MAX_CHARS = 100;

/**
 * The one message format every sender uses (contract section 5). The host supervisor renders
 * the same facts in Python (runtime/tuning_runtime/messages.py); testing/run-messages.golden.json
 * holds the cases both must render identically.
 */
export function formatRunMessage(fields: RunMessageFields): RunMessage {
  const subject = `tuning-lab ${fields.runId}: ${fields.status}`.slice(0, SUBJECT_MAX_CHARS);
  const cost = fields.estimatedCostUsd ?? null;
  const lines = [
    `Run: ${fields.runId}`,
    `Status: ${fields.status}`,
    `Reason: ${fields.reason || '-'}`,
    `Instance: ${fields.instance}`,
    `Duration: ${formatDuration(fields.durationSeconds ?? null)}`,
    `Estimated cost: ${cost === null ? '-' : `$${cost.toFixed(2)} (estimate)`}`,
    `Model: ${fields.modelUri || '-'}`,
    `Logs: ${fields.logsUri || '-'}`,
    '',
    'Next step:',
    fields.nextStep,
  ];
  const tail = (fields.lastLogLines ?? []).slice(-LOG_LINES_IN_MESSAGE);
  if (tail.length > 0) {
    lines.push('', `Last ${tail.length} log lines:`, ...tail.map((line) => `  ${line}`));
  }
  return {
    subject,
    body: `${lines.join('\n')}\n`,
    attributes: { runId: fields.runId, status: fields.status },
  };
}

/** The message for a run the Lambda stopped. */
export function safetyStopMessage(
  stopped: StoppedInstance,
  ledger: Ledger,
  outputsBucket: string,
  stackName: string,
): RunMessage {
  const { decision } = stopped;
  const runId = ledger.runId;
  const limit =
    decision.reason === 'max-cost'
      ? 'the per-run cost cap (maxRunCostUsd)'
      : 'the runtime limit (maxRuntimeHours)';
  return formatRunMessage({
    runId,
    status: 'stopped-by-safety',
    reason: `${decision.reason}: ${decision.detail}`,
    instance: [decision.instanceId, stopped.instanceType, stopped.market, stopped.availabilityZone]
      .filter(Boolean)
      .join(' '),
    durationSeconds: ledger.billableSeconds ?? decision.runtimeSeconds,
    estimatedCostUsd: ledger.estimatedCostUsd,
    modelUri: ledger.finalModelUri ?? null,
    logsUri: ledger.logsUri ?? null,
    nextStep:
      `The run reached ${limit}; its capacity is now 0 and the instance was terminated. ` +
      `Checkpoints are under s3://${outputsBucket}/${runPrefix(runId)}/checkpoints/. To continue, ` +
      `raise the limit and deploy again with the same runConfig (cdk deploy ${stackName} ` +
      '-c createInstance=true -c runConfig=...): the run resumes from its last checkpoint. ' +
      'See docs/runbook.md.',
  });
}

/** The message for a second billing instance the Lambda terminated while the run went on. */
export function extraInstanceMessage(stopped: StoppedInstance, stackName: string): RunMessage {
  const { decision } = stopped;
  return formatRunMessage({
    runId: decision.runId ?? 'unknown-run',
    status: 'extra-instance-stopped',
    reason: `extra-instance: ${decision.detail}`,
    instance: [decision.instanceId, stopped.instanceType, stopped.market, stopped.availabilityZone]
      .filter(Boolean)
      .join(' '),
    durationSeconds: decision.runtimeSeconds,
    estimatedCostUsd: decision.instanceCostUsd ?? null,
    nextStep:
      `Stack ${stackName} may bill for one instance in its group and one held for debugging; ` +
      `this one was terminated and ${decision.keptInstanceId ?? 'the older instance'} goes on. ` +
      'Nothing for you to do unless you started it yourself with the stack tags. See ' +
      'docs/runbook.md.',
  });
}

function formatDuration(seconds: number | null): string {
  if (seconds === null) return '-';
  const total = Math.max(0, Math.round(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const two = (n: number) => String(n).padStart(2, '0');
  if (h > 0) return `${h} h ${two(m)} min`;
  return m > 0 ? `${m} min ${two(s)} s` : `${s} s`;
}


/** What one safety check decided, as the handler reports it. */
export interface CheckSummary {
  readonly checked: number;
  readonly stopped: readonly { instanceId: string; runId?: string; detail: string }[];
}

/**
 * One safety check as an embedded-metric-format document (contract section 10): the counts
 * the run dashboard graphs, and `Decisions`, the stops in words, which its log table lists.
 */
export function decisionMetrics(summary: CheckSummary, stackName: string, now: Date): object {
  return {
    _aws: {
      Timestamp: now.getTime(),
      CloudWatchMetrics: [
        {
          Namespace: METRICS.namespace,
          Dimensions: [[METRICS.stackDimension]],
          Metrics: [
            { Name: METRICS.safety.checked, Unit: 'Count' },
            { Name: METRICS.safety.stopped, Unit: 'Count' },
          ],
        },
      ],
    },
    [METRICS.stackDimension]: stackName,
    [METRICS.safety.checked]: summary.checked,
    [METRICS.safety.stopped]: summary.stopped.length,
    Decisions: summary.stopped
      .map((s) => `${s.instanceId} (${s.runId ?? 'no run'}): ${s.detail}`)
      .join('; '),
  };
}

/**
 * The message as the run keeps it (contract section 12): `runs/<run-id>/messages/`, beside
 * the supervisor's, so `npx tuning-lab messages` reads it without email. `source` names the
 * sender: this Lambda, or the training job the SageMaker job controller reports on.
 */
export function messageRecord(
  notice: RunMessage,
  reason: string | null,
  now: Date,
  source: string = SAFETY_MESSAGE_SOURCE,
): { key: string; record: MessageRecord } {
  const { runId, status } = notice.attributes;
  return {
    key: messageKey(runId, now, source, status),
    record: {
      schemaVersion: SCHEMA_VERSION,
      runId,
      status,
      reason,
      source,
      sentAt: now.toISOString(),
      subject: notice.subject,
      body: notice.body,
    },
  };
}
