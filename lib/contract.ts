/**
 * Names shared by the stack, the safety Lambda and the instance runtime (docs/contracts.md).
 *
 * This module is imported by constructs AND bundled into the Lambda: it must not import
 * aws-cdk-lib or any AWS SDK. The Python side mirrors it in runtime/tuning_runtime/contract.py.
 */

/** Tags the Auto Scaling group propagates to its instances (contract section 2). */
export const TAG_KEYS = {
  stack: 'tuning-lab:stack',
  runId: 'tuning-lab:run-id',
  maxRuntimeHours: 'tuning-lab:max-runtime-hours',
  maxRunCostUsd: 'tuning-lab:max-run-cost-usd',
} as const;

/** The tag EC2 Auto Scaling itself puts on every instance it launches. */
export const AUTOSCALING_GROUP_TAG = 'aws:autoscaling:groupName';

/** Version of the run-settings document and of the ledger. */
export const SCHEMA_VERSION = 1;

/** SSM parameter holding the run settings (contract section 1); fixed so user-data can name it. */
export function runSettingsParameterName(stackName: string): string {
  return `/tuning-lab/${stackName}/run-settings`;
}

/** S3 key prefix of one run in the outputs bucket (no trailing slash). */
export function runPrefix(runId: string): string {
  return `runs/${runId}`;
}

/** S3 key of a run's ledger in the outputs bucket (contract section 4). */
export function ledgerKey(runId: string): string {
  return `${runPrefix(runId)}/ledger.json`;
}

/** S3 key of a run's lease (contract section 7): the one instance that may train the run. */
export function leaseKey(runId: string): string {
  return `${runPrefix(runId)}/lease.json`;
}

/**
 * The safety Lambda's own records, outside every run prefix: neither the instance nor the
 * trainer may write here, so nothing they do can change what the cost cap counts.
 */
export const SAFETY_PREFIX = 'safety';

/** S3 key of a run's meter (contract section 8): what the safety Lambda has seen it cost. */
export function meterKey(runId: string): string {
  return `${SAFETY_PREFIX}/meters/${runId}.json`;
}

/** Run ids: what a user may pass as `runId`, and what the default hash produces. */
export const RUN_ID_PATTERN = /^[a-z0-9][a-z0-9-]{2,62}$/;

export type RunStatus = 'running' | 'completed' | 'failed' | 'interrupted' | 'stopped-by-safety';

/**
 * Statuses that SNS messages carry (contract section 5). `extra-instance-stopped` is the safety
 * Lambda's word for a second billing instance it terminated while the run went on elsewhere.
 */
export type MessageStatus =
  | 'started'
  | 'completed'
  | 'failed'
  | 'interrupted'
  | 'resumed'
  | 'stopped-by-safety'
  | 'extra-instance-stopped';

export type Market = 'spot' | 'on-demand';

/** The run-settings document (contract section 1). */
export interface RunSettingsDocument {
  readonly schemaVersion: number;
  readonly stackName: string;
  readonly region: string;
  readonly runId: string;
  /** `<registry>/<repository>:<tag>`; the first start pins it to a digest (ledger `imageUri`). */
  readonly imageUri: string;
  /** The role the supervisor assumes for the trainer's S3 credentials (contract section 3b). */
  readonly trainerRoleArn: string;
  readonly runConfig: unknown;
  readonly dataRootUri: string;
  readonly outputUri: string;
  readonly logGroupName: string;
  readonly topicArn: string;
  readonly maxRuntimeHours: number;
  readonly maxRunCostUsd: number | null;
  readonly idleMinutes: number;
  readonly maxRetries: number;
  readonly debugHoldMinutes: number;
  readonly onDemandUsdPerHour: Readonly<Record<string, number>>;
}

/** One attempt of a run on one instance (ledger `attempts`). */
export interface LedgerAttempt {
  instanceId: string;
  instanceType?: string;
  market?: Market;
  startedAt?: string;
  endedAt?: string | null;
  exitCode?: number | null;
}

/** The ledger document (contract section 4); unknown fields are kept as they are. */
export interface Ledger {
  schemaVersion: number;
  runId: string;
  status: RunStatus;
  reason?: string | null;
  instanceId?: string;
  instanceType?: string;
  availabilityZone?: string;
  market?: Market;
  startedAt?: string;
  endedAt?: string | null;
  billableSeconds?: number;
  estimatedCostUsd?: number;
  attempts?: LedgerAttempt[];
  interruptions?: { instanceId: string; at: string; action: string }[];
  lastStep?: number | null;
  /** The image every attempt of the run pulls: `<registry>/<repository>@sha256:...`. */
  imageUri?: string | null;
  finalModelUri?: string | null;
  logsUri?: string | null;
  lastLogLines?: string[];
  [extra: string]: unknown;
}
