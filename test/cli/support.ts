/**
 * The command line's tests: their own moto server (the safety Lambda's tests reset the shared
 * one), a stack in its CloudFormation whose outputs name a bucket holding runs the instance
 * runtime's own code wrote (testing/run_fixtures.py), a GPU group and a log group; and the
 * command line run in-process through the real SDK v3 clients, as `npx tuning-lab` runs it.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { AutoScalingClient, CreateAutoScalingGroupCommand } from '@aws-sdk/client-auto-scaling';
import { CloudFormationClient, CreateStackCommand } from '@aws-sdk/client-cloudformation';
import {
  CloudWatchLogsClient,
  CreateLogGroupCommand,
  CreateLogStreamCommand,
  PutLogEventsCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import { CreateLaunchTemplateCommand, DescribeImagesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { STACK_OUTPUTS } from '../../lib/contract';
import type { CliContext } from '../../cli/context';
import { main } from '../../cli/main';

export const ROOT = join(__dirname, '..', '..');
export const REGION = 'us-east-1';
const PYTHON = join(ROOT, '.venv', 'bin', 'python');

export { startMoto, type Moto } from '../support/moto-server';
import type { Moto } from '../support/moto-server';

/** Stops the server (it exits when its stdin closes) and closes the set-up clients. */
export async function stopMoto(moto?: Moto): Promise<void> {
  for (const client of made.splice(0)) client.destroy();
  if (!moto || moto.child.exitCode !== null) return;
  const exited = new Promise((resolve) => moto.child.once('exit', resolve));
  moto.child.stdin?.end();
  const timer = setTimeout(() => moto.child.kill(), 10_000);
  await exited;
  clearTimeout(timer);
}

const made: { destroy(): void }[] = [];

/** The environment the SDK (and `npx tuning-lab`) needs to reach this moto, and nothing else. */
export function motoEnv(url: string): Record<string, string> {
  return {
    AWS_ENDPOINT_URL: url,
    AWS_REGION: REGION,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_SESSION_TOKEN: 'testing',
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  };
}

export function clients(url: string) {
  const config = {
    endpoint: url,
    region: REGION,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing', sessionToken: 'testing' },
  };
  const set = {
    s3: new S3Client({ ...config, forcePathStyle: true }),
    cloudformation: new CloudFormationClient(config),
    logs: new CloudWatchLogsClient(config),
    ec2: new EC2Client(config),
    autoscaling: new AutoScalingClient(config),
  };
  made.push(...Object.values(set));
  return set;
}

export interface FixtureSummary {
  bucket: string;
  runs: {
    finished: {
      runId: string;
      instanceId: string;
      finalFiles: { path: string; size: number; sha256: string }[];
    };
    resumed: { runId: string; instances: string[] };
    failed: { runId: string; instanceId: string };
    live: { runId: string; instanceId: string };
  };
  extra: string[];
}

export interface TestStack {
  readonly name: string;
  readonly bucket: string;
  readonly groupName: string;
  readonly logGroup: string;
  readonly fixtures: FixtureSummary;
}

/**
 * A stack named `name` whose outputs name a new bucket of fixture runs, a GPU group of one and a
 * log group with the live run's trainer stream; `runId` is the RunId output (none: no run
 * configured, as after `createInstance=false`).
 */
export async function arrangeStack(
  url: string,
  name: string,
  options: { runId?: string; extraRuns?: number; group?: boolean } = {},
): Promise<TestStack> {
  const aws = clients(url);
  const suffix = name.toLowerCase();
  const bucket = `outputs-${suffix}`;
  const groupName = `gpu-${suffix}`;
  const logGroup = `/tuning-lab/${name}/training`;
  await aws.s3.send(new CreateBucketCommand({ Bucket: bucket }));
  const written = spawnSync(
    PYTHON,
    ['-m', 'testing.run_fixtures', '--bucket', bucket, '--extra', String(options.extraRuns ?? 0)],
    {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, ...motoEnv(url) },
    },
  );
  if (written.status !== 0) throw new Error(`run_fixtures failed: ${written.stderr}`);
  const fixtures = JSON.parse(written.stdout) as FixtureSummary;

  if (options.group !== false) {
    const images = await aws.ec2.send(new DescribeImagesCommand({}));
    const template = await aws.ec2.send(
      new CreateLaunchTemplateCommand({
        LaunchTemplateName: `lt-${suffix}`,
        LaunchTemplateData: { ImageId: images.Images?.[0]?.ImageId, InstanceType: 'g5.xlarge' },
      }),
    );
    await aws.autoscaling.send(
      new CreateAutoScalingGroupCommand({
        AutoScalingGroupName: groupName,
        LaunchTemplate: { LaunchTemplateId: template.LaunchTemplate?.LaunchTemplateId },
        MinSize: 0,
        MaxSize: 1,
        DesiredCapacity: 1,
        AvailabilityZones: [`${REGION}a`],
      }),
    );
  }
  await aws.logs.send(new CreateLogGroupCommand({ logGroupName: logGroup }));
  const live = fixtures.runs.live;
  const stream = `${live.runId}/${live.instanceId}/attempt-1`;
  await aws.logs.send(
    new CreateLogStreamCommand({ logGroupName: logGroup, logStreamName: stream }),
  );
  const start = Date.now() - 60_000;
  await aws.logs.send(
    new PutLogEventsCommand({
      logGroupName: logGroup,
      logStreamName: stream,
      logEvents: [
        { timestamp: start, message: 'loading builtin:tiny-llama' },
        {
          timestamp: start + 1000,
          message: `{"_aws": {}, "RunId": "${live.runId}", "step": 10, "loss": 1.8}`,
        },
        { timestamp: start + 2000, message: 'step 40/60 loss 0.7380 lr 6.67e-05 tok/s 1800' },
      ],
    }),
  );

  const outputs: Record<string, string> = {
    [STACK_OUTPUTS.outputsBucket]: bucket,
    [STACK_OUTPUTS.groupName]: groupName,
    [STACK_OUTPUTS.logGroup]: logGroup,
  };
  if (options.runId) outputs[STACK_OUTPUTS.runId] = options.runId;
  await aws.cloudformation.send(
    new CreateStackCommand({
      StackName: name,
      TemplateBody: JSON.stringify({
        Resources: { Topic: { Type: 'AWS::SNS::Topic' } },
        Outputs: Object.fromEntries(
          Object.entries(outputs).map(([key, value]) => [key, { Value: value }]),
        ),
      }),
    }),
  );
  return { name, bucket, groupName, logGroup, fixtures };
}

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly calls: number;
  readonly byOperation: Record<string, number>;
  readonly seconds: number;
}

class Capture {
  text = '';
  constructor(readonly isTTY = false) {}
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

/** `npx tuning-lab <argv>` in-process, with the emulator's environment; output captured. */
export async function cli(
  url: string,
  argv: string[],
  now = new Date('2026-11-30T13:30:00Z'),
): Promise<CliResult> {
  const env = motoEnv(url);
  const names = [...Object.keys(env), 'AWS_PROFILE', 'AWS_DEFAULT_REGION'];
  const saved = Object.fromEntries(names.map((name) => [name, process.env[name]]));
  delete process.env.AWS_PROFILE;
  delete process.env.AWS_DEFAULT_REGION;
  Object.assign(process.env, env);
  const stdout = new Capture();
  const stderr = new Capture();
  let ctx: CliContext | undefined;
  const started = process.hrtime.bigint();
  try {
    const code = await main(argv, {
      stdout,
      stderr,
      env: process.env,
      now: () => now,
      onContext: (c) => (ctx = c),
    });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return {
      code,
      stdout: stdout.text,
      stderr: stderr.text,
      calls: ctx?.calls.total ?? 0,
      byOperation: Object.fromEntries(ctx?.calls.byOperation ?? []),
      seconds,
    };
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}
