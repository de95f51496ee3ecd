/**
 * The safety Lambda (every 5 minutes): stops this stack's GPU instances that outlived their
 * runtime limit or their run's cost cap, even if the instance's own supervisor died.
 *
 * Thin adapter: gathers instances (by the `tuning-lab:stack` tag), prices and ledgers, asks the
 * pure core (decide.ts) what to stop, then for each: group capacity 0, terminate, ledger, one SNS
 * message. Idempotent: an instance already shutting down or terminated is skipped. A failed step
 * does not stop the others; the invocation throws at the end so the error alarm fires.
 */
import {
  AutoScalingClient,
  SetDesiredCapacityCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  DescribeSpotPriceHistoryCommand,
  EC2Client,
  paginateDescribeInstances,
  TerminateInstancesCommand,
  type Instance,
} from '@aws-sdk/client-ec2';
import { GetObjectCommand, NoSuchKey, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { AUTOSCALING_GROUP_TAG, ledgerKey, TAG_KEYS, type Ledger } from '../../lib/contract';
import { onDemandPrice } from '../../lib/pricing';
import { decideTerminations, type Decision, type InstanceView } from './decide';
import { readSafetyEnv, type SafetyEnv } from './env';
import { ledgerAfterSafetyStop, safetyStopMessage, type StoppedInstance } from './report';

export interface SafetyClients {
  readonly ec2: EC2Client;
  readonly autoscaling: AutoScalingClient;
  readonly s3: S3Client;
  readonly sns: SNSClient;
}

export interface SafetyReport {
  readonly checked: number;
  readonly stopped: { instanceId: string; runId?: string; reason?: string; detail: string }[];
  readonly kept: { instanceId: string; detail: string }[];
  readonly skipped: { instanceId: string; detail: string }[];
  readonly failures: string[];
}

const ENDING_STATES = new Set(['shutting-down', 'terminated', 'stopping', 'stopped']);
/** Stands in for the run id in the message about an instance without a run-id tag. */
export const UNKNOWN_RUN_ID = 'unknown-run';

/** One pass of the safety check at `now`; throws after acting if any step failed. */
export async function enforceLimits(
  clients: SafetyClients,
  env: SafetyEnv,
  now: Date,
): Promise<SafetyReport> {
  const failures: string[] = [];
  const instances = await listStackInstances(clients.ec2, env.stackName);
  const ledgers = new Map<string, StoredLedger>();
  const views: InstanceView[] = [];
  for (const instance of instances) {
    const view = await describeForDecision(clients, env, instance, ledgers, now, failures);
    if (view) views.push(view);
  }

  const decisions = decideTerminations(
    views,
    { stackName: env.stackName, defaultMaxRuntimeHours: env.defaultMaxRuntimeHours },
    now,
  );
  const report: SafetyReport = {
    checked: decisions.length,
    stopped: [],
    kept: [],
    skipped: [],
    failures,
  };
  for (const decision of decisions) {
    const entry = { instanceId: decision.instanceId, detail: decision.detail };
    if (decision.action === 'keep') report.kept.push(entry);
    if (decision.action === 'skip') report.skipped.push(entry);
    if (decision.action !== 'stop') continue;
    const view = views.find((v) => v.instanceId === decision.instanceId) as InstanceView;
    await stop(clients, env, view, decision, ledgers, now, failures);
    report.stopped.push({ ...entry, runId: decision.runId, reason: decision.reason });
  }

  console.log(JSON.stringify({ message: 'safety check', ...report }));
  if (failures.length > 0) {
    throw new Error(`safety check: ${failures.length} step(s) failed: ${failures.join(' | ')}`);
  }
  return report;
}

async function listStackInstances(ec2: EC2Client, stackName: string): Promise<Instance[]> {
  const instances: Instance[] = [];
  // Only tag filters: the emulator rejects filters it does not know (e.g. launch-time), and
  // times are compared in decide.ts anyway.
  const pages = paginateDescribeInstances(
    { client: ec2, pageSize: 100 },
    { Filters: [{ Name: `tag:${TAG_KEYS.stack}`, Values: [stackName] }] },
  );
  for await (const page of pages) {
    for (const reservation of page.Reservations ?? []) {
      instances.push(...(reservation.Instances ?? []));
    }
  }
  return instances;
}

async function describeForDecision(
  clients: SafetyClients,
  env: SafetyEnv,
  instance: Instance,
  ledgers: Map<string, StoredLedger>,
  now: Date,
  failures: string[],
): Promise<InstanceView | undefined> {
  const instanceId = instance.InstanceId;
  if (!instanceId || !instance.LaunchTime) return undefined;
  const tags = Object.fromEntries(
    (instance.Tags ?? []).filter((t) => t.Key).map((t) => [t.Key as string, t.Value ?? '']),
  );
  const state = instance.State?.Name ?? 'unknown';
  const view: InstanceView = {
    instanceId,
    state,
    instanceType: instance.InstanceType ?? 'unknown',
    availabilityZone: instance.Placement?.AvailabilityZone,
    launchTime: new Date(instance.LaunchTime),
    market: instance.InstanceLifecycle === 'spot' ? 'spot' : 'on-demand',
    tags,
  };
  if (ENDING_STATES.has(state)) return view; // nothing to price: it is skipped

  let usdPerHour: number | undefined;
  try {
    usdPerHour = await hourlyPrice(clients.ec2, env.region, view, now);
  } catch (error) {
    failures.push(`${instanceId}: pricing failed: ${message(error)}`);
  }
  let priorRunCostUsd: number | undefined;
  const runId = tags[TAG_KEYS.runId];
  if (runId) {
    try {
      const stored = await readLedger(clients.s3, env.outputsBucket, runId);
      ledgers.set(runId, stored);
      // A running ledger's totals cover the run's earlier instances; this one is priced live.
      // Should the supervisor already have counted part of this instance, the cap fires early.
      priorRunCostUsd = stored.ledger?.estimatedCostUsd ?? 0;
    } catch (error) {
      failures.push(`${instanceId}: reading the ledger of ${runId} failed: ${message(error)}`);
    }
  }
  return { ...view, usdPerHour, priorRunCostUsd };
}

/** Spot: the latest spot price of the type in its AZ; on-demand (or no spot price): the table. */
async function hourlyPrice(
  ec2: EC2Client,
  region: string,
  view: InstanceView,
  now: Date,
): Promise<number | undefined> {
  if (view.market === 'spot' && view.availabilityZone) {
    const history = await ec2.send(
      new DescribeSpotPriceHistoryCommand({
        InstanceTypes: [view.instanceType as never],
        AvailabilityZone: view.availabilityZone,
        ProductDescriptions: ['Linux/UNIX', 'Linux/UNIX (Amazon VPC)'],
        StartTime: now,
        EndTime: now,
      }),
    );
    const newest = (history.SpotPriceHistory ?? [])
      .filter((p) => p.SpotPrice && p.Timestamp && p.AvailabilityZone === view.availabilityZone)
      .sort((a, b) => (b.Timestamp as Date).getTime() - (a.Timestamp as Date).getTime())[0];
    if (newest) return Number(newest.SpotPrice);
  }
  return onDemandPrice(view.instanceType, region)?.usdPerHour;
}

async function stop(
  clients: SafetyClients,
  env: SafetyEnv,
  view: InstanceView,
  decision: Decision,
  ledgers: Map<string, StoredLedger>,
  now: Date,
  failures: string[],
): Promise<void> {
  const id = decision.instanceId;
  const groupName = view.tags[AUTOSCALING_GROUP_TAG];
  // Capacity first, so the group does not launch a replacement for what we terminate.
  if (groupName) {
    await attempt(failures, `${id}: setting ${groupName} capacity to 0`, () =>
      clients.autoscaling.send(
        new SetDesiredCapacityCommand({
          AutoScalingGroupName: groupName,
          DesiredCapacity: 0,
          HonorCooldown: false,
        }),
      ),
    );
  }
  await attempt(failures, `${id}: terminating`, () =>
    clients.ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] })),
  );

  const stopped: StoppedInstance = {
    decision,
    instanceType: view.instanceType,
    availabilityZone: view.availabilityZone,
    market: view.market,
    launchTime: view.launchTime,
  };
  // Without a run-id tag there is no ledger to update, but the user still gets the message.
  const runId = decision.runId ?? UNKNOWN_RUN_ID;
  const update = (existing?: Ledger) => ledgerAfterSafetyStop(existing, stopped, runId, now);
  let ledger = update(ledgers.get(runId)?.ledger);
  if (decision.runId) {
    await attempt(failures, `${id}: writing the ledger of ${runId}`, async () => {
      const written = await writeLedger(
        clients.s3,
        env.outputsBucket,
        runId,
        ledgers.get(runId) ?? {},
        update,
      );
      ledgers.set(runId, written);
      ledger = written.ledger ?? ledger;
    });
  }
  const notice = safetyStopMessage(stopped, ledger, env.outputsBucket, env.stackName);
  await attempt(failures, `${id}: publishing to the topic`, () =>
    clients.sns.send(
      new PublishCommand({
        TopicArn: env.topicArn,
        Subject: notice.subject,
        Message: notice.body,
        MessageAttributes: {
          runId: { DataType: 'String', StringValue: notice.attributes.runId },
          status: { DataType: 'String', StringValue: notice.attributes.status },
        },
      }),
    ),
  );
}

/** A ledger as read from S3, with the ETag a conditional write must match. */
interface StoredLedger {
  readonly ledger?: Ledger;
  readonly etag?: string;
}

/** A run that ended this way keeps its record: the Lambda only adds to a live run. */
const FINAL_STATUSES = new Set(['completed', 'failed', 'stopped-by-safety']);
const LEDGER_WRITE_TRIES = 5;

async function readLedger(s3: S3Client, bucket: string, runId: string): Promise<StoredLedger> {
  try {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: ledgerKey(runId) }));
    const text = await (object.Body as { transformToString(): Promise<string> }).transformToString();
    return { ledger: JSON.parse(text), etag: object.ETag };
  } catch (error) {
    if (error instanceof NoSuchKey || (error as { name?: string }).name === 'NoSuchKey') {
      return {};
    }
    throw error;
  }
}

/**
 * Write `update(ledger)` only if the ledger is still the one read (S3 If-Match, or
 * If-None-Match for a new one): the supervisor writes it too, and a blind write would drop what
 * it wrote in between. On a conflict, read again and re-apply. A ledger that already records
 * the run's end is left as it is.
 */
async function writeLedger(
  s3: S3Client,
  bucket: string,
  runId: string,
  stored: StoredLedger,
  update: (existing?: Ledger) => Ledger,
): Promise<StoredLedger> {
  let current = stored;
  for (let tries = 1; ; tries++) {
    if (current.ledger && FINAL_STATUSES.has(current.ledger.status) && current.ledger.endedAt) {
      return current;
    }
    const ledger = update(current.ledger);
    try {
      const put = await s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: ledgerKey(runId),
          Body: `${JSON.stringify(ledger, null, 2)}\n`,
          ContentType: 'application/json',
          ...(current.etag ? { IfMatch: current.etag } : { IfNoneMatch: '*' }),
        }),
      );
      return { ledger, etag: put.ETag };
    } catch (error) {
      const name = (error as { name?: string }).name;
      const conflict = name === 'PreconditionFailed' || name === 'ConditionalRequestConflict';
      if (!conflict || tries >= LEDGER_WRITE_TRIES) throw error;
      current = await readLedger(s3, bucket, runId);
    }
  }
}

async function attempt(failures: string[], what: string, action: () => Promise<unknown>) {
  try {
    await action();
  } catch (error) {
    failures.push(`${what} failed: ${message(error)}`);
  }
}

function message(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

// Cold start: the environment is checked once and the clients are reused across invocations.
const env = readSafetyEnv(process.env);
const clients: SafetyClients = {
  ec2: new EC2Client({ region: env.region }),
  autoscaling: new AutoScalingClient({ region: env.region }),
  s3: new S3Client({ region: env.region }),
  sns: new SNSClient({ region: env.region }),
};

export async function handler(): Promise<SafetyReport> {
  return enforceLimits(clients, env, new Date());
}
