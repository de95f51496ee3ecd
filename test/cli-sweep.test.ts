/**
 * `tuning-lab sweep` against the emulator: what still bills with no run to show for it is
 * found, priced and, with --delete --yes, removed.
 */
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import {
  AutoScalingClient,
  CreateAutoScalingGroupCommand,
  DescribeAutoScalingGroupsCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  CreateLaunchTemplateCommand,
  CreateVolumeCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  EC2Client,
  RunInstancesCommand,
} from '@aws-sdk/client-ec2';
import { ledgerKey, TAG_KEYS } from '../lib/contract';
import { ON_DEMAND_USD_PER_HOUR } from '../lib/pricing';
import type { Leak } from '../cli/sweep';
import { useOwnEmulator } from './support/cli-moto';

const emulator = useOwnEmulator();
const STACK = 'TrainingStack';
const OUTPUTS = 'tuning-outputs';
const DATA = 'tuning-data';
/** A day and an hour later: past every grace time (boot, run end, upload). */
const LATER = () => new Date(Date.now() + 25 * 3600_000);

let ec2: EC2Client;
let s3: S3Client;

async function launch(tags: Record<string, string>): Promise<string> {
  const image = (await ec2.send(new DescribeImagesCommand({ Owners: ['amazon'] }))).Images?.[0];
  const found = await ec2.send(
    new RunInstancesCommand({
      ImageId: image?.ImageId,
      InstanceType: 'g5.xlarge',
      MinCount: 1,
      MaxCount: 1,
      TagSpecifications: [
        {
          ResourceType: 'instance',
          Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
        },
      ],
    }),
  );
  return found.Instances?.[0].InstanceId as string;
}

async function state(instanceId: string): Promise<string | undefined> {
  const found = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
  return found.Reservations?.[0].Instances?.[0].State?.Name;
}

async function sweep(...args: string[]) {
  const result = await emulator.run(['sweep', '--json', ...args], LATER);
  return {
    code: result.code,
    report: JSON.parse(result.stdout) as { leaks: Leak[]; usdPerHour: number },
  };
}

beforeEach(async () => {
  await emulator.reset();
  ec2 = new EC2Client(emulator.config());
  s3 = new S3Client({ ...emulator.config(), forcePathStyle: true });
  for (const bucket of [OUTPUTS, DATA]) await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await emulator.stackWithOutputs(STACK, { OutputsBucketName: OUTPUTS, DataBucketName: DATA });
});

test('finds an instance of the stack whose run has no ledger, priced per hour', async () => {
  const leaked = await launch({ [TAG_KEYS.stack]: STACK, [TAG_KEYS.runId]: 'run-ghost' });

  const { code, report } = await sweep();

  expect(code).toBe(1);
  expect(report.leaks).toEqual([
    expect.objectContaining({
      kind: 'instance',
      id: leaked,
      why: 'g5.xlarge: run run-ghost has no ledger',
      usdPerHour: ON_DEMAND_USD_PER_HOUR['g5.xlarge'],
      action: 'terminate',
    }),
  ]);
});

test("finds an instance outside the group whose run ended; ignores other stacks' instances", async () => {
  await s3.send(
    new PutObjectCommand({
      Bucket: OUTPUTS,
      Key: ledgerKey('run-done'),
      Body: JSON.stringify({
        schemaVersion: 1,
        runId: 'run-done',
        status: 'completed',
        endedAt: new Date().toISOString(),
      }),
    }),
  );
  const stray = await launch({ [TAG_KEYS.stack]: STACK, [TAG_KEYS.runId]: 'run-done' });
  await launch({ [TAG_KEYS.stack]: 'OtherStack', [TAG_KEYS.runId]: 'run-done' });

  const { report } = await sweep();

  expect(report.leaks.map((l) => [l.kind, l.id, l.why])).toEqual([
    ['instance', stray, 'g5.xlarge: outside the group (run run-done is completed)'],
  ]);
});

test('finds an incomplete multipart upload with the size of its parts', async () => {
  const upload = await s3.send(
    new CreateMultipartUploadCommand({
      Bucket: OUTPUTS,
      Key: 'runs/run-x/checkpoints/step-9/model.safetensors',
    }),
  );
  await s3.send(
    new UploadPartCommand({
      Bucket: OUTPUTS,
      Key: 'runs/run-x/checkpoints/step-9/model.safetensors',
      UploadId: upload.UploadId,
      PartNumber: 1,
      Body: Buffer.alloc(5 * 1024 * 1024),
    }),
  );

  const { report } = await sweep();

  expect(report.leaks).toEqual([
    expect.objectContaining({
      kind: 'upload',
      id: `s3://${OUTPUTS}/runs/run-x/checkpoints/step-9/model.safetensors`,
      why: expect.stringContaining('1 parts (5242880 bytes)'),
      action: 'abort upload',
    }),
  ]);
});

test('finds an unattached volume with the stack tag', async () => {
  const volume = await ec2.send(
    new CreateVolumeCommand({
      AvailabilityZone: 'us-east-1a',
      Size: 200,
      VolumeType: 'gp3',
      TagSpecifications: [
        { ResourceType: 'volume', Tags: [{ Key: TAG_KEYS.stack, Value: STACK }] },
      ],
    }),
  );

  const { report } = await sweep();

  expect(report.leaks).toEqual([
    expect.objectContaining({
      kind: 'volume',
      id: volume.VolumeId,
      usdPerHour: (200 * 0.08) / 730,
      action: 'delete volume',
    }),
  ]);
});

test('--delete --yes terminates the instance and aborts the upload; then nothing is left', async () => {
  const leaked = await launch({ [TAG_KEYS.stack]: STACK, [TAG_KEYS.runId]: 'run-ghost' });
  const key = 'runs/run-x/final/model.safetensors';
  const upload = await s3.send(new CreateMultipartUploadCommand({ Bucket: OUTPUTS, Key: key }));

  const removed = await sweep('--delete', '--yes');
  const after = await sweep();

  expect(removed.code).toBe(0);
  expect(await state(leaked)).toMatch(/shutting-down|terminated/);
  const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: OUTPUTS }));
  expect(uploads.Uploads ?? []).toEqual([]);
  expect(after).toEqual({ code: 0, report: expect.objectContaining({ leaks: [] }) });
  await s3
    .send(new AbortMultipartUploadCommand({ Bucket: OUTPUTS, Key: key, UploadId: upload.UploadId }))
    .catch(() => undefined);
});

test('finds the group above 0 after its run ended; --delete sets it to 0', async () => {
  const image = (await ec2.send(new DescribeImagesCommand({ Owners: ['amazon'] }))).Images?.[0];
  await ec2.send(
    new CreateLaunchTemplateCommand({
      LaunchTemplateName: 'gpu',
      LaunchTemplateData: { ImageId: image?.ImageId, InstanceType: 'g5.xlarge' },
    }),
  );
  const autoscaling = new AutoScalingClient(emulator.config());
  await autoscaling.send(
    new CreateAutoScalingGroupCommand({
      AutoScalingGroupName: 'gpu-group',
      LaunchTemplate: { LaunchTemplateName: 'gpu', Version: '$Latest' },
      MinSize: 0,
      MaxSize: 1,
      DesiredCapacity: 1,
      AvailabilityZones: ['us-east-1a'],
    }),
  );
  await s3.send(
    new PutObjectCommand({
      Bucket: OUTPUTS,
      Key: ledgerKey('run-done'),
      Body: JSON.stringify({
        schemaVersion: 1,
        runId: 'run-done',
        status: 'failed',
        endedAt: new Date().toISOString(),
      }),
    }),
  );
  await emulator.stackWithOutputs('Grouped', {
    OutputsBucketName: OUTPUTS,
    GpuGroupName: 'gpu-group',
    RunId: 'run-done',
  });

  const found = await emulator.run(['sweep', '--json', '--stack', 'Grouped'], LATER);
  const removed = await emulator.run(['sweep', '--stack', 'Grouped', '--delete', '--yes'], LATER);

  expect(JSON.parse(found.stdout).leaks).toEqual([
    expect.objectContaining({
      kind: 'capacity',
      id: 'gpu-group',
      why: expect.stringContaining('desired capacity 1 but run run-done ended (failed)'),
      action: 'set capacity 0',
    }),
  ]);
  expect(removed.stdout).toContain('set gpu-group to capacity 0');
  const group = await autoscaling.send(
    new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ['gpu-group'] }),
  );
  expect(group.AutoScalingGroups?.[0].DesiredCapacity).toBe(0);
});

test('--delete without --yes on a non-terminal is exit 2', async () => {
  const result = await emulator.run(['sweep', '--delete'], LATER);

  expect(result.code).toBe(2);
  expect(result.stderr).toContain('add --yes');
});

test('a stack with nothing leaked says so and exits 0', async () => {
  const result = await emulator.run(['sweep'], LATER);

  expect(result.code).toBe(0);
  expect(result.stdout).toContain('nothing of TrainingStack bills without a run');
});
