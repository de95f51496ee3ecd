/**
 * The safety Lambda's adapter in-process against moto's server, through the real AWS SDK v3
 * clients: what it stops, what it leaves alone, what it writes, and that a second pass is a no-op.
 *
 * A stack may bill for one instance in its group and one outside it, so each scenario's
 * instances belong to a stack of their own, and each pass runs with that stack's environment.
 */
import {
  CreateAutoScalingGroupCommand,
  DescribeAutoScalingGroupsCommand,
  DetachInstancesCommand,
  SetDesiredCapacityCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  CreateLaunchTemplateCommand,
  CreateTagsCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  RunInstancesCommand,
  type Tag,
} from '@aws-sdk/client-ec2';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3ServiceException,
  type S3Client,
} from '@aws-sdk/client-s3';
import { CreateTopicCommand, SubscribeCommand } from '@aws-sdk/client-sns';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
} from '@aws-sdk/client-sqs';
import { ledgerKey, meterKey, TAG_KEYS, type Ledger } from '../lib/contract';
import { ON_DEMAND_USD_PER_HOUR } from '../lib/pricing';
import { SAFETY_ENV, readSafetyEnv, type SafetyEnv } from '../lambda/safety/env';
import type { SafetyReport } from '../lambda/safety/handler';
import type { Meter } from '../lambda/safety/meter';
import { motoClients, motoUrl, REGION, resetMoto, useOwnMotoServer } from './support/moto';

/** The stack the deployed entry point (handler()) watches: its environment at cold start. */
const HANDLER_STACK = 'TrainingStack';
const BUCKET = 'outputs';
const HOUR = 3600_000;
const MINUTE = 60_000;
const G5_ON_DEMAND = ON_DEMAND_USD_PER_HOUR['g5.xlarge'];
type Handler = typeof import('../lambda/safety/handler');

useOwnMotoServer(); // this file resets moto between tests
let clients: ReturnType<typeof motoClients>;
let handlerModule: Handler;

beforeAll(async () => {
  clients = motoClients();
  jest.spyOn(console, 'log').mockImplementation(() => undefined); // the handler's decision log
  // ...and its metrics line (EMF), which it writes to stdout itself; anything else passes.
  const write = process.stdout.write.bind(process.stdout) as (chunk: string) => boolean;
  jest
    .spyOn(process.stdout, 'write')
    .mockImplementation((chunk: string | Uint8Array) =>
      String(chunk).startsWith('{"_aws"') ? true : write(String(chunk)),
    );
  // The handler validates its environment at cold start (import time).
  Object.assign(process.env, {
    [SAFETY_ENV.stackName]: HANDLER_STACK,
    [SAFETY_ENV.topicArn]: `arn:aws:sns:${REGION}:123456789012:alerts`,
    [SAFETY_ENV.outputsBucket]: BUCKET,
    [SAFETY_ENV.defaultMaxRuntimeHours]: '12',
    AWS_REGION: REGION,
    AWS_ENDPOINT_URL: motoUrl(),
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_SESSION_TOKEN: 'testing',
  });
  handlerModule = await import('../lambda/safety/handler');
});

/** An emptied moto with the outputs bucket, the alerts topic (read through a queue), an AMI. */
interface Base {
  readonly topicArn: string;
  readonly queueUrl: string;
  readonly image: string;
}

async function arrangeBase(): Promise<Base> {
  await resetMoto();
  const { ec2, s3, sns, sqs } = clients;
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  const topicArn = (await sns.send(new CreateTopicCommand({ Name: 'alerts' }))).TopicArn as string;
  const queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: 'alerts-inbox' })))
    .QueueUrl as string;
  const queueArn = (
    await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }),
    )
  ).Attributes?.QueueArn;
  await sns.send(new SubscribeCommand({ TopicArn: topicArn, Protocol: 'sqs', Endpoint: queueArn }));
  const image = (await ec2.send(new DescribeImagesCommand({ Owners: ['amazon'] }))).Images?.[0]
    .ImageId as string;
  await ec2.send(
    new CreateLaunchTemplateCommand({
      LaunchTemplateName: 'gpu-template',
      LaunchTemplateData: { ImageId: image, InstanceType: 'g5.xlarge' },
    }),
  );
  return { topicArn, queueUrl, image };
}

/** The Lambda's environment for one stack. */
function envFor(base: Base, stackName: string): SafetyEnv {
  return readSafetyEnv({
    ...process.env,
    [SAFETY_ENV.stackName]: stackName,
    [SAFETY_ENV.topicArn]: base.topicArn,
  });
}

/** The tags the stack's group gives its instances (contract section 2). */
function runTags(stackName: string, runId: string, limits: Record<string, string> = {}) {
  return {
    [TAG_KEYS.stack]: stackName,
    [TAG_KEYS.runId]: runId,
    [TAG_KEYS.maxRuntimeHours]: '48',
    ...limits,
  };
}

const ec2Tags = (values: Record<string, string>): Tag[] =>
  Object.entries(values).map(([Key, Value]) => ({ Key, Value }));

/** An instance launched outside any group (as if detached, or started by hand with the tags). */
async function runInstance(
  base: Base,
  values: Record<string, string>,
  market: 'spot' | 'on-demand' = 'on-demand',
): Promise<string> {
  const result = await clients.ec2.send(
    new RunInstancesCommand({
      ImageId: base.image,
      MinCount: 1,
      MaxCount: 1,
      InstanceType: 'g5.xlarge',
      Placement: { AvailabilityZone: `${REGION}a` },
      ...(market === 'spot' ? { InstanceMarketOptions: { MarketType: 'spot' } } : {}),
      ...(Object.keys(values).length
        ? { TagSpecifications: [{ ResourceType: 'instance', Tags: ec2Tags(values) }] }
        : {}),
    }),
  );
  return result.Instances?.[0].InstanceId as string;
}

/** A stack's Auto Scaling group with one instance in it; returns the group and the instance. */
async function createGroup(
  stackName: string,
  values: Record<string, string>,
  maxSize = 1,
): Promise<{ groupName: string; instanceId: string }> {
  const groupName = `${stackName}-gpu`;
  await clients.autoscaling.send(
    new CreateAutoScalingGroupCommand({
      AutoScalingGroupName: groupName,
      MinSize: 0,
      MaxSize: maxSize,
      DesiredCapacity: 1,
      AvailabilityZones: [`${REGION}a`],
      LaunchTemplate: { LaunchTemplateName: 'gpu-template', Version: '$Latest' },
      Tags: Object.entries(values).map(([Key, Value]) => ({ Key, Value, PropagateAtLaunch: true })),
    }),
  );
  const [instanceId] = await groupInstances(groupName);
  expect(instanceId).toMatch(/^i-/);
  return { groupName, instanceId };
}

/** A group's instance detached for a debug hold, and the replacement the group launched. */
async function arrangeHeld(stackName: string, runId: string) {
  const base = await arrangeBase();
  const { groupName, instanceId: held } = await createGroup(stackName, runTags(stackName, runId));
  // Detached without decrementing: the group launches a replacement into the run.
  await clients.autoscaling.send(
    new DetachInstancesCommand({
      AutoScalingGroupName: groupName,
      InstanceIds: [held],
      ShouldDecrementDesiredCapacity: false,
    }),
  );
  const [replacement] = await groupInstances(groupName);
  expect(replacement).toMatch(/^i-/);
  return { base, groupName, held, replacement };
}

async function groupInstances(groupName: string): Promise<string[]> {
  const instances = await listInstances();
  return instances
    .filter((i) => i.tags['aws:autoscaling:groupName'] === groupName && i.state === 'running')
    .map((i) => i.id);
}

async function desiredCapacity(groupName: string): Promise<number | undefined> {
  const groups = await clients.autoscaling.send(
    new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [groupName] }),
  );
  return groups.AutoScalingGroups?.[0].DesiredCapacity;
}

async function listInstances(): Promise<
  { id: string; state: string; tags: Record<string, string> }[]
> {
  const result = await clients.ec2.send(new DescribeInstancesCommand({}));
  return (result.Reservations ?? []).flatMap((r) =>
    (r.Instances ?? []).map((i) => ({
      id: i.InstanceId as string,
      state: i.State?.Name as string,
      tags: Object.fromEntries((i.Tags ?? []).map((t) => [t.Key, t.Value])),
    })),
  );
}

async function stateOf(id: string): Promise<string> {
  return (await listInstances()).find((i) => i.id === id)?.state as string;
}

const ENDED = ['shutting-down', 'terminated'];

async function messages(queueUrl: string) {
  const received = await clients.sqs.send(
    new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
  );
  return (received.Messages ?? []).map((m) => JSON.parse(m.Body as string));
}

async function putJson(key: string, value: unknown): Promise<void> {
  await clients.s3.send(
    new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: JSON.stringify(value) }),
  );
}

async function readJson<T>(key: string): Promise<T | undefined> {
  try {
    const object = await clients.s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    return JSON.parse(
      await (object.Body as { transformToString(): Promise<string> }).transformToString(),
    );
  } catch {
    return undefined;
  }
}

const readLedger = (runId: string) => readJson<Ledger>(ledgerKey(runId));
const readMeter = (runId: string) => readJson<Meter>(meterKey(runId));

/** What real S3 answers a caller without an unconditioned ListBucket for a missing key. */
function accessDenied(): S3ServiceException {
  return new S3ServiceException({
    name: 'AccessDenied',
    $fault: 'client',
    $metadata: { httpStatusCode: 403 },
    message: 'Access Denied',
  });
}

/** An S3 client whose GetObject answers AccessDenied where `deny(key, missing)` says so. */
function deniedS3(deny: (key: string, missing: boolean) => boolean): {
  s3: S3Client;
  denied: string[];
} {
  const s3 = motoClients().s3;
  const denied: string[] = [];
  s3.middlewareStack.add(
    (next, context) => async (args) => {
      const key = (args.input as { Key?: string }).Key ?? '';
      if (context.commandName !== 'GetObjectCommand') return next(args);
      try {
        const result = await next(args);
        if (deny(key, false)) {
          denied.push(key);
          throw accessDenied();
        }
        return result;
      } catch (error) {
        if ((error as Error).name === 'NoSuchKey' && deny(key, true)) {
          denied.push(key);
          throw accessDenied();
        }
        throw error;
      }
    },
    { step: 'initialize' },
  );
  return { s3, denied };
}

/** The supervisor's ledger of a running run: the Lambda must keep what it wrote. */
function supervisorLedger(runId: string, instanceId: string): Ledger {
  return {
    schemaVersion: 1,
    runId,
    status: 'running',
    instanceId,
    lastStep: 1234,
    attempts: [
      {
        instanceId,
        instanceType: 'g5.xlarge',
        market: 'on-demand',
        startedAt: '2026-01-01T00:00:00Z',
        endedAt: null,
        exitCode: null,
      },
    ],
  };
}

/** The overdue run of one stack's group: the common scenario of the ledger and failure tests. */
async function arrangeOverdue() {
  const base = await arrangeBase();
  const { groupName, instanceId } = await createGroup(
    'OverdueStack',
    runTags('OverdueStack', 'run-overdue', { [TAG_KEYS.maxRuntimeHours]: '12' }),
  );
  await putJson(ledgerKey('run-overdue'), supervisorLedger('run-overdue', instanceId));
  const env = envFor(base, 'OverdueStack');
  return { base, env, groupName, instanceId, now: new Date(Date.now() + 13 * HOUR) };
}

describe('one safety pass 13 hours after launch', () => {
  const STACKS = ['OverdueStack', 'CostlyStack', 'ClaimedStack', 'SpotStack', 'FineStack'];
  let base: Base;
  let ids: Record<
    'overdue' | 'costly' | 'claimed' | 'spot' | 'within' | 'otherStack' | 'untagged',
    string
  >;
  let groupName: string;
  let claimedLedger: Ledger;
  const reports: Record<string, SafetyReport> = {};
  let now: Date;

  beforeAll(async () => {
    base = await arrangeBase();
    const overdue = await createGroup(
      'OverdueStack',
      runTags('OverdueStack', 'run-overdue', { [TAG_KEYS.maxRuntimeHours]: '12' }),
    );
    groupName = overdue.groupName;
    const cap = (usd: string) => ({ [TAG_KEYS.maxRunCostUsd]: usd });
    ids = {
      overdue: overdue.instanceId,
      costly: await runInstance(base, runTags('CostlyStack', 'run-costly', cap('5'))),
      claimed: await runInstance(base, runTags('ClaimedStack', 'run-claimed', cap('5'))),
      spot: await runInstance(base, runTags('SpotStack', 'run-spot', cap('1')), 'spot'),
      within: await runInstance(base, runTags('FineStack', 'run-fine')),
      otherStack: await runInstance(
        base,
        runTags('OtherStack', 'run-x', { [TAG_KEYS.maxRuntimeHours]: '1' }),
      ),
      untagged: await runInstance(base, {}),
    };
    await putJson(ledgerKey('run-overdue'), supervisorLedger('run-overdue', ids.overdue));
    // What a misbehaving instance could write to its own ledger: nothing spent yet.
    claimedLedger = {
      ...supervisorLedger('run-claimed', ids.claimed),
      billableSeconds: 0,
      estimatedCostUsd: 0,
    };
    await putJson(ledgerKey('run-claimed'), claimedLedger);

    now = new Date(Date.now() + 13 * HOUR);
    for (const stack of STACKS) {
      reports[stack] = await handlerModule.enforceLimits(clients, envFor(base, stack), now);
    }
  });

  const stopped = () => Object.values(reports).flatMap((r) => r.stopped);
  const kept = () => Object.values(reports).flatMap((r) => r.kept.map((k) => k.instanceId));

  test('the overdue instance of the group is terminated for max-runtime', async () => {
    expect(reports.OverdueStack.stopped).toEqual([
      expect.objectContaining({ instanceId: ids.overdue, reason: 'max-runtime' }),
    ]);
    expect(ENDED).toContain(await stateOf(ids.overdue));
  });

  test("the group's desired capacity is set to 0 so it launches no replacement", async () => {
    expect(await desiredCapacity(groupName)).toBe(0);
  });

  test('the on-demand instance over its run cost cap is terminated for max-cost', async () => {
    expect(reports.CostlyStack.stopped).toEqual([
      expect.objectContaining({ instanceId: ids.costly, reason: 'max-cost' }),
    ]);
    expect(ENDED).toContain(await stateOf(ids.costly));
  });

  test('a ledger that claims 0 USD cannot lower the cap: the meter counts from EC2', async () => {
    expect(reports.ClaimedStack.stopped).toEqual([
      expect.objectContaining({ instanceId: ids.claimed, reason: 'max-cost' }),
    ]);
    expect(ENDED).toContain(await stateOf(ids.claimed));
    const ledger = await readLedger('run-claimed');
    expect(ledger).toMatchObject({ status: 'stopped-by-safety', reason: 'max-cost' });
    expect(ledger?.estimatedCostUsd).toBeCloseTo(13 * G5_ON_DEMAND, 1);
    expect(ledger?.billableSeconds).toBeGreaterThanOrEqual(13 * 3600);
  });

  test("the run's meter is written under safety/meters/ with what EC2 shows", async () => {
    const meter = await readMeter('run-claimed');
    expect(meter).toMatchObject({
      schemaVersion: 1,
      runId: 'run-claimed',
      updatedAt: now.toISOString(),
    });
    expect(meter?.instances[ids.claimed]).toMatchObject({
      instanceType: 'g5.xlarge',
      market: 'on-demand',
      accountedUntil: now.toISOString(),
      usdPerHour: G5_ON_DEMAND,
    });
    expect(meter?.instances[ids.claimed].costUsd).toBeCloseTo(13 * G5_ON_DEMAND, 1);
  });

  test('a spot instance is priced by the spot price history, so it stays under its cap', async () => {
    expect(reports.SpotStack.kept.map((k) => k.instanceId)).toEqual([ids.spot]);
    expect(await stateOf(ids.spot)).toBe('running');
    const meter = await readMeter('run-spot');
    expect(meter?.instances[ids.spot]).toMatchObject({ market: 'spot', usdPerHour: 0.00001 });
  });

  test('an instance of this stack within its limits keeps running', async () => {
    expect(reports.FineStack.kept.map((k) => k.instanceId)).toEqual([ids.within]);
    expect(await stateOf(ids.within)).toBe('running');
  });

  test("other stacks' and untagged instances are neither considered nor touched", async () => {
    const considered = Object.values(reports).flatMap((r) =>
      [...r.stopped, ...r.kept, ...r.skipped].map((d) => d.instanceId),
    );
    expect(considered).not.toContain(ids.otherStack);
    expect(considered).not.toContain(ids.untagged);
    expect(await stateOf(ids.otherStack)).toBe('running');
    expect(await stateOf(ids.untagged)).toBe('running');
  });

  test('each stack sees only its own instances', () => {
    expect(Object.fromEntries(STACKS.map((s) => [s, reports[s].checked]))).toEqual({
      OverdueStack: 1,
      CostlyStack: 1,
      ClaimedStack: 1,
      SpotStack: 1,
      FineStack: 1,
    });
    expect(stopped()).toHaveLength(3);
    expect(kept().sort()).toEqual([ids.spot, ids.within].sort());
  });

  test("the ledger records the stop with the meter's totals and keeps what the supervisor wrote", async () => {
    const ledger = await readLedger('run-overdue');
    expect(ledger).toMatchObject({
      runId: 'run-overdue',
      status: 'stopped-by-safety',
      reason: 'max-runtime',
      endedAt: now.toISOString(),
      lastStep: 1234,
    });
    expect(ledger?.billableSeconds).toBeGreaterThanOrEqual(13 * 3600);
    expect(ledger?.billableSeconds).toBeLessThan(13 * 3600 + 60);
    expect(ledger?.estimatedCostUsd).toBeCloseTo(13 * G5_ON_DEMAND, 1);
    expect(ledger?.attempts?.[0]).toMatchObject({
      instanceId: ids.overdue,
      startedAt: '2026-01-01T00:00:00Z',
      endedAt: now.toISOString(),
    });
  });

  test('a run without a ledger gets one', async () => {
    expect(await readLedger('run-costly')).toMatchObject({
      runId: 'run-costly',
      status: 'stopped-by-safety',
      reason: 'max-cost',
      instanceId: ids.costly,
    });
  });

  test('one SNS message per stopped run, in the contract format', async () => {
    const received = await messages(base.queueUrl);
    expect(received.map((m) => m.Subject).sort()).toEqual([
      'tuning-lab run-claimed: stopped-by-safety',
      'tuning-lab run-costly: stopped-by-safety',
      'tuning-lab run-overdue: stopped-by-safety',
    ]);
    const overdue = received.find((m) => m.Subject.includes('run-overdue'));
    expect(overdue.Message).toContain('Reason: max-runtime');
    expect(overdue.Message).toContain('\nNext step:\n');
    expect(overdue.MessageAttributes).toMatchObject({
      runId: { Type: 'String', Value: 'run-overdue' },
      status: { Type: 'String', Value: 'stopped-by-safety' },
    });
  });

  test("each message about a run is kept in the run's messages/ as sent", async () => {
    const listed = await clients.s3.send(
      new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'runs/run-overdue/messages/' }),
    );
    const keys = (listed.Contents ?? []).map((o) => o.Key as string);
    expect(keys).toEqual([
      expect.stringMatching(
        /^runs\/run-overdue\/messages\/\d{8}T\d{6}\.\d{3}Z-safety-stopped-by-safety\.json$/,
      ),
    ]);
    const object = await clients.s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: keys[0] }));
    const record = JSON.parse(
      await (object.Body as { transformToString(): Promise<string> }).transformToString(),
    );
    expect(record).toMatchObject({
      schemaVersion: 1,
      runId: 'run-overdue',
      status: 'stopped-by-safety',
      reason: 'max-runtime',
      source: 'safety',
      subject: 'tuning-lab run-overdue: stopped-by-safety',
    });
    expect(record.body).toContain('Reason: max-runtime');
  });

  test('a second pass stops nothing and closes the meter; a third leaves it final', async () => {
    const ledgerBefore = await readLedger('run-overdue');
    const meterBefore = await readMeter('run-overdue');
    const pass = async (at: Date) => {
      for (const stack of STACKS) {
        const again = await handlerModule.enforceLimits(clients, envFor(base, stack), at);
        expect(again.stopped).toEqual([]);
        expect(again.failures).toEqual([]);
      }
    };
    await pass(new Date(now.getTime() + 5 * MINUTE));
    const closed = await readMeter('run-overdue');
    await pass(new Date(now.getTime() + 10 * MINUTE));

    expect(await messages(base.queueUrl)).toEqual([]);
    expect(await readLedger('run-overdue')).toEqual(ledgerBefore);
    const [instance] = Object.keys(meterBefore?.instances ?? {});
    expect(meterBefore?.instances[instance].endedAt).toBeUndefined();
    expect(closed?.instances[instance]).toMatchObject({
      costUsd: meterBefore?.instances[instance].costUsd, // terminated before it was counted to
      endedAt: expect.any(String),
    });
    expect(await readMeter('run-overdue')).toEqual(closed);
    expect(await stateOf(ids.within)).toBe('running');
  });
});

describe("a run's meter", () => {
  test('a second pass 5 minutes later adds about 5 minutes of cost', async () => {
    const base = await arrangeBase();
    const id = await runInstance(base, runTags('MeteredStack', 'run-metered'));
    const env = envFor(base, 'MeteredStack');
    const first = new Date(Date.now() + HOUR);
    const second = new Date(first.getTime() + 5 * MINUTE);

    await handlerModule.enforceLimits(clients, env, first);
    const before = (await readMeter('run-metered'))?.instances[id];
    await handlerModule.enforceLimits(clients, env, second);
    const after = (await readMeter('run-metered'))?.instances[id];

    expect(before?.accountedUntil).toBe(first.toISOString());
    expect(after?.accountedUntil).toBe(second.toISOString());
    expect((after?.costUsd ?? 0) - (before?.costUsd ?? 0)).toBeCloseTo((5 / 60) * G5_ON_DEMAND, 3);
  });
});

describe('at most one billing instance in the group and one outside it', () => {
  test('a second live instance launched later is terminated; the run goes on', async () => {
    const base = await arrangeBase();
    const tags = runTags('ExtraStack', 'run-extra');
    const { groupName, instanceId: older } = await createGroup('ExtraStack', tags, 2);
    await new Promise((resolve) => setTimeout(resolve, 1100)); // EC2 launch times are in seconds
    await clients.autoscaling.send(
      new SetDesiredCapacityCommand({ AutoScalingGroupName: groupName, DesiredCapacity: 2 }),
    );
    const newer = (await groupInstances(groupName)).find((id) => id !== older) as string;
    expect(newer).toMatch(/^i-/);
    await putJson(ledgerKey('run-extra'), supervisorLedger('run-extra', older));
    const ledgerBefore = await readLedger('run-extra');

    const report = await handlerModule.enforceLimits(
      clients,
      envFor(base, 'ExtraStack'),
      new Date(Date.now() + HOUR),
    );

    expect(report.stopped).toEqual([
      expect.objectContaining({ instanceId: newer, reason: 'extra-instance' }),
    ]);
    expect(ENDED).toContain(await stateOf(newer));
    expect(await stateOf(older)).toBe('running');
    expect(await desiredCapacity(groupName)).toBe(2);
    expect(await readLedger('run-extra')).toEqual(ledgerBefore);
    const received = await messages(base.queueUrl);
    expect(received.map((m) => m.Subject)).toEqual([
      'tuning-lab run-extra: extra-instance-stopped',
    ]);
    expect(received[0].Message).toContain(`this one was terminated and ${older} goes on`);
    expect(received[0].MessageAttributes).toMatchObject({
      status: { Type: 'String', Value: 'extra-instance-stopped' },
    });
  });

  test("an instance detached for a debug hold keeps its place beside the group's", async () => {
    const { base, held, replacement } = await arrangeHeld('HeldStack', 'run-held');

    const report = await handlerModule.enforceLimits(
      clients,
      envFor(base, 'HeldStack'),
      new Date(Date.now() + HOUR),
    );

    expect(report.stopped).toEqual([]);
    expect(report.kept.map((k) => k.instanceId).sort()).toEqual([held, replacement].sort());
  });
});

describe('a held instance at its limit', () => {
  test("is terminated without touching its former group's capacity", async () => {
    const { base, groupName, held, replacement } = await arrangeHeld(
      'HeldLimitStack',
      'run-held-limit',
    );
    // The group now trains something else; the held instance outlives its runtime limit. moto
    // drops Auto Scaling's group tag on a detach; nothing says AWS does, so the Lambda must not
    // rely on its absence.
    await clients.ec2.send(
      new CreateTagsCommand({
        Resources: [held],
        Tags: [
          { Key: TAG_KEYS.maxRuntimeHours, Value: '0.5' },
          { Key: 'aws:autoscaling:groupName', Value: groupName },
        ],
      }),
    );

    const report = await handlerModule.enforceLimits(
      clients,
      envFor(base, 'HeldLimitStack'),
      new Date(Date.now() + HOUR),
    );

    expect(report.stopped.map((s) => [s.instanceId, s.reason])).toEqual([[held, 'max-runtime']]);
    expect(await desiredCapacity(groupName)).toBe(1);
    expect(await stateOf(replacement)).toBe('running');
  });
});

describe('when the group cannot be asked who is in it', () => {
  test('the limits are still enforced and the one-instance rule waits', async () => {
    const { env, now, instanceId } = await arrangeOverdue();
    const autoscaling = motoClients().autoscaling;
    autoscaling.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'DescribeAutoScalingInstancesCommand') {
          throw Object.assign(new Error('Rate exceeded'), { name: 'Throttling' });
        }
        return next(args);
      },
      { step: 'initialize' },
    );

    await expect(
      handlerModule.enforceLimits({ ...clients, autoscaling }, env, now),
    ).rejects.toThrow(/finding the group's members failed: Throttling/);

    expect(['shutting-down', 'terminated']).toContain(await stateOf(instanceId));
  });
});

describe('the ledger is shared with the supervisor', () => {
  test("a supervisor write between the Lambda's read and its write is kept", async () => {
    const { env, now } = await arrangeOverdue();
    // The supervisor writes the ledger just before the Lambda's first write of it lands.
    const s3 = motoClients().s3;
    let raced = false;
    s3.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { Key?: string };
        if (
          !raced &&
          context.commandName === 'PutObjectCommand' &&
          input.Key === ledgerKey('run-overdue')
        ) {
          raced = true;
          const current = (await readLedger('run-overdue')) as Ledger;
          await putJson(ledgerKey('run-overdue'), { ...current, lastStep: 1300 });
        }
        return next(args);
      },
      { step: 'initialize' },
    );

    await handlerModule.enforceLimits({ ...clients, s3 }, env, now);

    expect(raced).toBe(true);
    expect(await readLedger('run-overdue')).toMatchObject({
      status: 'stopped-by-safety',
      reason: 'max-runtime',
      lastStep: 1300,
    });
  });

  test("a ledger that already records the run's end is not relabelled", async () => {
    const { env, now, instanceId } = await arrangeOverdue();
    const completed = {
      ...(await readLedger('run-overdue')),
      status: 'completed',
      reason: 'completed',
      endedAt: '2026-01-01T10:00:00Z',
    };
    await putJson(ledgerKey('run-overdue'), completed);

    await handlerModule.enforceLimits(clients, env, now);

    expect(ENDED).toContain(await stateOf(instanceId));
    expect(await readLedger('run-overdue')).toEqual(completed);
  });
});

describe('S3 answers 403 instead of 404', () => {
  test('for a missing ledger and meter: the Lambda lists the key and treats it as missing', async () => {
    const base = await arrangeBase();
    const { instanceId } = await createGroup(
      'DeniedStack',
      runTags('DeniedStack', 'run-denied', { [TAG_KEYS.maxRuntimeHours]: '12' }),
    );
    const { s3, denied } = deniedS3((_key, missing) => missing);

    const report = await handlerModule.enforceLimits(
      { ...clients, s3 },
      envFor(base, 'DeniedStack'),
      new Date(Date.now() + 13 * HOUR),
    );

    expect(denied).toEqual(
      expect.arrayContaining([meterKey('run-denied'), ledgerKey('run-denied')]),
    );
    expect(report.failures).toEqual([]);
    expect(report.stopped).toEqual([
      expect.objectContaining({ instanceId, reason: 'max-runtime' }),
    ]);
    expect(await readMeter('run-denied')).toMatchObject({ runId: 'run-denied' });
    expect(await readLedger('run-denied')).toMatchObject({
      runId: 'run-denied',
      status: 'stopped-by-safety',
    });
  });

  test('for a key that exists (the listing shows it): the pass fails and says which run', async () => {
    const base = await arrangeBase();
    const id = await runInstance(base, runTags('LockedStack', 'run-locked'));
    const meter: Meter = {
      schemaVersion: 1,
      runId: 'run-locked',
      updatedAt: new Date().toISOString(),
      instances: {},
    };
    await putJson(meterKey('run-locked'), meter);
    const { s3, denied } = deniedS3((key) => key === meterKey('run-locked'));

    await expect(
      handlerModule.enforceLimits({ ...clients, s3 }, envFor(base, 'LockedStack'), new Date()),
    ).rejects.toThrow(/metering run run-locked failed: AccessDenied: Access Denied/);

    expect(denied).toEqual([meterKey('run-locked')]);
    expect(await readMeter('run-locked')).toEqual(meter);
    expect(await stateOf(id)).toBe('running');
  });
});

describe('partial failures', () => {
  test('a failed publish still terminates, then the invocation throws naming the step', async () => {
    const { env, now, instanceId } = await arrangeOverdue();
    const noTopic = { ...env, topicArn: `arn:aws:sns:${REGION}:123456789012:no-such-topic` };
    await expect(handlerModule.enforceLimits(clients, noTopic, now)).rejects.toThrow(
      /publishing to the topic failed/,
    );
    expect(ENDED).toContain(await stateOf(instanceId));
    expect((await readLedger('run-overdue'))?.status).toBe('stopped-by-safety');
  });
});

describe('the deployed entry point', () => {
  test('handler() uses the module clients from the environment and finds nothing overdue now', async () => {
    const base = await arrangeBase();
    const { instanceId } = await createGroup(HANDLER_STACK, runTags(HANDLER_STACK, 'run-now'));
    await runInstance(base, runTags('OtherStack', 'run-other'));

    const report = await handlerModule.handler();

    expect(report.stopped).toEqual([]);
    expect(report.failures).toEqual([]);
    expect(report.kept.map((k) => k.instanceId)).toEqual([instanceId]);
    expect(await readMeter('run-now')).toMatchObject({ runId: 'run-now' });
  });

  test('a missing environment variable fails the cold start naming every one, in order', () => {
    expect(() => readSafetyEnv({ [SAFETY_ENV.stackName]: HANDLER_STACK })).toThrow(
      'safety Lambda: missing environment variables TUNING_LAB_TOPIC_ARN, ' +
        'TUNING_LAB_OUTPUTS_BUCKET, TUNING_LAB_DEFAULT_MAX_RUNTIME_HOURS, AWS_REGION',
    );
  });

  test.each([
    [
      SAFETY_ENV.defaultMaxRuntimeHours,
      '0',
      "TUNING_LAB_DEFAULT_MAX_RUNTIME_HOURS must be a number of hours > 0, got '0'",
    ],
  ])('%s=%s fails the cold start', (name, value, message) => {
    expect(() => readSafetyEnv({ ...process.env, [name]: value })).toThrow(
      `safety Lambda: ${message}`,
    );
  });
});
