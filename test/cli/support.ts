/**
 * The command line's tests: their own moto server (the safety Lambda's tests reset the shared
 * one), a stack in its CloudFormation whose outputs name a bucket holding runs the instance
 * runtime's own code wrote (testing/run_fixtures.py), a GPU group and a log group; and the
 * command line run in-process through the real SDK v3 clients, as `npx tuning-lab` runs it.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { AutoScalingClient, CreateAutoScalingGroupCommand } from '@aws-sdk/client-auto-scaling';
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import {
  CloudWatchLogsClient,
  CreateLogGroupCommand,
  CreateLogStreamCommand,
  PutLogEventsCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import { CreateLaunchTemplateCommand, DescribeImagesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { STACK_OUTPUTS } from '../../lib/contract';
import { REGION } from '../support/moto';
import {
  clientConfig,
  motoEnv,
  runCli,
  stackWithOutputs,
  stopMoto as stopServer,
  type CliResult,
  type Moto,
} from '../support/cli-moto';

export { motoEnv, startMoto, type CliResult, type Moto } from '../support/cli-moto';
export const ROOT = join(__dirname, '..', '..');
const PYTHON = join(ROOT, '.venv', 'bin', 'python');

const made: { destroy(): void }[] = [];

/** Stops the server and closes the set-up clients. */
export async function stopMoto(moto?: Moto): Promise<void> {
  for (const client of made.splice(0)) client.destroy();
  await stopServer(moto);
}

export function clients(url: string) {
  const config = clientConfig(url);
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
  await stackWithOutputs(url, name, outputs);
  return { name, bucket, groupName, logGroup, fixtures };
}

/** `npx tuning-lab <argv>` in-process, with the emulator's environment, at a fixed time. */
export function cli(
  url: string,
  argv: string[],
  now = new Date('2026-11-30T13:30:00Z'),
): Promise<CliResult> {
  return runCli(url, argv, () => now);
}
