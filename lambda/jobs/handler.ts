/**
 * The job controller (SageMaker backend): every 5 minutes, and at every state change of one of
 * this stack's training jobs (EventBridge), it brings the configured run's jobs in line with its
 * settings: starts the next attempt, stops a job past its limits (idleness included), records
 * how each job ended in the run's ledger and sends one message per outcome, holds the run's
 * lease for its live job, publishes its progress, and stops and records the jobs of runs the
 * deploy no longer asks for (contract sections 4, 5, 7, 11, 12 and 14). As the job guard (a
 * CloudFormation custom resource) it does the last of these when a deploy changes the run or
 * removes the backend, and waits for those jobs to end.
 *
 * Thin adapter: reads the job settings (SSM), the run's jobs (ListTrainingJobs,
 * DescribeTrainingJob), ledger, lease and stop request, the job's log lines and host metrics,
 * asks the pure cores (decide.ts, progress.ts), then performs its effects. Either trigger runs the same whole pass, so a lost event costs at most one
 * schedule period. Every pass is idempotent: job names are deterministic (SageMaker refuses a
 * second job of the same attempt), ledger writes are conditional and each outcome is recorded
 * (and messaged) once. A failed step does not stop the others; the pass throws at the end so
 * the invocation's failure reaches the alerts topic.
 */
import { createHash } from 'node:crypto';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import { DescribeImagesCommand, ECRClient } from '@aws-sdk/client-ecr';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  CreateTrainingJobCommand,
  DescribeTrainingJobCommand,
  paginateListTrainingJobs,
  SageMakerClient,
  StopTrainingJobCommand,
} from '@aws-sdk/client-sagemaker';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import {
  finalPrefix,
  jobRunConfigKey,
  ledgerKey,
  MANIFEST_NAME,
  REASON_OPERATOR,
  SAGEMAKER_TRAINING_LOG_GROUP,
  SCHEMA_VERSION,
  stopRequestKey,
  runPrefix,
  trainingJobAttempt,
  trainingJobName,
  trainingJobStackPrefix,
  type JobSettingsDocument,
  type Ledger,
  type MessageStatus,
  type StopRequest,
} from '../../lib/contract';
import { attempt, errorMessage, keepRunMessage, publishRunMessage } from '../safety/effects';
import { formatRunMessage, messageRecord, type RunMessage } from '../safety/report';
import { readJson, updateJson, type Stored } from '../safety/store';
import {
  decideRun,
  isLiveJob,
  isTemporaryStartError,
  mayStartDuring,
  REASON_CAPACITY,
  REASON_JOB_START_FAILED,
  REASON_SERVICE_ERROR,
  REASON_SUPERSEDED,
  startRefused,
  withInterruptions,
  type JobActivity,
  type JobOutcome,
  type JobView,
  type RunDecision,
  type StopCause,
} from './decide';
import { readJobsEnv, type JobsEnv } from './env';
import { TRAINER_ENV, trainingJobRequest } from './request';
import {
  holdLease,
  otherHolder,
  readLease,
  releaseLease,
  type LeaseDocument,
} from './lease';
import { hostActivity, publishJobProgress, type HostActivity } from './watch';

export interface JobsClients {
  readonly sagemaker: SageMakerClient;
  readonly s3: S3Client;
  readonly sns: SNSClient;
  readonly ssm: SSMClient;
  readonly ecr: ECRClient;
  readonly logs: CloudWatchLogsClient;
  readonly cloudwatch: CloudWatchClient;
  readonly cloudformation: CloudFormationClient;
}

export interface JobsReport {
  readonly runId?: string;
  readonly detail: string;
  readonly recorded: string[];
  readonly started?: string;
  readonly stopped: string[];
  readonly failures: string[];
}

/** One pass of the controller at `now`; throws after acting if any step failed. */
export async function controlJobs(
  clients: JobsClients,
  env: JobsEnv,
  now: Date,
): Promise<JobsReport> {
  const failures: string[] = [];
  const settings = await readSettings(clients.ssm, env.jobSettingsParameter);
  const stackJobs = await listStackJobs(clients.sagemaker, env.stackName);

  // Jobs of any other run (an earlier runId, an earlier deployment of the stack): stopped, and
  // recorded in their own run's ledger as they end.
  const others = await settleOtherRuns(
    clients,
    env,
    stackJobs,
    settings?.runId,
    settings ? `the deploy configured ${settings.runId} instead` : 'the deploy configures no run',
    now,
    failures,
  );
  const stopped = [...others.stopped];
  if (!settings) {
    return finish({ detail: 'no run configured', recorded: others.recorded, stopped, failures });
  }

  const runId = settings.runId;
  const jobs: JobView[] = [];
  for (const summary of stackJobs) {
    const attemptNo = trainingJobAttempt(env.stackName, env.stackId, runId, summary.name);
    if (attemptNo === undefined) continue;
    const described = await clients.sagemaker.send(
      new DescribeTrainingJobCommand({ TrainingJobName: summary.name }),
    );
    jobs.push(jobView(summary.name, attemptNo, described));
  }
  // An unreadable ledger (S3 failing, a broken object) must not keep a job past its limits: the
  // pass then only stops (runtime, cost, idle, createInstance=false), from SageMaker's records.
  let ledger: Ledger | undefined;
  let ledgerUnreadable = false;
  try {
    ledger = (await readJson<Ledger>(clients.s3, env.outputsBucket, ledgerKey(runId))).value;
  } catch (error) {
    ledgerUnreadable = true;
    failures.push(`reading the ledger failed (this pass only stops): ${errorMessage(error)}`);
  }
  let request: StopRequest | undefined;
  await attempt(failures, 'reading the stop request', async () => {
    request = (await readJson<StopRequest>(clients.s3, env.outputsBucket, stopRequestKey(runId)))
      .value;
  });
  const pendingStop = isPending(request, ledger, ledgerUnreadable, jobs);
  const finalModelPublished = await finalModelState(clients, env, runId, ledger, jobs);
  const isOwn = jobOfRun(env, runId);
  let leaseHeldBy: { holder: string; until: string } | undefined;
  let lease: Stored<LeaseDocument> | undefined;
  try {
    lease = await readLease(clients.s3, env.outputsBucket, runId);
    leaseHeldBy = otherHolder(lease.value, isOwn, now);
  } catch (error) {
    // Not knowing who holds the run, nothing starts this pass.
    leaseHeldBy = { holder: 'an unknown holder (the lease could not be read)', until: '?' };
    failures.push(`reading the lease failed: ${errorMessage(error)}`);
  }
  const digest = settingsDigest(settings);
  const idleMinutes = settings.idleMinutes ?? null; // settings from before the idle check: none
  const activity = await watchNewestJob(clients, env, settings, idleMinutes, jobs, now, failures);
  // Every live job of the stack but the run's, the ones this pass just asked to stop included.
  const otherLiveJobs = stackJobs
    .filter((j) => LIVE_STATUSES.has(j.status) && !isOwn(j.name))
    .map((j) => j.name);

  const decided = decideRun(
    {
      runId,
      limits: { ...settings, idleMinutes, settingsDigest: digest },
      ledger,
      jobs,
      pendingStop,
      finalModelPublished,
      otherLiveJobs,
      activity,
      leaseHeldBy,
    },
    now,
  );
  const decision: RunDecision = ledgerUnreadable
    ? { ...decided, record: [], adopt: undefined, start: undefined, stopWithoutJob: false, endAtCostCap: undefined }
    : decided;

  const ctx: PassContext = { clients, env, settings, digest, decision, jobs, now, failures };
  const recorded: string[] = [...others.recorded];
  for (const outcome of decision.record) {
    await attempt(failures, `recording ${outcome.jobName}`, async () => {
      await recordOutcome(ctx, outcome, pendingStop);
      recorded.push(outcome.jobName);
    });
  }
  if (decision.stopWithoutJob && pendingStop) {
    await attempt(failures, 'ending the run at the operator request', () =>
      endWithoutJob(ctx, pendingStop),
    );
  }
  if (decision.endAtCostCap) {
    const { detail } = decision.endAtCostCap;
    await attempt(failures, 'ending the run at the cost cap', () => endAtCostCap(ctx, detail));
  }
  if (decision.adopt) {
    const name = decision.adopt;
    await attempt(failures, `recording ${name} as running`, () =>
      beginAttempt(ctx, name, jobs.length > 1 || ledger !== undefined),
    );
  }
  if (decision.stop) {
    const stop = decision.stop;
    const { jobName } = stop;
    await attempt(failures, `stopping ${jobName}`, async () => {
      await requestStop(ctx, stop, pendingStop);
      stopped.push(jobName);
    });
  }
  let started: string | undefined;
  if (decision.start) {
    const { attempt: number, resumed } = decision.start;
    const name = trainingJobName(env.stackName, env.stackId, runId, number);
    await attempt(failures, `starting ${name}`, async () => {
      if (await startJob(ctx, name, ledger, resumed)) started = name;
    });
  }
  // The run's lease: held while one of its jobs is live (or just started), released after. The
  // read of the pass's start is written on (a start that took the lease since makes it re-read).
  const live = jobs.find(isLiveJob)?.name ?? started;
  if (!ledgerUnreadable) {
    await attempt(failures, live ? `renewing the lease for ${live}` : 'releasing the lease', () =>
      live
        ? holdLease(clients.s3, env.outputsBucket, runId, live, isOwn, now, lease)
        : releaseLease(clients.s3, env.outputsBucket, runId, isOwn, now, lease),
    );
  }
  // What every write adds anyway: the settings seen, managed spot's interruptions.
  if (
    ledger &&
    (ledger.jobSettingsDigest !== digest || withInterruptions(ledger.interruptions ?? [], jobs))
  ) {
    await attempt(failures, 'noting the settings and interruptions seen', () =>
      updateLedger(ctx, (current) => current),
    );
  }
  return finish({ runId, detail: decision.detail, recorded, started, stopped, failures });
}

/**
 * The operator's stop request, unless the ledger says it was honoured. Without a readable
 * ledger, only a request made after the newest job was created counts: an old, honoured one is
 * never deleted, and must not stop a resumed run.
 */
function isPending(
  request: StopRequest | undefined,
  ledger: Ledger | undefined,
  ledgerUnreadable: boolean,
  jobs: readonly JobView[],
): StopRequest | undefined {
  if (!request || request.requestId === ledger?.operatorStop?.requestId) return undefined;
  if (!ledgerUnreadable) return request;
  const newest = Math.max(0, ...jobs.map((j) => j.creationTime.getTime()));
  return Date.parse(request.requestedAt) > newest ? request : undefined;
}

/** A job's lines are still read this long after it ended (its last ones arrive late). */
const PROGRESS_AFTER_END_MS = 3600_000;

/**
 * The run's newest job, watched from outside: its progress published for `status` (while it
 * runs, and for an hour after), and, while it trains, what the idle check needs. Neither stops
 * the pass when it fails.
 */
async function watchNewestJob(
  clients: JobsClients,
  env: JobsEnv,
  settings: JobSettingsDocument,
  idleMinutes: number | null,
  jobs: readonly JobView[],
  now: Date,
  failures: string[],
): Promise<JobActivity | undefined> {
  const newest = [...jobs].sort((a, b) => b.attempt - a.attempt)[0];
  if (!newest) return undefined;
  const ended = newest.trainingEndTime?.getTime();
  if (!isLiveJob(newest) && (ended === undefined || now.getTime() - ended > PROGRESS_AFTER_END_MS)) {
    return undefined;
  }
  let lastStepAt: Date | undefined;
  let read = false;
  await attempt(failures, `publishing the progress of ${newest.name}`, async () => {
    ({ lastStepAt } = await publishJobProgress(clients, env.outputsBucket, settings.runId, newest, now));
    read = true;
  });
  // Without its steps (the read failed) the job is not judged idle.
  if (!read || idleMinutes === null || newest.status !== 'InProgress' || newest.secondaryStatus !== 'Training') {
    return undefined;
  }
  const started = (newest.trainingSince ?? newest.trainingStartTime)?.getTime() ?? now.getTime();
  if (now.getTime() - started < idleMinutes * 60_000) return undefined; // too early to tell
  let hosts: HostActivity | undefined;
  await attempt(failures, `reading the host metrics of ${newest.name}`, async () => {
    hosts = await hostActivity(clients.cloudwatch, newest, idleMinutes, now);
  });
  return hosts && { lastStepAt, ...hosts };
}

interface PassContext {
  readonly clients: JobsClients;
  readonly env: JobsEnv;
  readonly settings: JobSettingsDocument;
  readonly digest: string;
  readonly decision: RunDecision;
  /** The run's jobs as this pass described them. */
  readonly jobs: readonly JobView[];
  readonly now: Date;
  readonly failures: string[];
}

function finish(report: JobsReport): JobsReport {
  console.log(JSON.stringify({ message: 'job controller', ...report }));
  if (report.failures.length > 0) {
    throw new Error(
      `job controller: ${report.failures.length} step(s) failed: ${report.failures.join(' | ')}`,
    );
  }
  return report;
}

async function readSettings(
  ssm: SSMClient,
  name: string,
): Promise<JobSettingsDocument | undefined> {
  try {
    const found = await ssm.send(new GetParameterCommand({ Name: name }));
    return JSON.parse(found.Parameter?.Value ?? '') as JobSettingsDocument;
  } catch (error) {
    if ((error as { name?: string }).name === 'ParameterNotFound') return undefined;
    throw error;
  }
}

/** The settings' hash: a stopped run starts again only after a deploy changed it. */
export function settingsDigest(settings: JobSettingsDocument): string {
  return createHash('sha256').update(JSON.stringify(settings)).digest('hex').slice(0, 16);
}

/** A training job of the stack as ListTrainingJobs summarizes it. */
interface JobSummary {
  readonly name: string;
  readonly status: string;
  readonly modifiedAt: Date;
}

const LIVE_STATUSES = new Set(['InProgress', 'Stopping']);

async function listStackJobs(sagemaker: SageMakerClient, stackName: string): Promise<JobSummary[]> {
  const prefix = trainingJobStackPrefix(stackName);
  const found: JobSummary[] = [];
  for await (const page of paginateListTrainingJobs(
    { client: sagemaker, pageSize: 100 },
    { NameContains: prefix },
  )) {
    for (const job of page.TrainingJobSummaries ?? []) {
      if (job.TrainingJobName?.startsWith(prefix)) {
        found.push({
          name: job.TrainingJobName,
          status: job.TrainingJobStatus ?? 'unknown',
          modifiedAt: job.LastModifiedTime ?? job.TrainingEndTime ?? job.CreationTime ?? new Date(0),
        });
      }
    }
  }
  return found;
}

/** An ended job of another run is looked at for this long after it changed last. */
const SETTLE_HOURS = 24;

/** What settling the other runs did, and which of their jobs are still live. */
export interface Settled {
  readonly stopped: string[];
  readonly recorded: string[];
  readonly live: string[];
}

/**
 * Every job of the stack that is not `keepRunId`'s in this deployment: a live one is stopped
 * (`superseded`, with `why`), and each one that ended is recorded in its own run's ledger, with
 * one message, as the controller records its own run's jobs. Runs are told apart by the name
 * prefix of their jobs (a run of an earlier deployment of the stack has its own).
 */
export async function settleOtherRuns(
  clients: JobsClients,
  env: JobsEnv,
  stackJobs: readonly JobSummary[],
  keepRunId: string | undefined,
  why: string,
  now: Date,
  failures: string[],
): Promise<Settled> {
  const settled: Settled = { stopped: [], recorded: [], live: [] };
  const isKept = keepRunId === undefined ? () => false : jobOfRun(env, keepRunId);
  const recent = now.getTime() - SETTLE_HOURS * 3600_000;
  const groups = new Set(
    stackJobs
      .filter((j) => !isKept(j.name))
      .filter((j) => LIVE_STATUSES.has(j.status) || j.modifiedAt.getTime() >= recent)
      .map((j) => runGroupOf(j.name)),
  );
  for (const group of groups) {
    await attempt(failures, `settling the jobs ${group}*`, async () => {
      const members = stackJobs.filter((j) => runGroupOf(j.name) === group);
      const described = await Promise.all(
        members.map((j) =>
          clients.sagemaker.send(new DescribeTrainingJobCommand({ TrainingJobName: j.name })),
        ),
      );
      const runId = runIdOfJob(env, described[0]);
      const jobs = members.map((j, i) =>
        jobView(j.name, Number(/a([0-9]+)$/.exec(j.name)?.[1] ?? 0), described[i]),
      );
      const live = jobs.filter(isLiveJob);
      // A run's ledger is recorded only by the deployment that configures it, and only while
      // it is these jobs' (not an EC2 instance's after a backend switch); otherwise, and when
      // the ledger cannot be read, the live jobs are only stopped.
      let ledger: Ledger | undefined;
      if (runId !== undefined && runId !== keepRunId) {
        try {
          ledger = (await readJson<Ledger>(clients.s3, env.outputsBucket, ledgerKey(runId))).value;
        } catch (error) {
          failures.push(
            `reading the ledger of ${runId} failed (its jobs are only stopped): ${errorMessage(error)}`,
          );
        }
      }
      const ours =
        ledger?.backend === 'sagemaker' && members.some((j) => j.name === ledger?.instanceId);
      if (ledger === undefined || runId === undefined || !ours) {
        for (const job of live.filter((j) => j.status === 'InProgress')) {
          await clients.sagemaker.send(new StopTrainingJobCommand({ TrainingJobName: job.name }));
          settled.stopped.push(job.name);
        }
        settled.live.push(...live.map((j) => j.name));
        return;
      }
      const settings = settingsOfJob(env, runId, described[0], ledger);
      const finalModelPublished = await finalModelState(clients, env, runId, ledger, jobs);
      const seen = ledger.jobSettingsDigest;
      const limits = { ...settings, settingsDigest: typeof seen === 'string' ? seen : '' };
      const decision = decideRun(
        { runId, limits, ledger, jobs, finalModelPublished, superseded: why },
        now,
      );
      const ctx: PassContext = {
        clients,
        env,
        settings,
        digest: limits.settingsDigest,
        decision,
        jobs,
        now,
        failures,
      };
      for (const outcome of decision.record) {
        await recordOutcome(ctx, outcome, undefined);
        settled.recorded.push(outcome.jobName);
      }
      if (decision.stop) {
        await requestStop(ctx, decision.stop, undefined);
        settled.stopped.push(decision.stop.jobName);
      }
      // Its jobs have ended: the run is free for whoever trains it next (an EC2 instance).
      if (live.length === 0) {
        const isOwn = (holder: string) => runGroupOf(holder) === group;
        await releaseLease(clients.s3, env.outputsBucket, runId, isOwn, now);
      }
      settled.live.push(...live.map((j) => j.name));
    });
  }
  return settled;
}

/** Whether a name is one of `runId`'s jobs in this deployment of the stack (started or not). */
function jobOfRun(env: JobsEnv, runId: string): (name: string) => boolean {
  return (name) => trainingJobAttempt(env.stackName, env.stackId, runId, name) !== undefined;
}

/**
 * Whether the run's final manifest exists; asked only when a completed job is not recorded in
 * the ledger yet (undefined otherwise).
 */
async function finalModelState(
  clients: JobsClients,
  env: JobsEnv,
  runId: string,
  ledger: Ledger | undefined,
  jobs: readonly JobView[],
): Promise<boolean | undefined> {
  const recorded = new Set(
    (ledger?.attempts ?? []).filter((a) => a.endedAt).map((a) => a.instanceId),
  );
  if (!jobs.some((j) => j.status === 'Completed' && !recorded.has(j.name))) return undefined;
  const key = `${finalPrefix(runId)}${MANIFEST_NAME}`;
  return (await readJson(clients.s3, env.outputsBucket, key)).value !== undefined;
}

/** The jobs of one run of one deployment share their name up to the attempt (`...-a<N>`). */
function runGroupOf(jobName: string): string {
  return jobName.replace(/a[0-9]+$/, '');
}

/** The run a job trains, from the output location it was given, when it is this stack's bucket. */
function runIdOfJob(
  env: JobsEnv,
  described: { Environment?: Record<string, string> },
): string | undefined {
  const uri = described.Environment?.[TRAINER_ENV.outputUri] ?? '';
  const match = /^s3:\/\/([^/]+)\/(.+?)\/*$/.exec(uri);
  if (!match || match[1] !== env.outputsBucket) return undefined;
  const runId = match[2].replace(/^runs\//, '');
  return runPrefix(runId) === match[2] ? runId : undefined;
}

/**
 * The job settings of a run the deploy no longer configures, as far as recording its jobs
 * needs them: what the job itself was started with, and the ledger's price.
 */
function settingsOfJob(
  env: JobsEnv,
  runId: string,
  described: {
    RoleArn?: string;
    AlgorithmSpecification?: { TrainingImage?: string };
    ResourceConfig?: { InstanceType?: string; InstanceCount?: number; VolumeSizeInGB?: number };
    EnableManagedSpotTraining?: boolean;
    Environment?: Record<string, string>;
  },
  ledger: Ledger,
): JobSettingsDocument {
  const price = (ledger.attempts ?? []).find((a) => typeof a.usdPerHour === 'number')?.usdPerHour;
  return {
    schemaVersion: SCHEMA_VERSION,
    stackName: env.stackName,
    region: env.region,
    runId,
    createJob: false,
    imageUri: described.AlgorithmSpecification?.TrainingImage ?? '',
    executionRoleArn: described.RoleArn ?? '',
    runConfig: {},
    dataRootUri: described.Environment?.[TRAINER_ENV.dataRoot] ?? '',
    outputUri: described.Environment?.[TRAINER_ENV.outputUri] ?? '',
    topicArn: env.topicArn,
    instanceType: described.ResourceConfig?.InstanceType ?? ledger.instanceType ?? 'unknown',
    instanceCount: described.ResourceConfig?.InstanceCount ?? 1,
    volumeSizeGiB: described.ResourceConfig?.VolumeSizeInGB ?? 0,
    useSpot: described.EnableManagedSpotTraining ?? false,
    maxRuntimeHours: 0,
    maxRunCostUsd: null,
    maxRetries: 0,
    idleMinutes: null,
    usdPerHour: typeof price === 'number' ? price : null,
  };
}

function jobView(
  name: string,
  attemptNo: number,
  described: {
    TrainingJobStatus?: string;
    SecondaryStatus?: string;
    FailureReason?: string;
    CreationTime?: Date;
    TrainingStartTime?: Date;
    TrainingEndTime?: Date;
    BillableTimeInSeconds?: number;
    ResourceConfig?: { InstanceCount?: number };
    SecondaryStatusTransitions?: { Status?: string; StartTime?: Date }[];
  },
): JobView {
  return {
    name,
    attempt: attemptNo,
    status: described.TrainingJobStatus ?? 'unknown',
    secondaryStatus: described.SecondaryStatus,
    failureReason: described.FailureReason,
    creationTime: described.CreationTime ?? new Date(0),
    trainingStartTime: described.TrainingStartTime,
    trainingSince: (described.SecondaryStatusTransitions ?? [])
      .filter((t) => t.Status === 'Training' && t.StartTime)
      .map((t) => t.StartTime as Date)
      .sort((a, b) => b.getTime() - a.getTime())[0],
    trainingEndTime: described.TrainingEndTime,
    billableSeconds: described.BillableTimeInSeconds,
    instanceCount: described.ResourceConfig?.InstanceCount ?? 1,
    interruptedAt: (described.SecondaryStatusTransitions ?? [])
      .filter((t) => t.Status === 'Interrupted' && t.StartTime)
      .map((t) => t.StartTime as Date),
  };
}

/** Update the ledger conditionally; returns whether this call changed it. */
async function updateLedger(
  ctx: PassContext,
  change: (current: Ledger) => Ledger | undefined,
): Promise<{ changed: boolean; ledger?: Ledger }> {
  const { clients, env, settings } = ctx;
  const key = ledgerKey(settings.runId);
  const stored = await readJson<Ledger>(clients.s3, env.outputsBucket, key);
  let changed = false;
  const written = await updateJson<Ledger>(clients.s3, env.outputsBucket, key, stored, (current) => {
    const next = change(current ?? newLedger(ctx));
    changed = next !== undefined;
    return next && {
      ...next,
      interruptions: withInterruptions(next.interruptions ?? [], ctx.jobs) ?? next.interruptions,
      billableSeconds: ctx.decision.billableSeconds,
      estimatedCostUsd: ctx.decision.costUsd ?? next.estimatedCostUsd,
      jobSettingsDigest: ctx.digest,
    };
  });
  return { changed, ledger: written.value };
}

function newLedger(ctx: PassContext): Ledger {
  const { settings } = ctx;
  return {
    schemaVersion: SCHEMA_VERSION,
    runId: settings.runId,
    status: 'running',
    reason: null,
    backend: 'sagemaker',
    instanceId: undefined,
    instanceType: settings.instanceType,
    instanceCount: settings.instanceCount,
    market: settings.useSpot ? 'spot' : 'on-demand',
    startedAt: undefined,
    endedAt: null,
    billableSeconds: 0,
    estimatedCostUsd: 0,
    attempts: [],
    interruptions: [],
    lastStep: null,
    imageUri: null,
    finalModelUri: null,
    logsUri: null,
  };
}

async function beginAttempt(ctx: PassContext, jobName: string, resumed: boolean, imageUri?: string) {
  const iso = ctx.now.toISOString();
  const { changed, ledger } = await updateLedger(ctx, (current) => {
    if ((current.attempts ?? []).some((a) => a.instanceId === jobName)) return undefined;
    return {
      ...current,
      status: 'running',
      reason: null,
      endedAt: null,
      lastLogLines: undefined,
      lastStartError: undefined,
      // A ledger this controller adopts is a SageMaker run's: `tuning-lab stop` reads this.
      backend: 'sagemaker',
      instanceId: jobName,
      instanceType: ctx.settings.instanceType,
      instanceCount: ctx.settings.instanceCount,
      market: ctx.settings.useSpot ? 'spot' : 'on-demand',
      startedAt: current.startedAt ?? iso,
      imageUri: current.imageUri ?? imageUri ?? null,
      attempts: [
        ...(current.attempts ?? []),
        {
          instanceId: jobName,
          instanceType: ctx.settings.instanceType,
          market: ctx.settings.useSpot ? 'spot' : 'on-demand',
          startedAt: iso,
          endedAt: null,
          exitCode: null,
          usdPerHour: ctx.settings.usdPerHour,
        },
      ],
    };
  });
  if (changed && ledger) {
    await send(ctx, ledger, resumed ? 'resumed' : 'started', null, jobName);
  }
}

async function recordOutcome(
  ctx: PassContext,
  outcome: JobOutcome,
  pendingStop: StopRequest | undefined,
): Promise<void> {
  const iso = ctx.now.toISOString();
  const { changed, ledger } = await updateLedger(ctx, (current) => {
    const attempts = [...(current.attempts ?? [])];
    const index = attempts.findIndex((a) => a.instanceId === outcome.jobName);
    if (index >= 0 && attempts[index].endedAt) return undefined; // recorded already
    const ended = { endedAt: iso, exitCode: outcome.exitCode };
    if (index >= 0) attempts[index] = { ...attempts[index], ...ended };
    else attempts.push({ instanceId: outcome.jobName, instanceType: ctx.settings.instanceType, ...ended });
    // A run a newer attempt already took over keeps its status: only the attempt is closed.
    const superseded = current.instanceId !== undefined && current.instanceId !== outcome.jobName;
    if (superseded) return { ...current, attempts };
    const endsRun = outcome.status !== 'running' && outcome.status !== 'interrupted';
    const operatorStop =
      outcome.reason === REASON_OPERATOR && pendingStop ? pendingStop : current.operatorStop;
    return {
      ...current,
      attempts,
      status: outcome.status,
      reason: outcome.reason,
      endedAt: endsRun ? iso : null,
      operatorStop,
      stopRequested: undefined,
      ...(outcome.status === 'completed'
        ? { finalModelUri: `${ctx.settings.outputUri.replace(/\/+$/, '')}/final/` }
        : {}),
      ...(outcome.failureReason && outcome.status !== 'completed'
        ? { lastLogLines: outcome.failureReason.split('\n') }
        : {}),
    };
  });
  if (changed && ledger && outcome.message && ledger.status === outcome.status) {
    await send(ctx, ledger, outcome.message, outcome.reason, outcome.jobName, outcome.detail);
  }
}

async function endWithoutJob(ctx: PassContext, request: StopRequest): Promise<void> {
  const { changed, ledger } = await updateLedger(ctx, (current) => {
    if (current.operatorStop?.requestId === request.requestId) return undefined;
    return {
      ...current,
      status: 'stopped',
      reason: REASON_OPERATOR,
      endedAt: ctx.now.toISOString(),
      operatorStop: request,
    };
  });
  if (changed && ledger) await send(ctx, ledger, 'stopped', REASON_OPERATOR, '-', 'no job was running');
}

async function endAtCostCap(ctx: PassContext, detail: string): Promise<void> {
  const { changed, ledger } = await updateLedger(ctx, (current) => {
    if (current.status !== 'running' && current.status !== 'interrupted') return undefined;
    return { ...current, status: 'stopped-by-safety', reason: 'max-cost', endedAt: ctx.now.toISOString() };
  });
  if (changed && ledger) await send(ctx, ledger, 'stopped-by-safety', 'max-cost', '-', detail);
}

async function requestStop(
  ctx: PassContext,
  stop: { jobName: string; cause: StopCause; detail: string },
  pendingStop: StopRequest | undefined,
): Promise<void> {
  const { jobName, cause, detail } = stop;
  // The ledger says why first, so the pass that records the Stopped job knows; the job is
  // stopped even when that write fails (the outcome is then recorded as the operator's).
  await attempt(ctx.failures, `noting why ${jobName} stops`, () =>
    updateLedger(ctx, (current) => ({
      ...current,
      stopRequested: {
        jobName,
        cause,
        detail,
        at: ctx.now.toISOString(),
        ...(cause === REASON_OPERATOR && pendingStop ? { requestId: pendingStop.requestId } : {}),
      },
    })),
  );
  await ctx.clients.sagemaker.send(new StopTrainingJobCommand({ TrainingJobName: jobName }));
}

/** Start the job; false when it already existed (another pass or deploy started it). */
async function startJob(
  ctx: PassContext,
  jobName: string,
  ledger: Ledger | undefined,
  resumed: boolean,
): Promise<boolean> {
  const { clients, env, settings } = ctx;
  let imageUri: string;
  try {
    imageUri = ledger?.imageUri ?? (await pinImage(clients.ecr, settings.imageUri));
  } catch (error) {
    // Most often the image is not pushed yet: a later pass finds it.
    const why = `the image ${settings.imageUri} was not found: ${errorMessage(error)}`;
    await startFailed(ctx, jobName, why, true);
    return false;
  }
  // JSON is YAML: the trainer reads this with its YAML loader (`TUNING_CONFIG`).
  await clients.s3.send(
    new PutObjectCommand({
      Bucket: env.outputsBucket,
      Key: jobRunConfigKey(settings.runId),
      Body: `${JSON.stringify(settings.runConfig, null, 2)}\n`,
      ContentType: 'application/json',
    }),
  );
  const request = trainingJobRequest({ settings, jobName, outputsBucket: env.outputsBucket, imageUri });
  const status = await stackStatus(clients.cloudformation, env.stackId);
  if (!mayStartDuring(status)) {
    console.log(JSON.stringify({ message: `the stack is ${status}: not starting`, jobName }));
    return false;
  }
  // The lease first, so an instance of the same run that races for it cannot train alongside.
  const isOwn = jobOfRun(env, settings.runId);
  if (!(await holdLease(clients.s3, env.outputsBucket, settings.runId, jobName, isOwn, ctx.now))) {
    console.log(JSON.stringify({ message: 'lease taken by another trainer; not starting', jobName }));
    return false;
  }
  try {
    await clients.sagemaker.send(new CreateTrainingJobCommand(request));
  } catch (error) {
    // A job of that name exists: another pass started this attempt (SageMaker keeps names
    // unique in an account and region), so nothing more is started.
    if (await jobExists(clients.sagemaker, jobName)) return false;
    const name = (error as { name?: string }).name;
    const text = error instanceof Error ? error.message : String(error);
    await startFailed(ctx, jobName, `${name ?? 'Error'}: ${text}`, isTemporaryStartError(name, text));
    return false;
  }
  await beginAttempt(ctx, jobName, resumed, imageUri);
  return true;
}

async function jobExists(sagemaker: SageMakerClient, jobName: string): Promise<boolean> {
  try {
    await sagemaker.send(new DescribeTrainingJobCommand({ TrainingJobName: jobName }));
    return true;
  } catch {
    return false;
  }
}

/**
 * The job could not start. A temporary cause (throttling, a role not yet usable, a quota held,
 * an image not pushed yet) is kept in the ledger and tried again next pass; a malformed request,
 * or refusals past START_RETRY_MINUTES, fail the run until a deploy changes its settings.
 */
async function startFailed(
  ctx: PassContext,
  jobName: string,
  why: string,
  temporary: boolean,
): Promise<void> {
  let outcome: ReturnType<typeof startRefused> | undefined;
  const { changed, ledger } = await updateLedger(ctx, (current) => {
    outcome = startRefused(current.lastStartError ?? undefined, why, temporary, ctx.now);
    const { error, giveUp, detail } = outcome;
    if (!giveUp) return { ...current, lastStartError: error };
    return {
      ...current,
      status: 'failed',
      reason: REASON_JOB_START_FAILED,
      endedAt: ctx.now.toISOString(),
      lastStartError: error,
      lastLogLines: [detail],
    };
  });
  console.log(JSON.stringify({ message: 'start refused', jobName, ...outcome }));
  if (changed && ledger && outcome?.giveUp) {
    await send(ctx, ledger, 'failed', REASON_JOB_START_FAILED, jobName, outcome.detail);
  }
}

/** The stack's CloudFormation status, or undefined when it cannot be told. */
async function stackStatus(
  cloudformation: CloudFormationClient,
  stackId: string,
): Promise<string | undefined> {
  try {
    const found = await cloudformation.send(new DescribeStacksCommand({ StackName: stackId }));
    return found.Stacks?.[0]?.StackStatus;
  } catch (error) {
    console.log(JSON.stringify({ message: 'stack status unknown', error: errorMessage(error) }));
    return undefined;
  }
}

/** The tag's image as `<registry>/<repository>@sha256:...`, so every attempt runs the same. */
async function pinImage(ecr: ECRClient, imageUri: string): Promise<string> {
  const match = /^([^/]+)\/(.+):([^:/@]+)$/.exec(imageUri);
  if (!match) return imageUri; // already a digest
  const [, registry, repository, tag] = match;
  const found = await ecr.send(
    new DescribeImagesCommand({ repositoryName: repository, imageIds: [{ imageTag: tag }] }),
  );
  const digest = found.imageDetails?.[0]?.imageDigest;
  if (!digest) throw new Error(`no image tagged ${tag} in ${repository}`);
  return `${registry}/${repository}@${digest}`;
}

async function send(
  ctx: PassContext,
  ledger: Ledger,
  status: MessageStatus,
  reason: string | null,
  jobName: string,
  detail?: string,
): Promise<void> {
  const notice = jobMessage(ctx, ledger, status, reason, jobName, detail);
  const { clients, env, now, settings } = ctx;
  await attempt(ctx.failures, `publishing ${status} of ${settings.runId}`, () =>
    publishRunMessage(clients.sns, env.topicArn, notice),
  );
  const source = jobName === '-' ? 'sagemaker' : jobName;
  const { key, record } = messageRecord(notice, reason, now, source);
  await attempt(ctx.failures, `keeping the ${status} message`, () =>
    keepRunMessage(clients.s3, env.outputsBucket, key, record),
  );
}

/** The run message (contract section 5) of a job outcome, as the supervisor words its own. */
export function jobMessage(
  ctx: Pick<PassContext, 'settings' | 'env'>,
  ledger: Ledger,
  status: MessageStatus,
  reason: string | null,
  jobName: string,
  detail?: string,
): RunMessage {
  const { settings, env } = ctx;
  const run = settings.runId;
  const cdk = `cdk deploy ${env.stackName} -c backend=sagemaker -c createInstance=true -c runConfig=...`;
  const next: Record<string, string> = {
    started: `Watch it: npx tuning-lab status ${run} (logs: npx tuning-lab logs ${run}).`,
    resumed: `It resumes from the newest checkpoint. Watch it: npx tuning-lab status ${run}.`,
    completed: `Get the model: npx tuning-lab pull ${run}.`,
    failed:
      reason === 'bad-input'
        ? 'Fix the run config or the data (tuning-trainer validate --config ...) and deploy it ' +
          'as a new run; bad input is never retried.'
        : `See the job's log: npx tuning-lab logs ${run}. A new run needs a new runId; ` +
          'a job SageMaker refused to start is tried again by a deploy that changes the settings.',
    interrupted:
      reason === REASON_CAPACITY || reason === REASON_SERVICE_ERROR
        ? 'The failure was SageMaker\'s, not the trainer\'s: the controller starts the next ' +
          'attempt on its next pass, from the newest checkpoint.'
        : `The run keeps its checkpoints; deploy with createInstance=true to resume it (${cdk}).`,
    'stopped-by-safety':
      reason === 'idle'
        ? `The job made no step and its hosts sat idle for idleMinutes: see its log (npx tuning-lab logs ${run}). ` +
          `If it was working (a step longer than that), raise idleMinutes and deploy again (${cdk}): the run resumes from its last checkpoint.`
        : `The run reached ${reason === 'max-cost' ? 'the per-run cost cap (maxRunCostUsd)' : 'the runtime limit (maxRuntimeHours)'}. ` +
          `To continue, raise the limit and deploy again (${cdk}): the run resumes from its last checkpoint.`,
    stopped:
      reason === REASON_SUPERSEDED
        ? `The run keeps its checkpoints; deploy it again to resume it (${cdk} -c runId=${run}).`
        : `The run keeps its checkpoints; deploy changed settings to resume it (${cdk}).`,
  };
  return formatRunMessage({
    runId: run,
    status,
    reason: detail ? `${reason ?? '-'}: ${detail}` : reason,
    instance: `${jobName} ${settings.instanceType} x${settings.instanceCount} ${settings.useSpot ? 'spot' : 'on-demand'}`,
    durationSeconds: ledger.billableSeconds ?? null,
    estimatedCostUsd: ledger.estimatedCostUsd ?? null,
    modelUri: ledger.finalModelUri ?? null,
    logsUri: `CloudWatch Logs ${SAGEMAKER_TRAINING_LOG_GROUP}, streams ${jobName}/algo-*`,
    nextStep: `${next[status] ?? 'See docs/runbook.md.'} See docs/runbook.md.`,
    lastLogLines: status === 'failed' ? (ledger.lastLogLines ?? []) : [],
  });
}

/** The CloudFormation custom resource request of the job guard (lib/sagemaker.ts). */
export interface GuardEvent {
  readonly RequestType: 'Create' | 'Update' | 'Delete';
  readonly ResponseURL: string;
  readonly StackId: string;
  readonly RequestId: string;
  readonly LogicalResourceId: string;
  readonly PhysicalResourceId?: string;
  readonly ResourceProperties?: { readonly RunId?: string };
}

/** Between two looks at jobs that are stopping (the first look after a stop comes sooner). */
const GUARD_POLL_MS = [2_000, 10_000] as const;

/** Time as the job guard waits on it (tests pass their own). */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const REAL_CLOCK: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((done) => setTimeout(done, ms)),
};

/**
 * The job guard: a deploy that changes the run (Update: another runId, or none) or removes the
 * SageMaker backend (Delete: `cdk destroy`, or a deploy with `backend=ec2`) stops every job of
 * the runs it no longer asks for and waits, until `deadline`, for them to end: their trainer
 * gets SIGTERM and SageMaker's 120 s to publish a checkpoint while the execution role that lets
 * it still exists (CloudFormation deletes an old run's role only after this returns), and each
 * ended job is recorded in its run's ledger (`stopped`, `superseded`). Always answers SUCCESS:
 * a guard that failed must not block `cdk destroy`; what is left running is reported to the
 * alerts topic with the command that stops it. Create does nothing.
 */
export async function guardJobs(
  clients: JobsClients,
  env: JobsEnv,
  event: GuardEvent,
  deadline: number,
  clock: Clock = REAL_CLOCK,
): Promise<{ reason: string; live: string[]; failures: string[] }> {
  const failures: string[] = [];
  let live: string[] = [];
  let stopped: string[] = [];
  if (event.RequestType !== 'Create') {
    const keep = event.RequestType === 'Update' ? event.ResourceProperties?.RunId || undefined : undefined;
    const why =
      event.RequestType === 'Update'
        ? `a deploy configured ${keep ?? 'no run'} instead`
        : 'cdk destroy, or a deploy without backend=sagemaker, removed the SageMaker backend';
    for (let look = 0; ; look += 1) {
      const nap = GUARD_POLL_MS[Math.min(look, GUARD_POLL_MS.length - 1)];
      const passFailures: string[] = [];
      await attempt(passFailures, 'settling the jobs', async () => {
        const stackJobs = await listStackJobs(clients.sagemaker, env.stackName);
        const now = new Date(clock.now());
        const settled = await settleOtherRuns(clients, env, stackJobs, keep, why, now, passFailures);
        stopped = [...new Set([...stopped, ...settled.stopped])];
        live = settled.live;
      });
      failures.splice(0, failures.length, ...passFailures);
      // Nothing live: done, or, with a step that keeps failing, reported after three looks.
      if (live.length === 0 && (failures.length === 0 || look >= 2)) break;
      if (clock.now() + nap >= deadline) break;
      await clock.sleep(nap);
    }
  }
  const reason =
    live.length > 0
      ? `still stopping or running: ${live.join(', ')}`
      : stopped.length > 0
        ? `stopped and recorded: ${stopped.join(', ')}`
        : 'no job to stop';
  if (live.length > 0 || failures.length > 0) {
    const stop = live.map((name) => `aws sagemaker stop-training-job --training-job-name ${name}`);
    await attempt(failures, 'reporting the jobs left', () =>
      clients.sns.send(
        new PublishCommand({
          TopicArn: env.topicArn,
          // SNS takes at most 100 characters.
          Subject: `tuning-lab ${env.stackName}: training jobs may still run`.slice(0, 100),
          Message:
            `The deploy (${event.RequestType}) asked the stack's training jobs to stop. ` +
            `${reason}. ${failures.join(' | ')}\n` +
            (stop.length > 0 ? `Check, and stop them if they still run:\n${stop.join('\n')}\n` : ''),
        }),
      ),
    );
  }
  console.log(JSON.stringify({ message: 'job guard', type: event.RequestType, reason, live, failures }));
  return { reason, live, failures };
}

/** Answer CloudFormation at the request's pre-signed URL (never throws). */
async function answer(event: GuardEvent, env: JobsEnv, reason: string): Promise<void> {
  const body = JSON.stringify({
    Status: 'SUCCESS',
    Reason: reason.slice(0, 1000),
    PhysicalResourceId: event.PhysicalResourceId ?? `${env.stackName}-job-guard`,
    StackId: event.StackId,
    RequestId: event.RequestId,
    LogicalResourceId: event.LogicalResourceId,
  });
  try {
    // A pre-signed S3 URL: no content type, or the signature does not match.
    const answered = await fetch(event.ResponseURL, {
      method: 'PUT',
      body,
      headers: { 'content-type': '' },
      signal: AbortSignal.timeout(20_000),
    });
    if (!answered.ok) throw new Error(`HTTP ${answered.status} ${await answered.text()}`);
  } catch (error) {
    console.log(JSON.stringify({ message: 'could not answer CloudFormation', error: errorMessage(error) }));
  }
}

// Cold start: the environment is checked once and the clients are reused across invocations.
const env = readJobsEnv(process.env);
const clients: JobsClients = {
  sagemaker: new SageMakerClient({ region: env.region }),
  s3: new S3Client({ region: env.region }),
  sns: new SNSClient({ region: env.region }),
  ssm: new SSMClient({ region: env.region }),
  ecr: new ECRClient({ region: env.region }),
  logs: new CloudWatchLogsClient({ region: env.region }),
  cloudwatch: new CloudWatchClient({ region: env.region }),
  cloudformation: new CloudFormationClient({ region: env.region }),
};

/**
 * The schedule's event or a "SageMaker Training Job State Change": the same whole pass. A
 * CloudFormation request (the job guard) stops the jobs the deploy no longer asks for.
 */
export async function handler(
  event?: { 'detail-type'?: string } | GuardEvent,
  context?: { getRemainingTimeInMillis(): number },
): Promise<JobsReport | void> {
  if (event && 'ResponseURL' in event) {
    // Room to answer CloudFormation before the function times out.
    const deadline = Date.now() + (context?.getRemainingTimeInMillis() ?? 60_000) - 30_000;
    let reason = 'the guard failed';
    try {
      reason = (await guardJobs(clients, env, event, deadline)).reason;
    } finally {
      await answer(event, env, reason);
    }
    return;
  }
  if (event && 'detail-type' in event && event['detail-type']) {
    console.log(JSON.stringify({ message: 'event', type: event['detail-type'] }));
  }
  return controlJobs(clients, env, new Date());
}
