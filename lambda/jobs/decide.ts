/**
 * The job controller's decisions, as plain data in and out: for one run of the SageMaker
 * backend, what its training jobs, its ledger and its settings call for now. No AWS imports;
 * the adapter (handler.ts) gathers the inputs and performs the effects.
 *
 * In this order:
 * 1. a job that ended and that the ledger does not record yet is recorded: completed (with its
 *    final model) or failed, a retry (exit 1 with retries left), `interrupted` when the failure
 *    was SageMaker's (no capacity, an internal error: a later pass resumes; only the trainer's
 *    own failures count towards maxRetries), or how it was stopped;
 * 2. a live job is stopped when the deploy says `createInstance=false`, the operator asked
 *    (`tuning-lab stop`), the run's cost passed `maxRunCostUsd` (billable seconds x the ml price
 *    x the instance count, from SageMaker's own records), it outlived its stopping condition
 *    (SageMaker ends it itself; this is the backstop), or it sat idle for `idleMinutes` (no new
 *    step, and every host's GPUs and CPUs below the EC2 watchdog's thresholds);
 *    A run the deploy no longer asks for (`superseded`: another runId, the SageMaker backend
 *    removed, the stack deleted) is only stopped and recorded, never started;
 * 3. with no live job, the next attempt starts when the deploy asks for a run that has not
 *    ended: never for a completed or failed run, and for a stopped one only after a deploy that
 *    changed its settings (a redeploy of the same settings never starts a second job); never
 *    while the run's recorded cost is at `maxRunCostUsd`, nor while another job of the stack is
 *    live (a quota of one would refuse it), nor while another trainer (an EC2 instance of the
 *    same run) holds the run's lease. A refused start is tried again on later passes
 *    (`startRefused`) unless the request itself is malformed.
 */
import {
  FAILURE_MARKERS,
  REASON_CREATE_INSTANCE_FALSE,
  REASON_OPERATOR,
  type Ledger,
  type MessageStatus,
  type RunStatus,
  type StopRequest,
} from '../../lib/contract';
import { round2 } from '../safety/decide';

/** A training job of the run, from DescribeTrainingJob. */
export interface JobView {
  readonly name: string;
  readonly attempt: number;
  /** InProgress, Completed, Failed, Stopping, Stopped. */
  readonly status: string;
  readonly secondaryStatus?: string;
  readonly failureReason?: string;
  readonly creationTime: Date;
  readonly trainingStartTime?: Date;
  /** When it last entered `Training` (after a managed spot restart, later than the start). */
  readonly trainingSince?: Date;
  readonly trainingEndTime?: Date;
  readonly billableSeconds?: number;
  readonly instanceCount: number;
  /** When managed spot interrupted it (SecondaryStatusTransitions `Interrupted`), oldest first. */
  readonly interruptedAt?: readonly Date[];
}

/** What the settings say about the run (contract section 14). */
export interface RunLimits {
  readonly createJob: boolean;
  readonly maxRuntimeHours: number;
  readonly maxRunCostUsd: number | null;
  readonly maxRetries: number;
  /** The idle check's window; null: none. */
  readonly idleMinutes: number | null;
  readonly useSpot: boolean;
  /** On-demand USD per instance-hour of the job's type; null when unknown. */
  readonly usdPerHour: number | null;
  /** A hash of the settings: a stopped run starts again only after it changed. */
  readonly settingsDigest: string;
}

export interface RunView {
  readonly runId: string;
  readonly limits: RunLimits;
  readonly ledger?: Ledger;
  /** Every job of the run SageMaker lists, in any order. */
  readonly jobs: readonly JobView[];
  /** The operator's stop request, when one is pending (not yet the ledger's `operatorStop`). */
  readonly pendingStop?: StopRequest;
  /** Whether `final/manifest.json` exists; asked only when a completed job is recorded. */
  readonly finalModelPublished?: boolean;
  /**
   * Live jobs of this stack that are not the run's (an earlier run's job, stopping after a
   * runId change): on a quota of one, CreateTrainingJob would be refused while they hold it.
   */
  readonly otherLiveJobs?: readonly string[];
  /**
   * Why the deploy no longer asks for this run (another runId configured, the SageMaker backend
   * removed, the stack deleted): its live job is stopped, its ended jobs are recorded, nothing
   * starts. Undefined for the configured run.
   */
  readonly superseded?: string;
  /** What the live job shows from outside, for the idle check (undefined: not measured). */
  readonly activity?: JobActivity;
  /**
   * Another trainer's hold on the run's lease (contract section 7: an EC2 instance of the same
   * run id after a backend switch): no job starts until it is released or expires.
   */
  readonly leaseHeldBy?: { readonly holder: string; readonly until: string };
}

/** A live job's signs of work, measured over the last `idleMinutes`. */
export interface JobActivity {
  /** When the trainer printed its newest metric line (a step) in this job, if ever. */
  readonly lastStepAt?: Date;
  /** Highest `GPUUtilization` of any host (percent x GPUs); undefined without data. */
  readonly gpuPercent?: number;
  /** Highest `CPUUtilization` of any host (percent x cores); undefined without data. */
  readonly cpuPercent?: number;
  /** The fewest 1-minute data points any host's GPU or CPU series had in the window. */
  readonly samples?: number;
}

/** The EC2 idle watchdog's thresholds (runtime/tuning_runtime/watchdog.py), per host here. */
export const GPU_IDLE_PERCENT = 5;
export const CPU_IDLE_PERCENT = 10;

export type StopCause =
  | 'max-runtime'
  | 'max-cost'
  | 'idle'
  | 'operator'
  | typeof REASON_SUPERSEDED
  | typeof REASON_CREATE_INSTANCE_FALSE;

/** How one ended job goes into the ledger. */
export interface JobOutcome {
  readonly jobName: string;
  /** The run's status afterwards (`running` for a job that is retried). */
  readonly status: RunStatus;
  readonly reason: string | null;
  /** What the trainer's exit means, as the ledger's attempts record it. */
  readonly exitCode: number | null;
  /** The message to send, or null (a retry sends none). */
  readonly message: MessageStatus | null;
  readonly detail: string;
  /** The job's FailureReason, kept as the ledger's last log lines. */
  readonly failureReason?: string;
}

export interface RunDecision {
  /** Ended jobs to record, oldest first. */
  readonly record: readonly JobOutcome[];
  /** A live job to stop, and why. */
  readonly stop?: { readonly jobName: string; readonly cause: StopCause; readonly detail: string };
  /** A live job the ledger does not know yet (started by a pass whose ledger write failed). */
  readonly adopt?: string;
  /** The next attempt to start. */
  readonly start?: { readonly attempt: number; readonly resumed: boolean };
  /** The run ends without a job: the operator's pending request, honoured with nothing live. */
  readonly stopWithoutJob?: boolean;
  /** The run ends without a job: its recorded cost already reached `maxRunCostUsd`. */
  readonly endAtCostCap?: { readonly detail: string };
  /** The run's cost and billable seconds (every job x instances), from SageMaker's records. */
  readonly costUsd?: number;
  readonly billableSeconds: number;
  readonly detail: string;
}

const LIVE = new Set(['InProgress', 'Stopping']);
/** Ended statuses after which a run is over for good: a new run needs a new run id. */
const FINISHED = new Set<string>(['completed', 'failed']);
/** Ended statuses a deploy with changed settings may resume from the newest checkpoint. */
const RESUMABLE = new Set<string>(['stopped-by-safety', 'stopped']);
/** A failure to start is not the trainer's: a deploy with other settings may try again. */
export const REASON_JOB_START_FAILED = 'job-start-failed';
/**
 * SageMaker found the job's set-up at fault (FailureReason `ClientError: ...`: the image, the
 * data or output location, the role): the same request fails again, so it is not retried; a
 * deploy with other settings may try again.
 */
export const REASON_CLIENT_ERROR = 'job-client-error';
/** A deploy (another runId, the backend removed) or `cdk destroy` no longer asks for the run. */
export const REASON_SUPERSEDED = 'superseded';
/** Failures a deploy that changes the settings may try again. */
const RETRIED_AFTER_CHANGE = new Set<string | null | undefined>([
  REASON_JOB_START_FAILED,
  REASON_CLIENT_ERROR,
]);
/** SageMaker had no capacity for the job (FailureReason `CapacityError: ...`). */
export const REASON_CAPACITY = 'capacity';
/** SageMaker's own error, after its own retries (FailureReason `InternalServerError...`). */
export const REASON_SERVICE_ERROR = 'service-error';
/** Statuses a later pass resumes by itself: the failure was SageMaker's, not the trainer's. */
const SERVICE_FAILURES: readonly { prefix: RegExp; reason: string }[] = [
  { prefix: /^\s*CapacityError\b/, reason: REASON_CAPACITY },
  { prefix: /^\s*InternalServerError\b/, reason: REASON_SERVICE_ERROR },
];
/** A refused start is tried again on later passes for this long before the run fails. */
export const START_RETRY_MINUTES = 30;
/** After its stopping condition, SageMaker takes this long to end a job before we do. */
export const STOP_GRACE_SECONDS = 15 * 60;

export function isLiveJob(job: JobView): boolean {
  return LIVE.has(job.status);
}

/** Decide for one run at `now`. */
export function decideRun(view: RunView, now: Date): RunDecision {
  const jobs = [...view.jobs].sort((a, b) => a.attempt - b.attempt);
  const { billableSeconds, costUsd } = runCost(jobs, view.limits, now);
  const costs = { billableSeconds, costUsd };
  const recorded = new Set(
    (view.ledger?.attempts ?? []).filter((a) => a.endedAt).map((a) => a.instanceId),
  );

  const record: JobOutcome[] = [];
  let failuresInARow = 0;
  for (const job of jobs.filter((j) => !isLiveJob(j))) {
    // SageMaker's own failures (capacity, service errors) neither count nor break the row.
    if (job.status === 'Failed' && serviceFailure(job.failureReason) === undefined) {
      failuresInARow = isBadInput(job.failureReason) ? 0 : failuresInARow + 1;
    } else if (job.status !== 'Failed') {
      failuresInARow = 0;
    }
    if (recorded.has(job.name)) continue;
    record.push(outcomeOf(job, view, failuresInARow));
  }
  // The ledger as it will be once the outcomes are recorded.
  const last = record[record.length - 1];
  const status = last?.status ?? view.ledger?.status;
  const reason = last ? last.reason : view.ledger?.reason;

  const live = jobs.find(isLiveJob);
  if (live) {
    const known = (view.ledger?.attempts ?? []).some((a) => a.instanceId === live.name);
    const adopt = known ? undefined : live.name;
    if (live.status === 'Stopping') {
      return { record, adopt, ...costs, detail: `${live.name} is stopping` };
    }
    const stop = stopCause(live, view, costUsd, now);
    return {
      record,
      adopt,
      stop: stop && { jobName: live.name, ...stop },
      ...costs,
      detail: stop ? `stop ${live.name}: ${stop.detail}` : `${live.name} runs within its limits`,
    };
  }

  const ended = status !== undefined && status !== 'running' && status !== 'interrupted';
  if (view.superseded !== undefined) {
    return { record, ...costs, detail: `not the configured run (${view.superseded}): nothing starts` };
  }
  if (view.pendingStop) {
    return {
      record,
      stopWithoutJob: !ended,
      ...costs,
      detail: 'the operator asked the run to stop: no job is started',
    };
  }
  if (!view.limits.createJob) {
    return { record, ...costs, detail: 'createInstance=false: no job is started' };
  }
  if (last?.status === 'interrupted' && last.reason !== REASON_CREATE_INSTANCE_FALSE) {
    return { record, ...costs, detail: `${last.detail}: a later pass starts the next attempt` };
  }
  if (status !== undefined && FINISHED.has(status) && !RETRIED_AFTER_CHANGE.has(reason)) {
    return {
      record,
      ...costs,
      detail: `the run ended (${status}${reason ? `, ${reason}` : ''}): a new run needs a new runId`,
    };
  }
  const seenDigest = view.ledger?.jobSettingsDigest;
  if (ended && status !== undefined && (RESUMABLE.has(status) || RETRIED_AFTER_CHANGE.has(reason))) {
    // A superseded run resumes once a deploy configures it again, whatever its settings (a
    // rolled-back deploy restores the very settings it was stopped under).
    if (seenDigest === view.limits.settingsDigest && reason !== REASON_SUPERSEDED) {
      return {
        record,
        ...costs,
        detail:
          `the run ended (${status}, ${reason ?? '-'}); deploy changed settings (e.g. a raised ` +
          'limit) to resume it',
      };
    }
  }
  const cap = view.limits.maxRunCostUsd;
  if (cap !== null && costUsd !== undefined && costUsd >= cap) {
    const detail = `run cost ~${costUsd.toFixed(2)} USD already reached the cap, ${cap} USD: no job is started`;
    return { record, endAtCostCap: ended ? undefined : { detail }, ...costs, detail };
  }
  const busy = view.otherLiveJobs ?? [];
  if (busy.length > 0) {
    return {
      record,
      ...costs,
      detail: `waiting for ${busy.join(', ')} to end before starting (quota)`,
    };
  }
  if (view.leaseHeldBy) {
    const { holder, until } = view.leaseHeldBy;
    return {
      record,
      ...costs,
      detail: `waiting for ${holder}, which holds the run's lease (to ${until}), before starting`,
    };
  }
  const attempt = (jobs[jobs.length - 1]?.attempt ?? 0) + 1;
  if (attempt > 99) {
    return { record, ...costs, detail: 'the run has had 99 jobs, the most its names allow' };
  }
  return {
    record,
    start: { attempt, resumed: view.ledger !== undefined || jobs.length > 0 },
    ...costs,
    detail: `start attempt ${attempt}`,
  };
}

/** The trainer's words for why it failed, without SageMaker's `AlgorithmError: ` in front. */
export function trainerFailure(failureReason: string | undefined): string {
  return (failureReason ?? '').replace(/^\s*(AlgorithmError|ClientError):\s*/, '').trim();
}

export function isBadInput(failureReason: string | undefined): boolean {
  return trainerFailure(failureReason).startsWith(FAILURE_MARKERS.badInput);
}

/**
 * The reason of a failure that is SageMaker's, not the container's (no capacity, an internal
 * error after its own retries); undefined for the trainer's own (`AlgorithmError: ...`).
 */
export function serviceFailure(failureReason: string | undefined): string | undefined {
  return SERVICE_FAILURES.find((f) => f.prefix.test(failureReason ?? ''))?.reason;
}

function outcomeOf(job: JobView, view: RunView, failuresInARow: number): JobOutcome {
  const base = { jobName: job.name, failureReason: job.failureReason };
  if (job.status === 'Completed') {
    if (view.finalModelPublished === false) {
      return {
        ...base,
        status: 'failed',
        reason: 'final-model-missing',
        exitCode: 0,
        message: 'failed',
        detail: `${job.name} completed without a final model (final/manifest.json)`,
      };
    }
    return {
      ...base,
      status: 'completed',
      reason: 'completed',
      exitCode: 0,
      message: 'completed',
      detail: `${job.name} completed`,
    };
  }
  const serviceReason = job.status === 'Failed' ? serviceFailure(job.failureReason) : undefined;
  if (serviceReason !== undefined) {
    return {
      ...base,
      status: 'interrupted',
      reason: serviceReason,
      exitCode: null,
      message: 'interrupted',
      detail: `${job.name} failed on SageMaker's side (${serviceReason}), not the trainer's`,
    };
  }
  if (job.status === 'Failed') {
    const words = trainerFailure(job.failureReason);
    if (isBadInput(job.failureReason)) {
      return {
        ...base,
        status: 'failed',
        reason: 'bad-input',
        exitCode: 2,
        message: 'failed',
        detail: `${job.name} refused its input: never retried`,
      };
    }
    if (/^\s*ClientError\b/.test(job.failureReason ?? '')) {
      return {
        ...base,
        status: 'failed',
        reason: REASON_CLIENT_ERROR,
        exitCode: null,
        message: 'failed',
        detail:
          `${job.name}: SageMaker found its set-up at fault (image, data, output or role); ` +
          'not retried as it is',
      };
    }
    const exitCode = words.startsWith(FAILURE_MARKERS.interrupted) ? 75 : 1;
    if (failuresInARow <= view.limits.maxRetries) {
      return {
        ...base,
        status: 'running',
        reason: null,
        exitCode,
        message: null,
        detail:
          `${job.name} failed (${failuresInARow} of ${view.limits.maxRetries} retries): the ` +
          'next attempt resumes from the newest checkpoint',
      };
    }
    return {
      ...base,
      status: 'failed',
      reason: 'trainer-failed',
      exitCode,
      message: 'failed',
      detail: `${job.name} failed, ${failuresInARow - 1} retries spent`,
    };
  }
  // Stopped: by us (the ledger says why), by its stopping condition, or by someone else.
  const requested = view.ledger?.stopRequested as
    | { jobName?: string; cause?: StopCause; detail?: string }
    | undefined;
  const why = requested?.jobName === job.name && requested.detail ? `: ${requested.detail}` : '';
  const cause =
    requested?.jobName === job.name
      ? requested.cause
      : job.secondaryStatus === 'MaxRuntimeExceeded' || job.secondaryStatus === 'MaxWaitTimeExceeded'
        ? 'max-runtime'
        : REASON_OPERATOR;
  if (cause === 'max-runtime' || cause === 'max-cost' || cause === 'idle') {
    const limit = { 'max-cost': 'the cost cap', 'max-runtime': 'its runtime limit', idle: 'idle' };
    return {
      ...base,
      status: 'stopped-by-safety',
      reason: cause,
      exitCode: null,
      message: 'stopped-by-safety',
      detail: `${job.name} stopped ${cause === 'idle' ? 'as' : 'at'} ${limit[cause]}${why}`,
    };
  }
  if (cause === REASON_SUPERSEDED) {
    return {
      ...base,
      status: 'stopped',
      reason: REASON_SUPERSEDED,
      exitCode: null,
      message: 'stopped',
      detail: `${job.name} stopped: ${view.superseded ?? 'the deploy no longer asks for the run'}`,
    };
  }
  if (cause === REASON_CREATE_INSTANCE_FALSE) {
    return {
      ...base,
      status: 'interrupted',
      reason: REASON_CREATE_INSTANCE_FALSE,
      exitCode: null,
      message: 'interrupted',
      detail: `${job.name} stopped: the deploy said createInstance=false`,
    };
  }
  return {
    ...base,
    status: 'stopped',
    reason: REASON_OPERATOR,
    exitCode: null,
    message: 'stopped',
    detail: `${job.name} stopped by the operator`,
  };
}

function stopCause(
  job: JobView,
  view: RunView,
  costUsd: number | undefined,
  now: Date,
): { cause: StopCause; detail: string } | undefined {
  const { limits } = view;
  if (view.superseded !== undefined) {
    return { cause: REASON_SUPERSEDED, detail: view.superseded };
  }
  if (!limits.createJob) {
    return { cause: REASON_CREATE_INSTANCE_FALSE, detail: 'the deploy said createInstance=false' };
  }
  if (view.pendingStop) {
    return { cause: REASON_OPERATOR, detail: `operator request ${view.pendingStop.requestId}` };
  }
  const { maxRuntimeSeconds, maxWaitSeconds } = stoppingCondition(limits);
  // Managed spot's MaxWaitTimeInSeconds counts from creation (waiting for capacity included);
  // on demand, MaxRuntimeInSeconds counts from the start of training.
  const since =
    maxWaitSeconds === undefined ? (job.trainingStartTime ?? job.creationTime) : job.creationTime;
  const wallSeconds = (now.getTime() - since.getTime()) / 1000;
  const bound = (maxWaitSeconds ?? maxRuntimeSeconds) + STOP_GRACE_SECONDS;
  if (wallSeconds >= bound) {
    const from = since === job.creationTime ? 'it was created' : 'its training started';
    return {
      cause: 'max-runtime',
      detail:
        `${(wallSeconds / 3600).toFixed(2)} h since ${from}, past its stopping ` +
        `condition (${(bound / 3600).toFixed(2)} h with grace)`,
    };
  }
  if (limits.maxRunCostUsd !== null && costUsd !== undefined && costUsd >= limits.maxRunCostUsd) {
    return {
      cause: 'max-cost',
      detail: `run cost ~${costUsd.toFixed(2)} USD, cap ${limits.maxRunCostUsd} USD`,
    };
  }
  const idle = idleFor(job, limits.idleMinutes, view.activity, now);
  if (idle) return { cause: 'idle', detail: idle };
  return undefined;
}

/**
 * Why the job counts as idle, or undefined: training (not provisioning, downloading or waiting
 * for spot) for at least `minutes`, no new step in them, and every host's GPUs and CPUs below
 * the thresholds throughout. A signal without data, or with data for less than half the
 * window, does not count as idle (unlike on EC2, where the supervisor samples itself):
 * SageMaker's metrics may lag, and a job is not stopped on a guess.
 */
export function idleFor(
  job: JobView,
  minutes: number | null,
  activity: JobActivity | undefined,
  now: Date,
): string | undefined {
  if (minutes === null || !activity || job.secondaryStatus !== 'Training') return undefined;
  const windowStart = now.getTime() - minutes * 60_000;
  // Since it last entered Training: a managed spot restart starts the window again.
  const training = job.trainingSince ?? job.trainingStartTime;
  if (!training || training.getTime() > windowStart) return undefined;
  if (activity.lastStepAt && activity.lastStepAt.getTime() > windowStart) return undefined;
  // SageMaker's metrics for most of the window, not a few points: otherwise, no verdict.
  if ((activity.samples ?? 0) < minutes / 2) return undefined;
  const { gpuPercent, cpuPercent } = activity;
  if (gpuPercent === undefined || gpuPercent >= GPU_IDLE_PERCENT) return undefined;
  if (cpuPercent === undefined || cpuPercent >= CPU_IDLE_PERCENT) return undefined;
  const since = activity.lastStepAt ? `since ${activity.lastStepAt.toISOString()}` : 'yet';
  return (
    `no new step ${since}, and for ${minutes} minutes no host's GPUs passed ` +
    `${GPU_IDLE_PERCENT}% (highest ${gpuPercent}%) nor its CPUs ${CPU_IDLE_PERCENT}% of one core ` +
    `(highest ${cpuPercent}%)`
  );
}

/**
 * A job's stopping condition: `maxRuntimeHours` of training; with managed spot, as long again
 * to wait for spot capacity (MaxWaitTimeInSeconds, which must be >= the runtime and, with a
 * retry strategy, covers every attempt of the job together).
 */
export function stoppingCondition(limits: Pick<RunLimits, 'maxRuntimeHours' | 'useSpot'>): {
  maxRuntimeSeconds: number;
  maxWaitSeconds?: number;
} {
  const maxRuntimeSeconds = Math.round(limits.maxRuntimeHours * 3600);
  return limits.useSpot
    ? { maxRuntimeSeconds, maxWaitSeconds: 2 * maxRuntimeSeconds }
    : { maxRuntimeSeconds };
}

/**
 * What the run's jobs cost: each job's billable seconds (an ended job's BillableTimeInSeconds,
 * which managed spot already reduces; a live job's time since its training started, an upper
 * bound) x the instance count x the on-demand price. Undefined without a price.
 */
export function runCost(
  jobs: readonly JobView[],
  limits: Pick<RunLimits, 'usdPerHour'>,
  now: Date,
): { billableSeconds: number; costUsd?: number } {
  let instanceSeconds = 0;
  for (const job of jobs) instanceSeconds += billableSecondsOf(job, now) * job.instanceCount;
  const billableSeconds = Math.round(instanceSeconds);
  if (limits.usdPerHour === null) return { billableSeconds };
  return { billableSeconds, costUsd: round2((instanceSeconds / 3600) * limits.usdPerHour) };
}

function billableSecondsOf(job: JobView, now: Date): number {
  if (job.billableSeconds !== undefined && !isLiveJob(job)) return job.billableSeconds;
  if (!job.trainingStartTime) return job.billableSeconds ?? 0;
  const end = isLiveJob(job) ? now : (job.trainingEndTime ?? now);
  const elapsed = Math.max(0, (end.getTime() - job.trainingStartTime.getTime()) / 1000);
  return Math.max(elapsed, job.billableSeconds ?? 0);
}


/** A spot interruption as the ledger records it (contract section 4, `interruptions`). */
export interface Interruption {
  readonly instanceId: string;
  readonly at: string;
  readonly action: string;
}

/**
 * The ledger's interruptions with every managed-spot interruption of the run's jobs added (the
 * job restarts itself from the checkpoints; the ledger only records that it happened), or
 * undefined when it already has them all.
 */
export function withInterruptions(
  recorded: readonly Interruption[],
  jobs: readonly JobView[],
): Interruption[] | undefined {
  const known = new Set(recorded.map((i) => `${i.instanceId} ${i.at}`));
  const added = jobs.flatMap((job) =>
    (job.interruptedAt ?? [])
      .map((at) => ({ instanceId: job.name, at: at.toISOString(), action: SPOT_INTERRUPTION }))
      .filter((i) => !known.has(`${i.instanceId} ${i.at}`)),
  );
  return added.length > 0 ? [...recorded, ...added] : undefined;
}

/** The `action` of a managed spot interruption in the ledger (EC2's notices say terminate, stop...). */
export const SPOT_INTERRUPTION = 'spot-interruption';

/**
 * Whether a job may start while the stack is in `status` (its CloudFormation status; undefined
 * when unknown): not while it is being deleted or cleaned up after an update (the job guard may
 * already have stopped the run's jobs for good: `cdk destroy`, a switch to backend=ec2, a new
 * run id), nor while it rolls back, nor once it is gone.
 */
export function mayStartDuring(status: string | undefined): boolean {
  if (status === undefined) return true;
  return !/^DELETE_|_CLEANUP_IN_PROGRESS$|ROLLBACK_IN_PROGRESS$/.test(status);
}

/** Why a start failed, as the ledger keeps it between passes (`lastStartError`). */
export interface StartError {
  readonly message: string;
  readonly firstAt: string;
  readonly at: string;
  readonly passes: number;
}

/**
 * Whether a refused CreateTrainingJob (or an image not pushed yet) is worth another pass:
 * throttling, a role IAM has not propagated yet, a quota another job holds pass by themselves.
 * Only a request SageMaker finds malformed (any other ValidationException) is final.
 */
export function isTemporaryStartError(name: string | undefined, message: string): boolean {
  if (name !== 'ValidationException') return true;
  return /could not assume role|not authorized|access denied/i.test(message);
}

/**
 * A start refused again: the error the ledger keeps, and whether the run gives up now (the
 * request is malformed, or the refusals lasted START_RETRY_MINUTES).
 */
export function startRefused(
  previous: StartError | undefined,
  message: string,
  temporary: boolean,
  now: Date,
): { error: StartError; giveUp: boolean; detail: string } {
  const iso = now.toISOString();
  const firstAt = previous?.firstAt ?? iso;
  const error = { message, firstAt, at: iso, passes: (previous?.passes ?? 0) + 1 };
  const minutes = (now.getTime() - new Date(firstAt).getTime()) / 60_000;
  if (!temporary) {
    return { error, giveUp: true, detail: `SageMaker refused the request: ${message}` };
  }
  if (minutes >= START_RETRY_MINUTES) {
    return {
      error,
      giveUp: true,
      detail:
        `refused on ${error.passes} passes over ${Math.round(minutes)} minutes ` +
        `(limit ${START_RETRY_MINUTES}): ${message}`,
    };
  }
  return {
    error,
    giveUp: false,
    detail: `refused (pass ${error.passes}, tried again next pass): ${message}`,
  };
}
