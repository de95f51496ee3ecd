/**
 * The safety Lambda (every 5 minutes): stops this stack's GPU instances that outlived their
 * runtime limit or their run's cost cap, and any second billing instance, even if the
 * instance's own supervisor died or the code on it misbehaves.
 *
 * Thin adapter: gathers the stack's instances (by the `tuning-lab:stack` tag), whether its group
 * counts them, their prices, and each run's meter (what the run cost, from EC2's records alone:
 * meter.ts), asks the pure core (decide.ts) what to stop, then for each: group capacity 0 (limits
 * only), terminate, ledger, one SNS message. Idempotent: an instance already shutting down or
 * terminated is skipped. A failed step does not stop the others; the invocation throws at the end
 * so the error alarm fires.
 */
import {
  AutoScalingClient,
  DescribeAutoScalingInstancesCommand,
  SetDesiredCapacityCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  DescribeSpotPriceHistoryCommand,
  EC2Client,
  paginateDescribeInstances,
  TerminateInstancesCommand,
  type Instance,
} from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import {
  AUTOSCALING_GROUP_TAG,
  FINAL_RUN_STATUSES,
  ledgerKey,
  meterKey,
  TAG_KEYS,
  type Ledger,
} from '../../lib/contract';
import { onDemandPrice } from '../../lib/pricing';
import { decideTerminations, isLive, type Decision, type InstanceView } from './decide';
import { attempt, errorMessage, keepRunMessage, publishRunMessage } from './effects';
import { readSafetyEnv, type SafetyEnv } from './env';
import {
  meterBillableSeconds,
  meterCostUsd,
  needsMetering,
  stateTransitionTime,
  updateMeter,
  type Meter,
} from './meter';
import {
  decisionMetrics,
  extraInstanceMessage,
  ledgerAfterSafetyStop,
  messageRecord,
  safetyStopMessage,
  type RunMessage,
  type StoppedInstance,
} from './report';
import { readJson, updateJson, type Stored } from './store';

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
  let members: Set<string> | undefined;
  try {
    members = await groupMembers(
      clients.autoscaling,
      instances.filter((i) => isLive(i.State?.Name ?? '')).map((i) => i.InstanceId as string),
    );
  } catch (error) {
    // The limits do not need it: only the one-instance rule waits for the next pass.
    failures.push(`finding the group's members failed: ${errorMessage(error)}`);
  }
  const views: InstanceView[] = [];
  for (const instance of instances) {
    const view = await describeForDecision(clients, env, instance, members, now, failures);
    if (view) views.push(view);
  }
  const meters = await meterRuns(clients.s3, env, views, now, failures);
  const priced = views.map((view) => withRunCost(view, meters));

  const decisions = decideTerminations(
    priced,
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
    const view = priced.find((v) => v.instanceId === decision.instanceId) as InstanceView;
    const meter = decision.runId ? meters.get(decision.runId) : undefined;
    await stop(clients, env, view, decision, meter, now, failures);
    report.stopped.push({ ...entry, runId: decision.runId, reason: decision.reason });
  }

  console.log(JSON.stringify({ message: 'safety check', ...report }));
  // Written past console, which the JSON log format would wrap: CloudWatch Logs extracts
  // metrics only from a line that is the EMF document itself.
  process.stdout.write(`${JSON.stringify(decisionMetrics(report, env.stackName, now))}\n`);
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

/** The live instances an Auto Scaling group counts (a detached one keeps its tags). */
async function groupMembers(autoscaling: AutoScalingClient, ids: string[]): Promise<Set<string>> {
  const members = new Set<string>();
  for (let i = 0; i < ids.length; i += 50) {
    const found = await autoscaling.send(
      new DescribeAutoScalingInstancesCommand({ InstanceIds: ids.slice(i, i + 50) }),
    );
    for (const member of found.AutoScalingInstances ?? []) {
      if (member.InstanceId) members.add(member.InstanceId);
    }
  }
  return members;
}

async function describeForDecision(
  clients: SafetyClients,
  env: SafetyEnv,
  instance: Instance,
  members: Set<string> | undefined,
  now: Date,
  failures: string[],
): Promise<(InstanceView & { endedAt?: Date }) | undefined> {
  const instanceId = instance.InstanceId;
  if (!instanceId || !instance.LaunchTime) return undefined;
  const tags = Object.fromEntries(
    (instance.Tags ?? []).filter((t) => t.Key).map((t) => [t.Key as string, t.Value ?? '']),
  );
  const state = instance.State?.Name ?? 'unknown';
  const view = {
    instanceId,
    state,
    instanceType: instance.InstanceType ?? 'unknown',
    availabilityZone: instance.Placement?.AvailabilityZone,
    launchTime: new Date(instance.LaunchTime),
    market: instance.InstanceLifecycle === 'spot' ? ('spot' as const) : ('on-demand' as const),
    tags,
    inGroup: members?.has(instanceId),
  };
  if (!isLive(state)) {
    // Ended: no live price; the meter uses the price it last saw, else this on-demand bound.
    const usdPerHour = onDemandPrice(view.instanceType, env.region)?.usdPerHour;
    return { ...view, usdPerHour, endedAt: stateTransitionTime(instance.StateTransitionReason) };
  }
  try {
    return { ...view, usdPerHour: await hourlyPrice(clients.ec2, env.region, view, now) };
  } catch (error) {
    failures.push(`${instanceId}: pricing failed: ${errorMessage(error)}`);
    return view;
  }
}

/**
 * Each run's meter after this pass: what its instances billed, from EC2's records (meter.ts).
 * A meter that cannot be read or written leaves its run's cost unknown (the cap cannot fire on
 * it this pass) and fails the invocation, so the error alarm says so.
 */
async function meterRuns(
  s3: S3Client,
  env: SafetyEnv,
  views: (InstanceView & { endedAt?: Date })[],
  now: Date,
  failures: string[],
): Promise<Map<string, Meter>> {
  const runs = new Map<string, typeof views>();
  for (const view of views) {
    const runId = view.tags[TAG_KEYS.runId];
    if (view.tags[TAG_KEYS.stack] !== env.stackName || !runId) continue;
    runs.set(runId, [...(runs.get(runId) ?? []), view]);
  }
  const meters = new Map<string, Meter>();
  for (const [runId, seen] of runs) {
    const observations = seen.map((view) => ({
      instanceId: view.instanceId,
      instanceType: view.instanceType,
      market: view.market,
      launchTime: view.launchTime,
      live: isLive(view.state),
      endedAt: view.endedAt,
      usdPerHour: view.usdPerHour,
    }));
    try {
      const key = meterKey(runId);
      const stored = await readJson<Meter>(s3, env.outputsBucket, key);
      // A run with a live instance, or with an ended one the meter has not closed yet, is
      // metered; a run whose instances are all closed keeps its meter as it is.
      const update = (current?: Meter) =>
        needsMetering(current, observations)
          ? updateMeter(current, runId, observations, now)
          : undefined;
      const written = await updateJson(s3, env.outputsBucket, key, stored, update);
      if (written.value) meters.set(runId, written.value);
    } catch (error) {
      failures.push(`metering run ${runId} failed: ${errorMessage(error)}`);
    }
  }
  return meters;
}

/** The run's cost from its meter: a lower bound while this instance has no price yet. */
function withRunCost(view: InstanceView, meters: Map<string, Meter>): InstanceView {
  const meter = meters.get(view.tags[TAG_KEYS.runId] ?? '');
  return { ...view, runCostUsd: meter ? meterCostUsd(meter) : undefined };
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
  meter: Meter | undefined,
  now: Date,
  failures: string[],
): Promise<void> {
  const id = decision.instanceId;
  const groupName = view.tags[AUTOSCALING_GROUP_TAG];
  const extra = decision.reason === 'extra-instance';
  // A limit ends the run: capacity first, so the group does not launch a replacement for what
  // we terminate. An extra instance goes alone; the run goes on where it is. So does one that
  // is no longer in its group (detached for a debug hold): the group may train another run now.
  if (groupName && !extra && view.inGroup === true) {
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
    runTotals: meter && {
      billableSeconds: meterBillableSeconds(meter),
      costUsd: meterCostUsd(meter),
    },
  };
  let notice: RunMessage;
  if (extra) {
    notice = extraInstanceMessage(stopped, env.stackName);
  } else {
    // Without a run-id tag there is no ledger to update, but the user still gets the message.
    const runId = decision.runId ?? UNKNOWN_RUN_ID;
    const update = (existing?: Ledger) => ledgerAfterSafetyStop(existing, stopped, runId, now);
    let ledger = update(undefined);
    if (decision.runId) {
      await attempt(failures, `${id}: writing the ledger of ${runId}`, async () => {
        const key = ledgerKey(runId);
        const stored: Stored<Ledger> = await readJson<Ledger>(clients.s3, env.outputsBucket, key);
        // A run that ended keeps its record: the Lambda only adds to a live run.
        const onlyIfLive = (current?: Ledger) =>
          current && FINAL_STATUSES.has(current.status) && current.endedAt
            ? undefined
            : update(current);
        const written = await updateJson(clients.s3, env.outputsBucket, key, stored, onlyIfLive);
        ledger = written.value ?? ledger;
      });
    }
    notice = safetyStopMessage(stopped, ledger, env.outputsBucket, env.stackName);
  }
  await attempt(failures, `${id}: publishing to the topic`, () =>
    publishRunMessage(clients.sns, env.topicArn, notice),
  );
  // Kept in the run's messages/ too (contract section 12); an instance without a run has none.
  if (decision.runId) {
    const { key, record } = messageRecord(notice, decision.reason ?? null, now);
    await attempt(failures, `${id}: keeping the message in ${key}`, () =>
      keepRunMessage(clients.s3, env.outputsBucket, key, record),
    );
  }
}

/** A run that ended this way keeps its record: the Lambda only adds to a live run. */
const FINAL_STATUSES = new Set<string>(FINAL_RUN_STATUSES);

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
