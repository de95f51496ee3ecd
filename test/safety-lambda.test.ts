/**
 * The safety Lambda's adapter in-process against moto's server, through the real AWS SDK v3
 * clients: what it stops, what it leaves alone, what it writes, and that a second pass is a no-op.
 */
import {
  CreateAutoScalingGroupCommand,
  DescribeAutoScalingGroupsCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  CreateLaunchTemplateCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  RunInstancesCommand,
  type Tag,
} from '@aws-sdk/client-ec2';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { CreateTopicCommand, SubscribeCommand } from '@aws-sdk/client-sns';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
} from '@aws-sdk/client-sqs';
import { ledgerKey, TAG_KEYS, type Ledger } from '../lib/contract';
import { SAFETY_ENV, readSafetyEnv, type SafetyEnv } from '../lambda/safety/env';
import type { SafetyReport } from '../lambda/safety/handler';
import { motoClients, motoUrl, REGION, resetMoto } from './support/moto';

const STACK = 'TrainingStack';
const HOUR = 3600_000;
type Handler = typeof import('../lambda/safety/handler');

const clients = motoClients();
let handlerModule: Handler;

beforeAll(async () => {
  jest.spyOn(console, 'log').mockImplementation(() => undefined); // the handler's decision log
  // The handler validates its environment at cold start (import time).
  Object.assign(process.env, {
    [SAFETY_ENV.stackName]: STACK,
    [SAFETY_ENV.topicArn]: `arn:aws:sns:${REGION}:123456789012:alerts`,
    [SAFETY_ENV.outputsBucket]: 'outputs',
    [SAFETY_ENV.defaultMaxRuntimeHours]: '12',
    AWS_REGION: REGION,
    AWS_ENDPOINT_URL: motoUrl(),
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_SESSION_TOKEN: 'testing',
  });
  handlerModule = await import('../lambda/safety/handler');
});

interface World {
  env: SafetyEnv;
  queueUrl: string;
  ids: Record<
    'groupOverdue' | 'overBudget' | 'spotWithinCap' | 'within' | 'otherStack' | 'untagged',
    string
  >;
  groupName: string;
  launchedAt: Date;
}

const tags = (values: Record<string, string>): Tag[] =>
  Object.entries(values).map(([Key, Value]) => ({ Key, Value }));

async function runInstance(
  image: string,
  values: Record<string, string>,
  spot = false,
): Promise<string> {
  const result = await clients.ec2.send(
    new RunInstancesCommand({
      ImageId: image,
      MinCount: 1,
      MaxCount: 1,
      InstanceType: 'g5.xlarge',
      Placement: { AvailabilityZone: `${REGION}a` },
      ...(spot ? { InstanceMarketOptions: { MarketType: 'spot' } } : {}),
      ...(Object.keys(values).length
        ? { TagSpecifications: [{ ResourceType: 'instance', Tags: tags(values) }] }
        : {}),
    }),
  );
  return result.Instances?.[0].InstanceId as string;
}

/** A stack's group with an overdue instance, and instances that must be left alone. */
async function arrange(): Promise<World> {
  await resetMoto();
  const { ec2, autoscaling, s3, sns, sqs } = clients;
  await s3.send(new CreateBucketCommand({ Bucket: 'outputs' }));
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
  const groupName = 'gpu-group';
  await autoscaling.send(
    new CreateAutoScalingGroupCommand({
      AutoScalingGroupName: groupName,
      MinSize: 0,
      MaxSize: 1,
      DesiredCapacity: 1,
      AvailabilityZones: [`${REGION}a`],
      LaunchTemplate: { LaunchTemplateName: 'gpu-template', Version: '$Latest' },
      Tags: [
        { Key: TAG_KEYS.stack, Value: STACK, PropagateAtLaunch: true },
        { Key: TAG_KEYS.runId, Value: 'run-overdue', PropagateAtLaunch: true },
        { Key: TAG_KEYS.maxRuntimeHours, Value: '12', PropagateAtLaunch: true },
      ],
    }),
  );
  const mine = { [TAG_KEYS.stack]: STACK, [TAG_KEYS.maxRuntimeHours]: '48' };
  const ids = {
    groupOverdue: '',
    overBudget: await runInstance(image, {
      ...mine,
      [TAG_KEYS.runId]: 'run-costly',
      [TAG_KEYS.maxRunCostUsd]: '5',
    }),
    spotWithinCap: await runInstance(
      image,
      { ...mine, [TAG_KEYS.runId]: 'run-spot', [TAG_KEYS.maxRunCostUsd]: '1' },
      true,
    ),
    within: await runInstance(image, { ...mine, [TAG_KEYS.runId]: 'run-fine' }),
    otherStack: await runInstance(image, {
      [TAG_KEYS.stack]: 'OtherStack',
      [TAG_KEYS.runId]: 'run-x',
      [TAG_KEYS.maxRuntimeHours]: '1',
    }),
    untagged: await runInstance(image, {}),
  };
  const all = await listInstances();
  ids.groupOverdue = all.find((i) => i.tags['aws:autoscaling:groupName'] === groupName)
    ?.id as string;
  expect(ids.groupOverdue).toMatch(/^i-/);

  // The supervisor's ledger of the overdue run: the Lambda must keep what it wrote.
  const ledger: Ledger = {
    schemaVersion: 1,
    runId: 'run-overdue',
    status: 'running',
    instanceId: ids.groupOverdue,
    lastStep: 1234,
    attempts: [
      {
        instanceId: ids.groupOverdue,
        instanceType: 'g5.xlarge',
        market: 'on-demand',
        startedAt: '2026-01-01T00:00:00Z',
        endedAt: null,
        exitCode: null,
      },
    ],
  };
  await s3.send(
    new PutObjectCommand({
      Bucket: 'outputs',
      Key: ledgerKey('run-overdue'),
      Body: JSON.stringify(ledger),
    }),
  );

  const env = readSafetyEnv({ ...process.env, [SAFETY_ENV.topicArn]: topicArn });
  return { env, queueUrl, ids, groupName, launchedAt: new Date() };
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

async function messages(queueUrl: string) {
  const received = await clients.sqs.send(
    new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
  );
  return (received.Messages ?? []).map((m) => JSON.parse(m.Body as string));
}

async function readLedger(runId: string): Promise<Ledger | undefined> {
  try {
    const object = await clients.s3.send(
      new GetObjectCommand({ Bucket: 'outputs', Key: ledgerKey(runId) }),
    );
    return JSON.parse(
      await (object.Body as { transformToString(): Promise<string> }).transformToString(),
    );
  } catch {
    return undefined;
  }
}

describe('one safety pass 13 hours after launch', () => {
  let world: World;
  let report: SafetyReport;
  let now: Date;

  beforeAll(async () => {
    world = await arrange();
    now = new Date(world.launchedAt.getTime() + 13 * HOUR);
    report = await handlerModule.enforceLimits(clients, world.env, now);
  });

  test('the overdue instance of the group is terminated for max-runtime', async () => {
    expect(report.stopped).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ instanceId: world.ids.groupOverdue, reason: 'max-runtime' }),
      ]),
    );
    expect(['shutting-down', 'terminated']).toContain(await stateOf(world.ids.groupOverdue));
  });

  test("the group's desired capacity is set to 0 so it launches no replacement", async () => {
    const groups = await clients.autoscaling.send(
      new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [world.groupName] }),
    );
    expect(groups.AutoScalingGroups?.[0].DesiredCapacity).toBe(0);
  });

  test('the on-demand instance over its run cost cap is terminated for max-cost', async () => {
    expect(report.stopped).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ instanceId: world.ids.overBudget, reason: 'max-cost' }),
      ]),
    );
    expect(['shutting-down', 'terminated']).toContain(await stateOf(world.ids.overBudget));
  });

  test('a spot instance is priced by the spot price history, so it stays under its cap', async () => {
    expect(report.kept.map((k) => k.instanceId)).toContain(world.ids.spotWithinCap);
    expect(await stateOf(world.ids.spotWithinCap)).toBe('running');
  });

  test('an instance of this stack within its limits keeps running', async () => {
    expect(report.kept.map((k) => k.instanceId)).toContain(world.ids.within);
    expect(await stateOf(world.ids.within)).toBe('running');
  });

  test("other stacks' and untagged instances are neither considered nor touched", async () => {
    const considered = [...report.stopped, ...report.kept, ...report.skipped].map(
      (d) => d.instanceId,
    );
    expect(considered).not.toContain(world.ids.otherStack);
    expect(considered).not.toContain(world.ids.untagged);
    expect(await stateOf(world.ids.otherStack)).toBe('running');
    expect(await stateOf(world.ids.untagged)).toBe('running');
  });

  test('the ledger records the stop and keeps what the supervisor wrote', async () => {
    const ledger = await readLedger('run-overdue');
    expect(ledger).toMatchObject({
      runId: 'run-overdue',
      status: 'stopped-by-safety',
      reason: 'max-runtime',
      endedAt: now.toISOString(),
      lastStep: 1234,
      billableSeconds: expect.any(Number),
      estimatedCostUsd: expect.any(Number),
    });
    expect(ledger?.billableSeconds).toBeGreaterThanOrEqual(13 * 3600 - 60);
    expect(ledger?.attempts?.[0]).toMatchObject({
      instanceId: world.ids.groupOverdue,
      startedAt: '2026-01-01T00:00:00Z',
      endedAt: now.toISOString(),
    });
  });

  test('a run without a ledger gets one', async () => {
    expect(await readLedger('run-costly')).toMatchObject({
      runId: 'run-costly',
      status: 'stopped-by-safety',
      reason: 'max-cost',
      instanceId: world.ids.overBudget,
    });
  });

  test('one SNS message per stopped run, in the contract format', async () => {
    const received = await messages(world.queueUrl);
    expect(received.map((m) => m.Subject).sort()).toEqual([
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

  test('a second pass changes nothing', async () => {
    const ledgerBefore = await readLedger('run-overdue');
    const again = await handlerModule.enforceLimits(
      clients,
      world.env,
      new Date(now.getTime() + 5 * 60_000),
    );
    expect(again.stopped).toEqual([]);
    expect(again.failures).toEqual([]);
    expect(await messages(world.queueUrl)).toEqual([]);
    expect(await readLedger('run-overdue')).toEqual(ledgerBefore);
    expect(await stateOf(world.ids.within)).toBe('running');
  });
});

describe('the ledger is shared with the supervisor', () => {
  test("a supervisor write between the Lambda's read and its write is kept", async () => {
    const world = await arrange();
    const now = new Date(world.launchedAt.getTime() + 13 * HOUR);
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
          await clients.s3.send(
            new PutObjectCommand({
              Bucket: 'outputs',
              Key: ledgerKey('run-overdue'),
              Body: JSON.stringify({ ...current, lastStep: 1300 }),
            }),
          );
        }
        return next(args);
      },
      { step: 'initialize' },
    );

    await handlerModule.enforceLimits({ ...clients, s3 }, world.env, now);

    expect(raced).toBe(true);
    expect(await readLedger('run-overdue')).toMatchObject({
      status: 'stopped-by-safety',
      reason: 'max-runtime',
      lastStep: 1300,
    });
  });

  test("a ledger that already records the run's end is not relabelled", async () => {
    const world = await arrange();
    const completed = {
      ...(await readLedger('run-overdue')),
      status: 'completed',
      reason: 'completed',
      endedAt: '2026-01-01T10:00:00Z',
    };
    await clients.s3.send(
      new PutObjectCommand({
        Bucket: 'outputs',
        Key: ledgerKey('run-overdue'),
        Body: JSON.stringify(completed),
      }),
    );

    await handlerModule.enforceLimits(
      clients,
      world.env,
      new Date(world.launchedAt.getTime() + 13 * HOUR),
    );

    expect(['shutting-down', 'terminated']).toContain(await stateOf(world.ids.groupOverdue));
    expect(await readLedger('run-overdue')).toEqual(completed);
  });
});

describe('partial failures', () => {
  test('a failed publish still terminates, then the invocation throws naming the step', async () => {
    const world = await arrange();
    const env = { ...world.env, topicArn: `arn:aws:sns:${REGION}:123456789012:no-such-topic` };
    const now = new Date(world.launchedAt.getTime() + 13 * HOUR);
    await expect(handlerModule.enforceLimits(clients, env, now)).rejects.toThrow(
      /publishing to the topic failed/,
    );
    expect(['shutting-down', 'terminated']).toContain(await stateOf(world.ids.groupOverdue));
    expect((await readLedger('run-overdue'))?.status).toBe('stopped-by-safety');
  });
});

describe('the deployed entry point', () => {
  test('handler() uses the module clients from the environment and finds nothing overdue now', async () => {
    const world = await arrange();
    process.env[SAFETY_ENV.topicArn] = world.env.topicArn;
    const report = await handlerModule.handler();
    expect(report.stopped).toEqual([]);
    expect(report.kept.length).toBe(4);
  });

  test('a missing environment variable fails the cold start naming it', () => {
    expect(() => readSafetyEnv({ [SAFETY_ENV.stackName]: STACK })).toThrow(
      `safety Lambda: missing environment variables ${SAFETY_ENV.topicArn}, ${SAFETY_ENV.outputsBucket}, ${SAFETY_ENV.defaultMaxRuntimeHours}, AWS_REGION`,
    );
  });
});
