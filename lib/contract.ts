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

/**
 * CloudWatch metrics of a run (contract section 10), all in one namespace, as embedded metric
 * format (EMF) log lines: the trainer's (dimension RunId), the supervisor's GPU samples
 * (dimension RunId) and the safety Lambda's decisions (dimension Stack). The run dashboard
 * (lib/dashboard.ts) graphs them.
 */
export const METRICS = {
  namespace: 'TuningLab',
  trainer: {
    loss: 'loss',
    evalLoss: 'eval_loss',
    tokensPerSecond: 'tokens_per_second',
    learningRate: 'learning_rate',
  },
  supervisor: { gpuUtilisation: 'gpu_utilisation', gpuMemoryUsed: 'gpu_memory_used' },
  safety: { checked: 'InstancesChecked', stopped: 'InstancesStopped' },
  runDimension: 'RunId',
  stackDimension: 'Stack',
} as const;

/** Version of the run-settings document and of the ledger. */
export const SCHEMA_VERSION = 1;

/** The stack name bin/ deploys and the command line reads by default (`--stack`). */
export const DEFAULT_STACK_NAME = 'TrainingStack';

/** CloudFormation outputs of the stack that the command line reads (README, step 2). */
export const STACK_OUTPUTS = {
  dataBucket: 'DataBucketName',
  outputsBucket: 'OutputsBucketName',
  repositoryUri: 'RepositoryUri',
  githubRoleArn: 'GitHubRoleArn',
  groupName: 'GpuGroupName',
  ssmSessionCommand: 'SsmSessionCommand',
  logGroup: 'LogGroupName',
  topicArn: 'AlertsTopicArn',
  safetyFunction: 'SafetyFunctionName',
  runId: 'RunId',
  dashboardUrl: 'DashboardUrl',
  /** `sagemaker` on a stack of the SageMaker backend; absent on an EC2 stack. */
  backend: 'Backend',
  trainingJobPrefix: 'TrainingJobPrefix',
  jobControllerFunction: 'JobControllerFunctionName',
} as const;
export type StackOutputName = keyof typeof STACK_OUTPUTS;
/** Outputs of each backend's stack only; every other output is on both. */
export const EC2_ONLY_OUTPUTS: readonly StackOutputName[] = ['groupName', 'ssmSessionCommand'];
export const SAGEMAKER_ONLY_OUTPUTS: readonly StackOutputName[] = [
  'backend',
  'trainingJobPrefix',
  'jobControllerFunction',
];

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

/** Folder of the final model (written by the trainer, manifest.json last). */
export function finalPrefix(runId: string): string {
  return `${runPrefix(runId)}/final/`;
}

/** Folder of one published checkpoint (manifest.json last). */
export function checkpointPrefix(runId: string, step: number): string {
  return `${runPrefix(runId)}/checkpoints/step-${step}/`;
}

/** Where the supervisor uploads an instance's logs when the run ends: `logs/<instance-id>/`. */
export function logsPrefix(runId: string): string {
  return `${runPrefix(runId)}/logs/`;
}

/** Name of the manifest written last into a checkpoint or `final/` (contract section 3a). */
export const MANIFEST_NAME = 'manifest.json';

/**
 * The supervisor's latest view of training (contract section 11), rewritten at a bounded rate:
 * at most every {@link PROGRESS_MIN_INTERVAL_SECONDS} and every `logging_steps` steps.
 */
export function progressKey(runId: string): string {
  return `${runPrefix(runId)}/progress.json`;
}

/** The run's metric history (training and eval loss, learning rate, tokens/s) for plots. */
export function metricsKey(runId: string): string {
  return `${runPrefix(runId)}/metrics.json`;
}

/** Every message the supervisor and the safety Lambda sent about the run (contract section 12). */
export function messagesPrefix(runId: string): string {
  return `${runPrefix(runId)}/messages/`;
}

/**
 * One message's key: sorts by the time it was sent. `source` is the sending instance's id, or
 * {@link SAFETY_MESSAGE_SOURCE} for the safety Lambda.
 */
export function messageKey(runId: string, sentAt: Date, source: string, status: string): string {
  const stamp = sentAt.toISOString().replace(/[-:]/g, '');
  return `${messagesPrefix(runId)}${stamp}-${source}-${status}.json`;
}

export const SAFETY_MESSAGE_SOURCE = 'safety';

export const PROGRESS_MIN_INTERVAL_SECONDS = 30;

/** Operator aliases of runs (`tuning-lab runs tag`), outside every run prefix (section 13). */
export const ALIASES_PREFIX = 'aliases/';

export function aliasKey(name: string): string {
  return `${ALIASES_PREFIX}${name}.json`;
}

/** Alias names: short, lower-case, not confusable with a run id's `run-` default. */
export const ALIAS_PATTERN = /^[a-z][a-z0-9._-]{0,62}$/;

/**
 * S3 key of a run's stop request (contract section 9): `tuning-lab stop` writes it, the run's
 * supervisor polls it. The trainer's role may neither write nor delete it.
 */
export function stopRequestKey(runId: string): string {
  return `${runPrefix(runId)}/control/stop-request.json`;
}

/** The stop request document (contract section 9). */
export interface StopRequest {
  readonly schemaVersion: number;
  readonly runId: string;
  /** A fresh id per request: the supervisor that honours it copies it to ledger `operatorStop`. */
  readonly requestId: string;
  readonly requestedAt: string;
  /** The caller's ARN (STS GetCallerIdentity), for the record. */
  readonly requestedBy: string;
}

/** The ledger reason of a run ended by `tuning-lab stop` (status `stopped`). */
export const REASON_OPERATOR = 'operator';

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

export type RunStatus =
  'running' | 'completed' | 'failed' | 'interrupted' | 'stopped-by-safety' | 'stopped';

/** Statuses after which no instance trains the run (until it is redeployed). */
export const FINAL_RUN_STATUSES: readonly RunStatus[] = [
  'completed',
  'failed',
  'stopped-by-safety',
  'stopped',
];

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
  | 'stopped'
  | 'extra-instance-stopped';

export type Market = 'spot' | 'on-demand';

/** A checkpoint's or the final model's manifest (contract section 3a). */
export interface Manifest {
  schemaVersion: number;
  kind: 'checkpoint' | 'final';
  step: number;
  createdAt: string;
  files: { path: string; size: number; sha256: string }[];
}

/** `runs/<run-id>/progress.json` (contract section 11). */
export interface ProgressDocument {
  schemaVersion: number;
  runId: string;
  instanceId?: string;
  step: number | null;
  maxSteps: number | null;
  loss: number | null;
  evalLoss: number | null;
  learningRate: number | null;
  tokensPerSecond: number | null;
  /** The first step this attempt showed, and when: the rate since then gives the ETA. */
  attemptFirstStep: number | null;
  attemptFirstStepAt: string | null;
  updatedAt: string;
}

/** One point of `runs/<run-id>/metrics.json`. */
export interface MetricPoint {
  step: number;
  at: string;
  loss?: number;
  evalLoss?: number;
  learningRate?: number;
  tokensPerSecond?: number;
}

/** `runs/<run-id>/metrics.json` (contract section 11). */
export interface MetricsDocument {
  schemaVersion: number;
  runId: string;
  updatedAt: string;
  points: MetricPoint[];
}

/** `runs/<run-id>/messages/<stamp>-<source>-<status>.json` (contract section 12). */
export interface MessageRecord {
  schemaVersion: number;
  runId: string;
  status: MessageStatus;
  reason: string | null;
  source: string;
  sentAt: string;
  subject: string;
  body: string;
}

/** `aliases/<name>.json` (contract section 13). */
export interface AliasDocument {
  schemaVersion: number;
  name: string;
  runId: string;
  taggedAt: string;
}

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
  /** The price the attempt was started at (USD per hour of one instance), when known. */
  usdPerHour?: number | null;
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
  /** The stop request the run ended on (status `stopped`, reason `operator`). */
  operatorStop?: StopRequest | null;
  /**
   * SageMaker backend: why the latest start was refused, while later passes try again
   * (cleared when a job starts; contract section 14).
   */
  lastStartError?: { message: string; firstAt: string; at: string; passes: number } | null;
  [extra: string]: unknown;
}

// ---------------------------------------------------------------------------------------------
// The SageMaker backend (contract section 14): training jobs instead of an Auto Scaling group.
// ---------------------------------------------------------------------------------------------

/** Which kind of capacity trains a stack's runs (`-c backend=...`). */
export const BACKENDS = ['ec2', 'sagemaker'] as const;
export type Backend = (typeof BACKENDS)[number];

/** SSM parameter holding the job settings (section 14), read by the job controller. */
export function jobSettingsParameterName(stackName: string): string {
  return `/tuning-lab/${stackName}/job-settings`;
}

/** SageMaker's limit on a training job name, and its pattern. */
export const TRAINING_JOB_NAME_MAX = 63;
export const TRAINING_JOB_NAME_PATTERN = /^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/;

/**
 * The start of every training job name of a stack: `tl-` and 8 hex digits of a hash of the
 * stack name, so the controller's IAM policy and its EventBridge rule can name this stack's jobs
 * by prefix, whatever the stack is called (stack names may be 128 characters).
 */
export function trainingJobStackPrefix(stackName: string): string {
  return `tl-${fnv1aHex(stackName)}-`;
}

/**
 * The start of every training job name of one deployment of a stack (ends with `-`): the stack
 * prefix and 8 hex digits of a hash of its CloudFormation stack id, so a stack destroyed and
 * deployed again under the same name never meets the jobs of its earlier self (SageMaker keeps
 * ended jobs, and their names, for good).
 */
export function trainingJobInstancePrefix(stackName: string, stackId: string): string {
  return `${trainingJobStackPrefix(stackName)}${fnv1aHex(stackId)}-`;
}

/** The start of every training job name of one run of a stack deployment (ends with `-`). */
export function trainingJobRunPrefix(stackName: string, stackId: string, runId: string): string {
  const instance = trainingJobInstancePrefix(stackName, stackId);
  const room = TRAINING_JOB_NAME_MAX - instance.length - '-a99'.length;
  // A run id too long to fit keeps its start and gets a hash of the whole, so names stay unique.
  const part = runId.length <= room ? runId : `${runId.slice(0, room - 9)}-${fnv1aHex(runId)}`;
  return `${instance}${part}-`;
}

/**
 * The training job of attempt `attempt` (1, 2, ...) of a run: deterministic, so a second
 * controller pass, or a redeploy, that tries to start the same attempt is refused by SageMaker
 * (names are unique in an account and region) instead of starting a second job.
 */
export function trainingJobName(
  stackName: string,
  stackId: string,
  runId: string,
  attempt: number,
): string {
  if (!Number.isInteger(attempt) || attempt < 1 || attempt > 99) {
    throw new Error(`a run's training job attempt is 1 to 99; got ${attempt}`);
  }
  return `${trainingJobRunPrefix(stackName, stackId, runId)}a${attempt}`;
}

/** The attempt number of a job name of the run, or undefined for any other job. */
export function trainingJobAttempt(
  stackName: string,
  stackId: string,
  runId: string,
  jobName: string,
): number | undefined {
  const prefix = trainingJobRunPrefix(stackName, stackId, runId);
  if (!jobName.startsWith(prefix)) return undefined;
  const match = /^a([1-9][0-9]?)$/.exec(jobName.slice(prefix.length));
  return match ? Number(match[1]) : undefined;
}

/** The run config the controller writes for the trainer of a job (`TUNING_CONFIG`). */
export function jobRunConfigKey(runId: string): string {
  return `${runPrefix(runId)}/sagemaker/run-config.json`;
}

/** Where SageMaker puts a job's `/opt/ml/model` and `/opt/ml/output/data` archives. */
export function jobOutputPrefix(runId: string): string {
  return `${runPrefix(runId)}/sagemaker/output/`;
}

/** SageMaker copies `runs/<run-id>/checkpoints/` here when a job starts (CheckpointConfig). */
export const SAGEMAKER_CHECKPOINT_LOCAL_PATH = '/opt/ml/checkpoints';

/** The log group SageMaker writes every training job's container output to. */
export const SAGEMAKER_TRAINING_LOG_GROUP = '/aws/sagemaker/TrainingJobs';

/**
 * The first word of `/opt/ml/output/failure` as the trainer writes it (contract section 14);
 * SageMaker returns the file's start as the job's FailureReason.
 */
export const FAILURE_MARKERS = {
  badInput: 'bad-input:',
  interrupted: 'interrupted',
  failed: 'failed:',
} as const;

/** Ledger reason of a job the controller stopped because a deploy said `createInstance=false`. */
export const REASON_CREATE_INSTANCE_FALSE = 'create-instance-false';

/** The job settings document (contract section 14): stack -> job controller. */
export interface JobSettingsDocument {
  readonly schemaVersion: number;
  readonly stackName: string;
  readonly region: string;
  readonly runId: string;
  /** `createInstance`: true starts (or keeps) the run's job, false stops it. */
  readonly createJob: boolean;
  /** `<registry>/<repository>:<tag>`; the first job pins it to a digest (ledger `imageUri`). */
  readonly imageUri: string;
  readonly executionRoleArn: string;
  readonly runConfig: unknown;
  readonly dataRootUri: string;
  readonly outputUri: string;
  readonly topicArn: string;
  readonly instanceType: string;
  readonly instanceCount: number;
  readonly volumeSizeGiB: number;
  readonly useSpot: boolean;
  readonly maxRuntimeHours: number;
  readonly maxRunCostUsd: number | null;
  readonly maxRetries: number;
  /**
   * A job whose hosts' GPUs and CPUs stay idle, with no new step, this long is stopped
   * (`stopped-by-safety`, `idle`); null: no idle check.
   */
  readonly idleMinutes: number | null;
  /** On-demand USD per instance-hour of `instanceType` (lib/pricing.ts); null when unknown. */
  readonly usdPerHour: number | null;
}

/** A short stable hash (FNV-1a, 32 bits) as 8 hex digits; no crypto module needed. */
function fnv1aHex(text: string): string {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, '0');
}
