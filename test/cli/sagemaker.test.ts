/**
 * `npx tuning-lab logs` and `stop` for a run on the SageMaker backend, against the emulator:
 * the logs are the job's streams of SageMaker's log group, and stop ends the training job at
 * once (StopTrainingJob) besides writing the request the job controller honours.
 */
import {
  CloudWatchLogsClient,
  CreateLogGroupCommand,
  CreateLogStreamCommand,
  PutLogEventsCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import {
  CreateBucketCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import {
  CreateTrainingJobCommand,
  DescribeTrainingJobCommand,
  SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import {
  ledgerKey,
  SAGEMAKER_TRAINING_LOG_GROUP,
  stopRequestKey,
  trainingJobName,
  trainingJobStackPrefix,
} from '../../lib/contract';
import { trainingJobRequest } from '../../lambda/jobs/request';
import { useOwnEmulator } from '../support/cli-moto';

const STACK = 'SageMakerStack';
const RUN = 'run-sm000001';
const BUCKET = 'sm-outputs';
let JOB: string; // named after the stack's id, known once it exists
const emulator = useOwnEmulator();

beforeAll(async () => {
  const config = emulator.config();
  const s3 = new S3Client({ ...config, forcePathStyle: true });
  const sagemaker = new SageMakerClient(config);
  const logs = new CloudWatchLogsClient(config);
  try {
    const stackId = await emulator.stackWithOutputs(STACK, {
      OutputsBucketName: BUCKET,
      LogGroupName: SAGEMAKER_TRAINING_LOG_GROUP,
      Backend: 'sagemaker',
      TrainingJobPrefix: trainingJobStackPrefix(STACK),
      RunId: RUN,
    });
    JOB = trainingJobName(STACK, stackId, RUN, 1);
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const ledger = {
      schemaVersion: 1,
      runId: RUN,
      status: 'running',
      backend: 'sagemaker',
      instanceId: JOB,
      instanceType: 'ml.g5.2xlarge',
      startedAt: '2026-12-01T10:00:00.000Z',
      attempts: [{ instanceId: JOB, startedAt: '2026-12-01T10:00:00.000Z', endedAt: null }],
    };
    await s3.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: ledgerKey(RUN), Body: JSON.stringify(ledger) }),
    );
    await sagemaker.send(
      new CreateTrainingJobCommand(
        trainingJobRequest({
          jobName: JOB,
          outputsBucket: BUCKET,
          imageUri: '123456789012.dkr.ecr.us-east-1.amazonaws.com/trainer@sha256:00',
          settings: {
            schemaVersion: 1,
            stackName: STACK,
            region: 'us-east-1',
            runId: RUN,
            createJob: true,
            imageUri: '123456789012.dkr.ecr.us-east-1.amazonaws.com/trainer:latest',
            executionRoleArn: 'arn:aws:iam::123456789012:role/ExecutionRole',
            runConfig: {},
            dataRootUri: 's3://data/',
            outputUri: `s3://${BUCKET}/runs/${RUN}`,
            topicArn: 'arn:aws:sns:us-east-1:123456789012:alerts',
            instanceType: 'ml.g5.2xlarge',
            instanceCount: 1,
            volumeSizeGiB: 200,
            useSpot: true,
            maxRuntimeHours: 1,
            maxRunCostUsd: null,
            maxRetries: 0,
            idleMinutes: 30,
            usdPerHour: 1.515,
          },
        }),
      ),
    );
    await logs.send(new CreateLogGroupCommand({ logGroupName: SAGEMAKER_TRAINING_LOG_GROUP }));
    const logStreamName = `${JOB}/algo-1-1764583200`;
    await logs.send(
      new CreateLogStreamCommand({ logGroupName: SAGEMAKER_TRAINING_LOG_GROUP, logStreamName }),
    );
    await logs.send(
      new PutLogEventsCommand({
        logGroupName: SAGEMAKER_TRAINING_LOG_GROUP,
        logStreamName,
        logEvents: [
          { timestamp: Date.now() - 2000, message: 'loading builtin:tiny-llama' },
          { timestamp: Date.now() - 1000, message: 'step 10/60 loss 1.2000' },
        ],
      }),
    );
  } finally {
    for (const client of [s3, sagemaker, logs]) client.destroy();
  }
}, 60_000);

test("logs: the training job's streams of SageMaker's log group", async () => {
  const result = await emulator.run(['logs', '--stack', STACK]);

  expect(result.code).toBe(0);
  expect(result.stdout).toBe('loading builtin:tiny-llama\nstep 10/60 loss 1.2000\n');
  expect(result.stderr).toContain(`${SAGEMAKER_TRAINING_LOG_GROUP}, 1 stream(s)`);
});

test('stop: stops the training job at once and leaves the request for the controller', async () => {
  const result = await emulator.run(['stop', '--no-wait', '--stack', STACK]);

  expect(result.code).toBe(0);
  expect(result.stdout).toContain(`training job ${JOB} is stopping`);
  const sagemaker = new SageMakerClient(emulator.config());
  const s3 = new S3Client({ ...emulator.config(), forcePathStyle: true });
  try {
    const job = await sagemaker.send(new DescribeTrainingJobCommand({ TrainingJobName: JOB }));
    expect(job.TrainingJobStatus).toBe('Stopped');
    const request = await s3.send(
      new GetObjectCommand({ Bucket: BUCKET, Key: stopRequestKey(RUN) }),
    );
    expect(JSON.parse(await request.Body!.transformToString())).toMatchObject({ runId: RUN });
  } finally {
    sagemaker.destroy();
    s3.destroy();
  }
});

test("status: a SageMaker run's step, loss and ETA from the progress the controller publishes", async () => {
  const s3 = new S3Client({ ...emulator.config(), forcePathStyle: true });
  const now = Date.now();
  try {
    // As lambda/jobs/watch.ts writes it from the job's metric lines (contract section 11).
    const progress = {
      schemaVersion: 1,
      runId: RUN,
      instanceId: JOB,
      step: 20,
      maxSteps: 60,
      loss: 1.5,
      evalLoss: null,
      learningRate: 9e-5,
      tokensPerSecond: 820,
      attemptFirstStep: 10,
      attemptFirstStepAt: new Date(now - 600_000).toISOString(),
      updatedAt: new Date(now - 30_000).toISOString(),
    };
    await s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: `runs/${RUN}/progress.json`,
        Body: JSON.stringify(progress),
      }),
    );
  } finally {
    s3.destroy();
  }

  const result = await emulator.run(['status', RUN, '--stack', STACK], () => new Date(now));

  expect(result.code).toBe(0);
  expect(result.stdout).toMatch(/step\s+20\/60 \(33 %\)/);
  expect(result.stdout).toMatch(/loss\s+1\.5000/);
  expect(result.stdout).toMatch(/tokens\/s\s+820/);
  // 10 steps from the attempt's first (10 min ago) to the update (30 s ago): 40 to go, 38 min.
  expect(result.stdout).toMatch(/ETA\s+38 min 00 s/);
  expect(result.stdout).not.toMatch(/^group/m); // no Auto Scaling group on this backend
});
