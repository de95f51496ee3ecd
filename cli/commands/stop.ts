/**
 * `tuning-lab stop`: end a run gracefully from the laptop.
 *
 *     npx tuning-lab stop                 # the stack's current run; waits and reports
 *     npx tuning-lab stop run-3f2a9c1b --no-wait
 *
 * Writes the run's stop request, `runs/<id>/control/stop-request.json` (docs/contracts.md
 * section 9). The run's supervisor polls it every 10 s: it asks the trainer to checkpoint and
 * exit, publishes the checkpoint, finishes the ledger as `stopped` (reason `operator`), sets the
 * group's capacity to 0 and terminates the instance. A replacement that boots later honours it
 * too. The command then waits for the ledger and the capacity, and reports. A run on the
 * SageMaker backend: the command also stops its training job (StopTrainingJob), and the job
 * controller records the run as `stopped` on this request.
 */
import { DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import { DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { StopTrainingJobCommand } from '@aws-sdk/client-sagemaker';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { randomUUID } from 'node:crypto';
import {
  FINAL_RUN_STATUSES,
  ledgerKey,
  SCHEMA_VERSION,
  stopRequestKey,
  type Ledger,
  type StopRequest,
} from '../../lib/contract';
import { booleanOption, stringOption, type Command } from '../command';
import type { CliContext } from '../context';
import { CliFailure, wholeNumber } from '../errors';
import { formatDuration, formatTime, formatUsd } from '../output';
import { RunStore } from '../run-store';

/** How often the command reads the ledger while it waits. */
export const POLL_SECONDS = 2;
/** After the ledger says stopped: how long to watch the instance shut down. */
export const INSTANCE_WAIT_SECONDS = 60;

export const command: Command = {
  name: 'stop',
  summary: 'stop a run gracefully: checkpoint, ledger `stopped`, capacity 0, terminate',
  usage: '[run]',
  rank: 60,
  description: [
    "Default run: the stack's current run (output RunId), else the newest running run.",
    'The supervisor checks for the request every 10 s; the trainer then has up to ~110 s to',
    'publish its checkpoint. A redeploy with the same runId later resumes from that checkpoint.',
  ].join('\n'),
  options: {
    'no-wait': { type: 'boolean', help: 'return once the request is written' },
    timeout: {
      type: 'string',
      value: 'MINUTES',
      help: 'how long to wait for the run to stop (default 10)',
    },
  },
  positionals: { min: 0, max: 1 },
  async run(ctx, args) {
    const timeoutMinutes = wholeNumber('--timeout', stringOption(args, 'timeout') ?? '10', 1);
    const store = await RunStore.of(ctx);
    const runId = await chooseRun(ctx, store, args.positionals[0]);
    const ledger = await store.readJson<Ledger>(ledgerKey(runId));
    if (ledger && (FINAL_RUN_STATUSES as readonly string[]).includes(ledger.status)) {
      throw new CliFailure(
        `run ${runId} already ended (${ledger.status}${ledger.reason ? `, ${ledger.reason}` : ''}` +
          '): nothing to stop',
      );
    }
    const request = await writeStopRequest(ctx, store.bucket, runId);
    const where = `s3://${store.bucket}/${stopRequestKey(runId)}`;
    const job = await stopTrainingJob(ctx, ledger);
    if (booleanOption(args, 'no-wait')) {
      if (ctx.out.jsonMode) return ctx.out.json({ runId, requested: request, stopped: false });
      ctx.out.line(`stop requested for ${runId} (${where})`);
      ctx.out.line(
        job
          ? `training job ${job} is stopping; follow it with: npx tuning-lab status ${runId}`
          : ledger
            ? 'the supervisor checks every 10 s; follow it with: npx tuning-lab status ' + runId
            : 'the run has not started yet: its instance stops it as soon as it boots',
      );
      return;
    }
    ctx.out.note(`stop requested for ${runId}; waiting for the supervisor (${where})`);
    const outcome = await waitForStop(ctx, store, runId, request, timeoutMinutes * 60);
    report(ctx, runId, request, outcome);
    return outcome.ledger?.status === 'stopped' ? 0 : 1;
  },
};

/**
 * A SageMaker run (ledger `backend`): StopTrainingJob on its current job at once, with the
 * operator's credentials (SIGTERM, 120 s to publish); the job controller then records the run
 * as `stopped` on this request. Returns the job's name, or undefined for an EC2 run.
 */
async function stopTrainingJob(ctx: CliContext, ledger?: Ledger): Promise<string | undefined> {
  if (ledger?.backend !== 'sagemaker' || !ledger.instanceId) return undefined;
  try {
    await ctx.sagemaker.send(new StopTrainingJobCommand({ TrainingJobName: ledger.instanceId }));
  } catch (error) {
    // Already stopping or ended: the controller still honours the request.
    ctx.out.note(`StopTrainingJob ${ledger.instanceId}: ${(error as Error).message}`);
  }
  return ledger.instanceId;
}

/** The run the user named (an alias or id), else the stack's current run, else a running one. */
async function chooseRun(ctx: CliContext, store: RunStore, given?: string): Promise<string> {
  if (given !== undefined) return (await store.resolve(given)).runId;
  const current = await ctx.optionalOutput('runId');
  if (current) return current;
  for (const run of await store.allRuns()) {
    if (run.ledger?.status === 'running') return run.runId;
  }
  throw new CliFailure(
    `stack ${ctx.stackName} has no current run and no run is running: name one (npx tuning-lab runs)`,
  );
}

async function writeStopRequest(ctx: CliContext, bucket: string, runId: string) {
  const who = await ctx.sts.send(new GetCallerIdentityCommand({}));
  const request: StopRequest = {
    schemaVersion: SCHEMA_VERSION,
    runId,
    requestId: randomUUID(),
    requestedAt: ctx.now().toISOString(),
    requestedBy: who.Arn ?? 'unknown',
  };
  await ctx.s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: stopRequestKey(runId),
      Body: `${JSON.stringify(request, null, 2)}\n`,
      ContentType: 'application/json',
    }),
  );
  return request;
}

interface Outcome {
  readonly ledger?: Ledger;
  readonly desiredCapacity?: number;
  readonly instanceState?: string;
  readonly timedOut: boolean;
}

const sleep = (seconds: number) => new Promise((r) => setTimeout(r, seconds * 1000));

async function waitForStop(
  ctx: CliContext,
  store: RunStore,
  runId: string,
  request: StopRequest,
  timeoutSeconds: number,
): Promise<Outcome> {
  const started = Date.now();
  const elapsed = () => (Date.now() - started) / 1000;
  let ledger: Ledger | undefined;
  // 1. The ledger: stopped on our request (or ended another way meanwhile).
  for (;;) {
    ledger = await store.readJson<Ledger>(ledgerKey(runId));
    const honoured = ledger?.operatorStop?.requestId === request.requestId;
    const ended = ledger && (FINAL_RUN_STATUSES as readonly string[]).includes(ledger.status);
    if ((ledger?.status === 'stopped' && honoured) || ended) break;
    if (elapsed() >= timeoutSeconds) return { ledger, timedOut: true };
    await sleep(POLL_SECONDS);
  }
  // 2. The group's capacity (the supervisor sets it to 0 before it shuts down).
  const groupName = await ctx.optionalOutput('groupName');
  let desiredCapacity: number | undefined;
  let instanceState: string | undefined;
  const deadline = Math.min(timeoutSeconds, elapsed() + INSTANCE_WAIT_SECONDS);
  for (;;) {
    if (groupName) {
      const found = await ctx.autoscaling.send(
        new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [groupName] }),
      );
      desiredCapacity = found.AutoScalingGroups?.[0]?.DesiredCapacity;
    }
    // 3. The instance: shutting down or gone (a SageMaker run's is a training job's name).
    if (ledger?.instanceId?.startsWith('i-')) {
      const found = await ctx.ec2.send(
        new DescribeInstancesCommand({ InstanceIds: [ledger.instanceId] }),
      );
      instanceState = found.Reservations?.[0]?.Instances?.[0]?.State?.Name;
    }
    const gone =
      instanceState === undefined || ['shutting-down', 'terminated'].includes(instanceState);
    if ((desiredCapacity ?? 0) === 0 && gone) break;
    if (elapsed() >= deadline) break;
    await sleep(POLL_SECONDS);
  }
  return { ledger, desiredCapacity, instanceState, timedOut: false };
}

function report(ctx: CliContext, runId: string, request: StopRequest, outcome: Outcome): void {
  const { ledger } = outcome;
  if (ctx.out.jsonMode) {
    ctx.out.json({
      runId,
      requested: request,
      stopped: ledger?.status === 'stopped',
      status: ledger?.status ?? null,
      reason: ledger?.reason ?? null,
      lastStep: ledger?.lastStep ?? null,
      estimatedCostUsd: ledger?.estimatedCostUsd ?? null,
      desiredCapacity: outcome.desiredCapacity ?? null,
      instanceId: ledger?.instanceId ?? null,
      instanceState: outcome.instanceState ?? null,
      timedOut: outcome.timedOut,
    });
    return;
  }
  if (outcome.timedOut) {
    ctx.out.line(
      `run ${runId} has not stopped yet (ledger: ${ledger?.status ?? 'none'}); the request stays ` +
        'in place and its supervisor will act on it. Check: npx tuning-lab status ' +
        runId,
    );
    return;
  }
  const duration =
    ledger?.startedAt && ledger.endedAt
      ? (Date.parse(ledger.endedAt) - Date.parse(ledger.startedAt)) / 1000
      : undefined;
  ctx.out.keyValues([
    ['run', runId],
    ['status', `${ledger?.status}${ledger?.reason ? ` (${ledger.reason})` : ''}`],
    ['last step', ledger?.lastStep != null ? String(ledger.lastStep) : '-'],
    ['ended', formatTime(ledger?.endedAt)],
    ['duration', formatDuration(duration)],
    ['cost', `${formatUsd(ledger?.estimatedCostUsd)} (estimate)`],
    ['capacity', outcome.desiredCapacity === undefined ? '-' : String(outcome.desiredCapacity)],
    ['instance', `${ledger?.instanceId ?? '-'} ${outcome.instanceState ?? ''}`.trim()],
  ]);
  if (ledger?.status !== 'stopped') {
    ctx.out.line(`the run ended as ${ledger?.status} before the request was seen`);
  } else if (
    outcome.instanceState &&
    !['shutting-down', 'terminated'].includes(outcome.instanceState)
  ) {
    ctx.out.line(
      `the instance is still ${outcome.instanceState}: its shutdown was requested; if it stays, ` +
        'npx tuning-lab sweep lists it',
    );
  } else {
    ctx.out.line('resume later: redeploy with the same runId (it continues from the checkpoint)');
  }
}
