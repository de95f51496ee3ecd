/**
 * The job controller (SageMaker backend): every 5 minutes, and at every state change of one of
 * this stack's training jobs (EventBridge), it brings the configured run's jobs in line with its
 * settings: starts the next attempt, stops a job past its limits, records how each job ended in
 * the run's ledger and sends one message per outcome (contract sections 4, 5, 12 and 14).
 *
 * Thin adapter: reads the job settings (SSM), the run's jobs (ListTrainingJobs,
 * DescribeTrainingJob), ledger and stop request, asks the pure core (decide.ts), then performs
 * its effects. Either trigger runs the same whole pass, so a lost event costs at most one
 * schedule period. Every pass is idempotent: job names are deterministic (SageMaker refuses a
 * second job of the same attempt), ledger writes are conditional and each outcome is recorded
 * (and messaged) once. A failed step does not stop the others; the pass throws at the end so
 * the invocation's failure reaches the alerts topic.
 */
import { createHash } from 'node:crypto';
import { DescribeImagesCommand, ECRClient } from '@aws-sdk/client-ecr';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  CreateTrainingJobCommand,
  DescribeTrainingJobCommand,
  paginateListTrainingJobs,
  SageMakerClient,
  StopTrainingJobCommand,
} from '@aws-sdk/client-sagemaker';
import { SNSClient } from '@aws-sdk/client-sns';
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
import { readJson, updateJson } from '../safety/store';
import {
  decideRun,
  isTemporaryStartError,
  REASON_CAPACITY,
  REASON_JOB_START_FAILED,
  REASON_SERVICE_ERROR,
  startRefused,
  withInterruptions,
  type JobOutcome,
  type JobView,
  type RunDecision,
  type StopCause,
} from './decide';
import { readJobsEnv, type JobsEnv } from './env';
import { trainingJobRequest } from './request';

export interface JobsClients {
  readonly sagemaker: SageMakerClient;
  readonly s3: S3Client;
  readonly sns: SNSClient;
  readonly ssm: SSMClient;
  readonly ecr: ECRClient;
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
  const stopped: string[] = [];
  const settings = await readSettings(clients.ssm, env.jobSettingsParameter);
  const stackJobs = await listStackJobs(clients.sagemaker, env.stackName);

  // A live job of this stack that is not the configured run's: the deploy no longer asks for it.
  for (const summary of stackJobs) {
    const ours = settings && trainingJobAttempt(env.stackName, settings.runId, summary.name);
    if (ours !== undefined || summary.status !== 'InProgress') continue;
    await attempt(failures, `stopping ${summary.name} (no longer the stack's run)`, async () => {
      await clients.sagemaker.send(new StopTrainingJobCommand({ TrainingJobName: summary.name }));
      stopped.push(summary.name);
    });
  }
  if (!settings) {
    return finish({ detail: 'no run configured', recorded: [], stopped, failures });
  }

  const runId = settings.runId;
  const jobs: JobView[] = [];
  for (const summary of stackJobs) {
    const attemptNo = trainingJobAttempt(env.stackName, runId, summary.name);
    if (attemptNo === undefined) continue;
    const described = await clients.sagemaker.send(
      new DescribeTrainingJobCommand({ TrainingJobName: summary.name }),
    );
    jobs.push(jobView(summary.name, attemptNo, described));
  }
  const ledgerStored = await readJson<Ledger>(clients.s3, env.outputsBucket, ledgerKey(runId));
  const ledger = ledgerStored.value;
  const request = (await readJson<StopRequest>(clients.s3, env.outputsBucket, stopRequestKey(runId)))
    .value;
  const pendingStop =
    request && request.requestId !== ledger?.operatorStop?.requestId ? request : undefined;
  const recordedEnds = new Set(
    (ledger?.attempts ?? []).filter((a) => a.endedAt).map((a) => a.instanceId),
  );
  const completedUnrecorded = jobs.some((j) => j.status === 'Completed' && !recordedEnds.has(j.name));
  const finalModelPublished = completedUnrecorded
    ? (await readJson(clients.s3, env.outputsBucket, `${finalPrefix(runId)}${MANIFEST_NAME}`))
        .value !== undefined
    : undefined;
  const digest = settingsDigest(settings);
  // Every live job of the stack but the run's, the ones this pass just asked to stop included.
  const otherLiveJobs = stackJobs
    .filter((j) => j.status === 'InProgress' || j.status === 'Stopping')
    .filter((j) => trainingJobAttempt(env.stackName, runId, j.name) === undefined)
    .map((j) => j.name);

  const decision = decideRun(
    {
      runId,
      limits: { ...settings, settingsDigest: digest },
      ledger,
      jobs,
      pendingStop,
      finalModelPublished,
      otherLiveJobs,
    },
    now,
  );

  const ctx: PassContext = { clients, env, settings, digest, decision, jobs, now, failures };
  const recorded: string[] = [];
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
    const { jobName, cause } = decision.stop;
    await attempt(failures, `stopping ${jobName}`, async () => {
      await requestStop(ctx, jobName, cause, pendingStop);
      stopped.push(jobName);
    });
  }
  let started: string | undefined;
  if (decision.start) {
    const { attempt: number, resumed } = decision.start;
    const name = trainingJobName(env.stackName, runId, number);
    await attempt(failures, `starting ${name}`, async () => {
      if (await startJob(ctx, name, ledger, resumed)) started = name;
    });
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

async function listStackJobs(
  sagemaker: SageMakerClient,
  stackName: string,
): Promise<{ name: string; status: string }[]> {
  const prefix = trainingJobStackPrefix(stackName);
  const found: { name: string; status: string }[] = [];
  for await (const page of paginateListTrainingJobs(
    { client: sagemaker, pageSize: 100 },
    { NameContains: prefix },
  )) {
    for (const job of page.TrainingJobSummaries ?? []) {
      if (job.TrainingJobName?.startsWith(prefix)) {
        found.push({ name: job.TrainingJobName, status: job.TrainingJobStatus ?? 'unknown' });
      }
    }
  }
  return found;
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
  jobName: string,
  cause: StopCause,
  pendingStop: StopRequest | undefined,
): Promise<void> {
  // The ledger says why first, so the pass that records the Stopped job knows.
  await updateLedger(ctx, (current) => ({
    ...current,
    stopRequested: {
      jobName,
      cause,
      at: ctx.now.toISOString(),
      ...(cause === REASON_OPERATOR && pendingStop ? { requestId: pendingStop.requestId } : {}),
    },
  }));
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
      `The run reached ${reason === 'max-cost' ? 'the per-run cost cap (maxRunCostUsd)' : 'the runtime limit (maxRuntimeHours)'}. ` +
      `To continue, raise the limit and deploy again (${cdk}): the run resumes from its last checkpoint.`,
    stopped: `The run keeps its checkpoints; deploy changed settings to resume it (${cdk}).`,
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


// Cold start: the environment is checked once and the clients are reused across invocations.
const env = readJobsEnv(process.env);
const clients: JobsClients = {
  sagemaker: new SageMakerClient({ region: env.region }),
  s3: new S3Client({ region: env.region }),
  sns: new SNSClient({ region: env.region }),
  ssm: new SSMClient({ region: env.region }),
  ecr: new ECRClient({ region: env.region }),
};

/** The schedule's event or a "SageMaker Training Job State Change": the same whole pass. */
export async function handler(event?: { 'detail-type'?: string }): Promise<JobsReport> {
  if (event?.['detail-type']) console.log(JSON.stringify({ message: 'event', type: event['detail-type'] }));
  return controlJobs(clients, env, new Date());
}
