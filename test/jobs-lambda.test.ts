/**
 * The job controller (lambda/jobs/handler.ts) in-process against moto's server, through the
 * real AWS SDK v3 clients: the training job request it sends (validated by the SDK and kept by
 * moto's SageMaker), what it records and sends for each way a job ends, its stops, and that a
 * second pass or a redeploy never starts a second job. moto marks a job Completed at once;
 * testing/sagemaker_jobs.py keeps it running and moves it as a test says (emulated only there).
 */
import {
  CloudFormationClient,
  CreateStackCommand,
  DeleteStackCommand,
} from '@aws-sdk/client-cloudformation';
import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import {
  CloudWatchLogsClient,
  CreateLogGroupCommand,
  CreateLogStreamCommand,
  PutLogEventsCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import { CreateRepositoryCommand, ECRClient, PutImageCommand } from '@aws-sdk/client-ecr';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import {
  CreateTrainingJobCommand,
  DescribeTrainingJobCommand,
  ListTrainingJobsCommand,
  SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CreateTopicCommand } from '@aws-sdk/client-sns';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import {
  jobRunConfigKey,
  jobSettingsParameterName,
  ledgerKey,
  messagesPrefix,
  stopRequestKey,
  trainingJobName,
  type JobSettingsDocument,
  type Ledger,
  type MessageRecord,
  type MetricsDocument,
  type ProgressDocument,
} from '../lib/contract';
import { JOBS_ENV, readJobsEnv, type JobsEnv } from '../lambda/jobs/env';
import type { JobsClients, JobsReport } from '../lambda/jobs/handler';
import { trainingJobRequest } from '../lambda/jobs/request';
import {
  motoClientConfig,
  motoClients,
  motoUrl,
  REGION,
  resetMoto,
  useOwnMotoServer,
} from './support/moto';

const STACK = 'TrainingStack';
const ACCOUNT_ID = '123456789012';
const STACK_ID = `arn:aws:cloudformation:us-east-1:${ACCOUNT_ID}:stack/${STACK}/6d5a3b40-cf1e-11f0-9d2b-0a1b2c3d4e5f`;
const BUCKET = 'outputs';
const RUN = 'run-3f2a9c1b';
const ACCOUNT = '123456789012';
const REPOSITORY = 'trainer';
const HOUR = 3600_000;
const PRICE = 1.515; // ml.g5.2xlarge, us-east-1 (lib/sagemaker-types.ts)
type Handler = typeof import('../lambda/jobs/handler');

useOwnMotoServer(); // this file resets moto between tests
let clients: JobsClients;
let handlerModule: Handler;
let env: JobsEnv;
let digest: string;

beforeAll(async () => {
  const base = motoClients();
  const config = motoClientConfig();
  clients = {
    sagemaker: new SageMakerClient(config),
    s3: base.s3,
    sns: base.sns,
    ssm: new SSMClient(config),
    ecr: new ECRClient(config),
    logs: new CloudWatchLogsClient(config),
    cloudwatch: new CloudWatchClient(config),
    cloudformation: new CloudFormationClient(config),
  };
  jest.spyOn(console, 'log').mockImplementation(() => undefined); // the pass's JSON report
  Object.assign(process.env, {
    [JOBS_ENV.stackName]: STACK,
    [JOBS_ENV.stackId]: STACK_ID,
    [JOBS_ENV.topicArn]: `arn:aws:sns:${REGION}:${ACCOUNT}:alerts`,
    [JOBS_ENV.outputsBucket]: BUCKET,
    [JOBS_ENV.jobSettingsParameter]: jobSettingsParameterName(STACK),
    AWS_REGION: REGION,
    AWS_ENDPOINT_URL: motoUrl(),
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_SESSION_TOKEN: 'testing',
  });
  handlerModule = await import('../lambda/jobs/handler');
  env = readJobsEnv(process.env);
});

function settings(fields: Partial<JobSettingsDocument> = {}): JobSettingsDocument {
  return {
    schemaVersion: 1,
    stackName: STACK,
    region: REGION,
    runId: RUN,
    createJob: true,
    imageUri: `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/${REPOSITORY}:latest`,
    executionRoleArn: `arn:aws:iam::${ACCOUNT}:role/TrainingJobsExecutionRole`,
    runConfig: { model: { base_model: 'builtin:tiny-llama', method: 'lora' } },
    dataRootUri: 's3://data/',
    outputUri: `s3://${BUCKET}/runs/${RUN}`,
    topicArn: process.env[JOBS_ENV.topicArn] as string,
    instanceType: 'ml.g5.2xlarge',
    instanceCount: 1,
    volumeSizeGiB: 200,
    useSpot: true,
    maxRuntimeHours: 12,
    maxRunCostUsd: null,
    maxRetries: 1,
    idleMinutes: 30,
    usdPerHour: PRICE,
    ...fields,
  };
}

/** A deploy: the job settings parameter as the stack writes it. */
async function deploy(fields: Partial<JobSettingsDocument> = {}): Promise<void> {
  const document = settings(fields);
  digest = handlerModule.settingsDigest(document);
  await clients.ssm.send(
    new PutParameterCommand({
      Name: jobSettingsParameterName(STACK),
      Value: JSON.stringify(document),
      Type: 'String',
      Overwrite: true,
    }),
  );
}

/** An emptied moto with the bucket, topic and an image tagged latest; returns its digest. */
async function arrange(fields: Partial<JobSettingsDocument> = {}): Promise<string> {
  await resetMoto();
  await clients.s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  await clients.sns.send(new CreateTopicCommand({ Name: 'alerts' }));
  await clients.ecr.send(new CreateRepositoryCommand({ repositoryName: REPOSITORY }));
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: {
      mediaType: 'application/vnd.docker.container.image.v1+json',
      size: 2,
      digest: 'sha256:00',
    },
    layers: [],
  });
  const pushed = await clients.ecr.send(
    new PutImageCommand({
      repositoryName: REPOSITORY,
      imageManifest: manifest,
      imageTag: 'latest',
    }),
  );
  await deploy(fields);
  return pushed.image?.imageId?.imageDigest as string;
}

function pass(at: Date = new Date()): Promise<JobsReport> {
  return handlerModule.controlJobs(clients, env, at);
}

/** Move a job as time and the trainer would (testing/sagemaker_jobs.py). */
async function emulate(name: string, state: Record<string, unknown>): Promise<void> {
  const response = await fetch(`${motoUrl()}/moto-api/tuning-lab/sagemaker/training-job`, {
    method: 'POST',
    body: JSON.stringify({ TrainingJobName: name, ...state }),
  });
  expect(response.status).toBe(200);
}

async function ledger(run = RUN): Promise<Ledger> {
  const object = await clients.s3.send(
    new GetObjectCommand({ Bucket: BUCKET, Key: ledgerKey(run) }),
  );
  return JSON.parse(
    await (object.Body as { transformToString(): Promise<string> }).transformToString(),
  );
}

async function messages(run = RUN): Promise<MessageRecord[]> {
  const listed = await clients.s3.send(
    new ListObjectsV2Command({ Bucket: BUCKET, Prefix: messagesPrefix(run) }),
  );
  const records: MessageRecord[] = [];
  for (const item of listed.Contents ?? []) {
    const object = await clients.s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: item.Key }));
    records.push(
      JSON.parse(
        await (object.Body as { transformToString(): Promise<string> }).transformToString(),
      ),
    );
  }
  return records;
}

/** The job's status as SageMaker (moto) describes it. */
async function statusOf(name: string): Promise<string | undefined> {
  const described = await clients.sagemaker.send(
    new DescribeTrainingJobCommand({ TrainingJobName: name }),
  );
  return described.TrainingJobStatus;
}

async function jobNames(): Promise<string[]> {
  const listed = await clients.sagemaker.send(new ListTrainingJobsCommand({}));
  return (listed.TrainingJobSummaries ?? []).map((j) => j.TrainingJobName as string).sort();
}

const job = (attempt: number, run = RUN) => trainingJobName(STACK, STACK_ID, run, attempt);

describe('starting a run', () => {
  let imageDigest: string;
  beforeAll(async () => {
    imageDigest = await arrange();
    await pass();
  });

  test('the job request passes the SDK and is what SageMaker keeps', async () => {
    const described = await clients.sagemaker.send(
      new DescribeTrainingJobCommand({ TrainingJobName: job(1) }),
    );
    expect(described).toMatchObject({
      TrainingJobStatus: 'InProgress',
      RoleArn: settings().executionRoleArn,
      AlgorithmSpecification: {
        TrainingImage: `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/${REPOSITORY}@${imageDigest}`,
        TrainingInputMode: 'File',
      },
      ResourceConfig: { InstanceType: 'ml.g5.2xlarge', InstanceCount: 1, VolumeSizeInGB: 200 },
      StoppingCondition: { MaxRuntimeInSeconds: 43200, MaxWaitTimeInSeconds: 86400 },
      EnableManagedSpotTraining: true,
      EnableInterContainerTrafficEncryption: false,
      CheckpointConfig: {
        S3Uri: `s3://${BUCKET}/runs/${RUN}/checkpoints/`,
        LocalPath: '/opt/ml/checkpoints',
      },
      OutputDataConfig: { S3OutputPath: `s3://${BUCKET}/runs/${RUN}/sagemaker/output/` },
      RetryStrategy: { MaximumRetryAttempts: 2 },
    });
    expect((described as { Environment?: Record<string, string> }).Environment).toEqual({
      TUNING_CONFIG: `s3://${BUCKET}/${jobRunConfigKey(RUN)}`,
      LLM_OUTPUT__URI: `s3://${BUCKET}/runs/${RUN}`,
      LLM_DATA__ROOT: 's3://data/',
      LLM_INTERRUPTION__SPOT_POLLING: 'never',
      AWS_REGION: REGION,
      AWS_DEFAULT_REGION: REGION,
    });
  });

  test('the run config the trainer reads is in the run prefix', async () => {
    const object = await clients.s3.send(
      new GetObjectCommand({ Bucket: BUCKET, Key: jobRunConfigKey(RUN) }),
    );
    const text = await (
      object.Body as { transformToString(): Promise<string> }
    ).transformToString();
    expect(JSON.parse(text)).toEqual(settings().runConfig);
  });

  test('the ledger says running on the job, with the pinned image, and one started message', async () => {
    expect(await ledger()).toMatchObject({
      status: 'running',
      backend: 'sagemaker',
      instanceId: job(1),
      instanceType: 'ml.g5.2xlarge',
      market: 'spot',
      imageUri: expect.stringContaining(`@${imageDigest}`),
      attempts: [{ instanceId: job(1), endedAt: null, usdPerHour: PRICE }],
      jobSettingsDigest: digest,
    });
    expect((await messages()).map((m) => [m.status, m.source])).toEqual([['started', job(1)]]);
  });

  test('another pass, or a redeploy of the same settings, starts no second job', async () => {
    await pass();
    await deploy();
    await pass();
    expect(await jobNames()).toEqual([job(1)]);
    expect(await messages()).toHaveLength(1);
  });
});

describe('how a job ends', () => {
  test('completed with a final model: ledger, cost from billable seconds, one message; a redeploy starts nothing', async () => {
    await arrange();
    await pass();
    await clients.s3.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: `runs/${RUN}/final/manifest.json`, Body: '{}' }),
    );
    await emulate(job(1), { TrainingJobStatus: 'Completed', BillableTimeInSeconds: 7200 });

    await pass();
    await deploy({ maxRunCostUsd: 100 }); // even with changed settings
    await pass();

    expect(await ledger()).toMatchObject({
      status: 'completed',
      reason: 'completed',
      billableSeconds: 7200,
      estimatedCostUsd: Math.round(2 * PRICE * 100) / 100,
      finalModelUri: `s3://${BUCKET}/runs/${RUN}/final/`,
      attempts: [{ instanceId: job(1), exitCode: 0 }],
    });
    expect((await messages()).map((m) => m.status)).toEqual(['started', 'completed']);
    expect(await jobNames()).toEqual([job(1)]);
  });

  test('a failure is retried as a new job; bad input then ends the run without a retry', async () => {
    await arrange({ maxRetries: 2 });
    await pass();
    await emulate(job(1), {
      TrainingJobStatus: 'Failed',
      FailureReason: 'AlgorithmError: failed: CUDA error',
    });
    await pass();
    expect(await jobNames()).toEqual([job(1), job(2)]);
    expect((await ledger()).status).toBe('running');

    await emulate(job(2), {
      TrainingJobStatus: 'Failed',
      FailureReason: 'AlgorithmError: bad-input: data.train datasets/x.jsonl not found',
    });
    await pass();
    await pass();

    expect(await jobNames()).toEqual([job(1), job(2)]);
    expect(await ledger()).toMatchObject({
      status: 'failed',
      reason: 'bad-input',
      lastLogLines: ['AlgorithmError: bad-input: data.train datasets/x.jsonl not found'],
      attempts: [
        { instanceId: job(1), exitCode: 1 },
        { instanceId: job(2), exitCode: 2 },
      ],
    });
    expect((await messages()).map((m) => m.status)).toEqual(['started', 'resumed', 'failed']);
  });
});

test("a managed spot interruption goes into the ledger's interruptions once; the job goes on", async () => {
  await arrange();
  await pass();
  await emulate(job(1), { TrainingJobStatus: 'InProgress', SecondaryStatus: 'Interrupted' });
  await emulate(job(1), { TrainingJobStatus: 'InProgress', SecondaryStatus: 'Training' });

  await pass();
  await pass();

  const recorded = await ledger();
  expect(recorded.interruptions).toEqual([
    { instanceId: job(1), at: expect.any(String), action: 'spot-interruption' },
  ]);
  expect(recorded.status).toBe('running');
  expect(await jobNames()).toEqual([job(1)]);
});

describe('stops', () => {
  test('the cost cap stops the job (StopTrainingJob), and the run ends stopped-by-safety', async () => {
    await arrange({ maxRunCostUsd: 2, instanceCount: 2 });
    const now = new Date();
    await pass(now);
    // One hour of training on two instances at 1.515 USD: 3.03 USD, past the 2 USD cap.
    await emulate(job(1), { TrainingStartTime: (now.getTime() - HOUR) / 1000 });

    const stopping = await pass(now);
    expect(stopping.stopped).toEqual([job(1)]);
    const described = await clients.sagemaker.send(
      new DescribeTrainingJobCommand({ TrainingJobName: job(1) }),
    );
    expect(described.TrainingJobStatus).toBe('Stopped');
    expect(described.EnableInterContainerTrafficEncryption).toBe(true);

    await pass(now); // the state change event's pass
    expect(await ledger()).toMatchObject({ status: 'stopped-by-safety', reason: 'max-cost' });
    const sent = await messages();
    expect(sent.map((m) => m.status)).toEqual(['started', 'stopped-by-safety']);
    expect(sent[1].body).toContain('maxRunCostUsd');
    // The same settings never restart it; a raised cap does, from the newest checkpoint.
    await pass(now);
    expect(await jobNames()).toEqual([job(1)]);
    await deploy({ maxRunCostUsd: 50, instanceCount: 2 });
    await pass(now);
    expect(await jobNames()).toEqual([job(1), job(2)]);
    expect((await messages()).map((m) => m.status)).toContain('resumed');
  });

  test('createInstance=false stops the job; createInstance=true again resumes the run', async () => {
    await arrange();
    await pass();
    await deploy({ createJob: false });
    await pass();
    await pass();
    expect(await ledger()).toMatchObject({
      status: 'interrupted',
      reason: 'create-instance-false',
    });

    await deploy({ createJob: true });
    await pass();
    expect(await jobNames()).toEqual([job(1), job(2)]);
    expect((await ledger()).status).toBe('running');
  });

  test("the operator's stop request (tuning-lab stop) ends the run as stopped, once", async () => {
    await arrange();
    await pass();
    const request = {
      schemaVersion: 1,
      runId: RUN,
      requestId: 'req-1',
      requestedAt: new Date().toISOString(),
      requestedBy: `arn:aws:iam::${ACCOUNT}:user/me`,
    };
    await clients.s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: stopRequestKey(RUN),
        Body: JSON.stringify(request),
      }),
    );
    await pass();
    await pass();
    expect(await ledger()).toMatchObject({
      status: 'stopped',
      reason: 'operator',
      operatorStop: { requestId: 'req-1' },
    });
    expect((await messages()).map((m) => m.status)).toEqual(['started', 'stopped']);
  });
});

test("the deployed entry point runs the same pass on a job's state change event", async () => {
  await arrange({ createJob: false });
  const report = await handlerModule.handler({
    'detail-type': 'SageMaker Training Job State Change',
  });
  expect(report).toMatchObject({ runId: RUN, detail: 'createInstance=false: no job is started' });
});

describe('watching a job from outside', () => {
  /** The trainer's metric line (trainer-image callbacks.py `_emit_metrics`). */
  const emf = (step: number, metrics: Record<string, number>) =>
    JSON.stringify({
      _aws: { Timestamp: 0, CloudWatchMetrics: [] },
      RunId: RUN,
      step,
      max_steps: 60,
      ...metrics,
    });

  /** Lines in the job's first host's stream, as SageMaker stores the container's stdout. */
  async function printed(jobName: string, lines: { message: string; at: number }[]) {
    const logGroupName = '/aws/sagemaker/TrainingJobs';
    const logStreamName = `${jobName}/algo-1-1764590400`;
    await clients.logs.send(new CreateLogGroupCommand({ logGroupName })).catch(() => undefined);
    await clients.logs
      .send(new CreateLogStreamCommand({ logGroupName, logStreamName }))
      .catch(() => undefined);
    await clients.logs.send(
      new PutLogEventsCommand({
        logGroupName,
        logStreamName,
        logEvents: lines.map((l) => ({ message: l.message, timestamp: l.at })),
      }),
    );
  }

  async function object<T>(key: string): Promise<T> {
    const got = await clients.s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    return JSON.parse(
      await (got.Body as { transformToString(): Promise<string> }).transformToString(),
    );
  }

  test("the trainer's metric lines become the run's progress.json and metrics.json, new lines only", async () => {
    await arrange();
    await pass();
    const t = Date.now(); // after the job was created: earlier lines are not its own
    await printed(job(1), [
      { message: 'loading builtin:tiny-llama', at: t },
      { message: emf(10, { loss: 2.0, tokens_per_second: 800 }), at: t + 1000 },
    ]);
    await pass();
    await printed(job(1), [
      { message: emf(20, { loss: 1.5, tokens_per_second: 820 }), at: t + 2000 },
    ]);

    await pass();

    expect(await object<ProgressDocument>(`runs/${RUN}/progress.json`)).toMatchObject({
      runId: RUN,
      instanceId: job(1),
      step: 20,
      maxSteps: 60,
      loss: 1.5,
      tokensPerSecond: 820,
      attemptFirstStep: 10,
    });
    const metrics = await object<MetricsDocument>(`runs/${RUN}/metrics.json`);
    expect(metrics.points.map((p) => [p.step, p.loss])).toEqual([
      [10, 2.0],
      [20, 1.5],
    ]);
  });

  /** SageMaker's per-host metric, one point a minute over the last `minutes`. */
  async function hostMetric(jobName: string, name: string, value: number, minutes = 40) {
    const now = Date.now();
    await clients.cloudwatch.send(
      new PutMetricDataCommand({
        Namespace: '/aws/sagemaker/TrainingJobs',
        MetricData: Array.from({ length: minutes }, (_, i) => ({
          MetricName: name,
          Dimensions: [{ Name: 'Host', Value: `${jobName}/algo-1` }],
          Timestamp: new Date(now - i * 60_000),
          Value: value,
          Unit: 'Percent',
        })),
      }),
    );
  }

  /** Job 1 trains for an hour, its last step 50 minutes ago; its hosts' GPU at `gpu` %. */
  async function trainingQuietly(gpu: number): Promise<number> {
    await arrange({ idleMinutes: 30 });
    await pass();
    const hourAgo = (Date.now() - HOUR) / 1000;
    await emulate(job(1), { SecondaryStatus: 'Downloading' });
    await emulate(job(1), {
      CreationTime: hourAgo - 3600,
      TrainingStartTime: hourAgo,
      SecondaryStatus: 'Training',
      TransitionTime: hourAgo,
    });
    const lastStep = Date.now() - 50 * 60_000;
    await printed(job(1), [{ message: emf(10, { loss: 2.0 }), at: lastStep }]);
    await hostMetric(job(1), 'GPUUtilization', gpu);
    await hostMetric(job(1), 'CPUUtilization', 2);
    return lastStep;
  }

  test('a job training with no new step and quiet hosts for idleMinutes is stopped (stopped-by-safety, idle)', async () => {
    const lastStep = await trainingQuietly(0);

    const stopping = await pass();
    await pass();

    expect(stopping.stopped).toEqual([job(1)]);
    expect(await ledger()).toMatchObject({ status: 'stopped-by-safety', reason: 'idle' });
    const sent = await messages();
    expect(sent.map((m) => m.status)).toEqual(['started', 'stopped-by-safety']);
    expect(sent[1].body).toContain(`no new step since ${new Date(lastStep).toISOString()}`);
  });

  test('the same job with a busy GPU (one long step) runs on', async () => {
    await trainingQuietly(97);

    const report = await pass();

    expect(report.stopped).toEqual([]);
    expect((await ledger()).status).toBe('running');
  });
});

describe('runs the deploy no longer asks for', () => {
  const other = 'run-0b1c2d3e';
  const otherRun = { runId: other, outputUri: `s3://${BUCKET}/runs/${other}` };

  test("after a runId change the old run's job is stopped and recorded in its own ledger; then the new run starts", async () => {
    await arrange();
    await pass();
    await deploy(otherRun);

    const stopping = await pass();

    expect(stopping.stopped).toEqual([job(1)]);
    expect(stopping.started).toBeUndefined();
    expect(stopping.detail).toContain(`waiting for ${job(1)}`);
    const next = await pass(); // the old job is Stopped now
    expect(next.started).toBe(job(1, other));
    expect(next.recorded).toEqual([job(1)]);
    expect(await ledger(RUN)).toMatchObject({
      status: 'stopped',
      reason: 'superseded',
      attempts: [{ instanceId: job(1), endedAt: expect.any(String) }],
    });
    const sent = await messages(RUN);
    expect(sent.map((m) => m.status)).toEqual(['started', 'stopped']);
    expect(sent[1].body).toContain(`configured ${other} instead`);
    expect(sent[1].body).toContain(`-c runId=${RUN}`);
    await pass();
    expect(await messages(RUN)).toHaveLength(2); // recorded once
  });

  test("a job of an earlier deployment of the stack is stopped, and its name never blocks this deployment's", async () => {
    await arrange();
    // `cdk destroy` then `cdk deploy` of the same stack name: a new stack id.
    const earlierId = STACK_ID.replace(/[0-9a-f-]{36}$/, '00000000-0000-4000-8000-000000000000');
    const earlier = trainingJobName(STACK, earlierId, RUN, 1);
    expect(earlier).not.toBe(job(1));
    await clients.sagemaker.send(
      new CreateTrainingJobCommand(
        trainingJobRequest({
          settings: settings(),
          jobName: earlier,
          outputsBucket: BUCKET,
          imageUri: 'image@sha256:00',
        }),
      ),
    );

    const first = await pass();

    expect(first.stopped).toEqual([earlier]);
    const second = await pass();
    expect(second.started).toBe(job(1));
    expect(await jobNames()).toEqual([earlier, job(1)].sort());
  });

  test('the job guard on a new run id stops the old run, records it, and answers CloudFormation', async () => {
    await arrange();
    await pass();
    const answers: { method?: string; type?: string; body: string }[] = [];
    const server = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk) => (body += chunk));
      request.on('end', () => {
        answers.push({ method: request.method, type: request.headers['content-type'], body });
        response.end();
      });
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const { port } = server.address() as AddressInfo;
    try {
      await handlerModule.handler(guardEvent('Update', other, `http://127.0.0.1:${port}/answer`), {
        getRemainingTimeInMillis: () => 60_000,
      });
    } finally {
      server.close();
    }

    expect(answers).toHaveLength(1);
    // A pre-signed S3 URL takes no content type: the header goes out empty.
    expect(answers[0]).toMatchObject({ method: 'PUT', type: '' });
    expect(JSON.parse(answers[0].body)).toMatchObject({
      Status: 'SUCCESS',
      Reason: `stopped and recorded: ${job(1)}`,
      RequestId: 'request-1',
      LogicalResourceId: 'JobsJobGuard',
      PhysicalResourceId: `${STACK}-job-guard`,
    });
    expect(await ledger(RUN)).toMatchObject({ status: 'stopped', reason: 'superseded' });
    expect((await messages(RUN)).map((m) => m.status)).toEqual(['started', 'stopped']);
  });

  test('the job guard on delete (cdk destroy, backend=ec2) stops every job; one still stopping at its deadline is reported', async () => {
    await arrange();
    await pass();
    const done = await handlerModule.guardJobs(
      clients,
      env,
      guardEvent('Delete'),
      Date.now() + 60_000,
    );
    expect(done).toMatchObject({
      reason: `stopped and recorded: ${job(1)}`,
      live: [],
      failures: [],
    });
    expect(await ledger(RUN)).toMatchObject({ status: 'stopped', reason: 'superseded' });

    await arrange({ runId: other, outputUri: `s3://${BUCKET}/runs/${other}` });
    await pass();
    await emulate(job(1, other), { TrainingJobStatus: 'Stopping' }); // a slow save
    const naps: number[] = [];
    let now = Date.now();
    const late = await handlerModule.guardJobs(clients, env, guardEvent('Delete'), now + 20_000, {
      now: () => now,
      sleep: async (ms) => {
        naps.push(ms);
        now += ms;
      },
    });
    expect(naps).toEqual([2_000, 10_000]); // looked three times, then gave up before the deadline
    expect(late).toMatchObject({ live: [job(1, other)], failures: [] });
    expect(late.reason).toContain(`still stopping or running: ${job(1, other)}`);
  });

  test('an unreadable ledger of the old run does not keep the guard from stopping its job', async () => {
    await arrange();
    await pass();
    await clients.s3.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: ledgerKey(RUN), Body: '{"broken' }),
    );

    const done = await handlerModule.guardJobs(
      clients,
      env,
      guardEvent('Delete'),
      Date.now() + 60_000,
      {
        now: () => Date.now(),
        sleep: async () => undefined,
      },
    );

    expect(done.live).toEqual([]);
    expect(done.failures.join(' ')).toContain(`reading the ledger of ${RUN} failed`);
    expect(await statusOf(job(1))).toBe('Stopped');
  });

  test('a run an EC2 instance took over (backend switch, same run id) is stopped here but its ledger left alone', async () => {
    await arrange();
    await pass();
    const ec2: Ledger = {
      schemaVersion: 1,
      runId: RUN,
      status: 'running',
      backend: 'ec2',
      instanceId: 'i-0abc',
      billableSeconds: 1234,
      attempts: [{ instanceId: 'i-0abc' }],
    };
    await clients.s3.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: ledgerKey(RUN), Body: JSON.stringify(ec2) }),
    );

    const done = await handlerModule.guardJobs(
      clients,
      env,
      guardEvent('Delete'),
      Date.now() + 60_000,
    );

    expect(done.failures).toEqual([]);
    expect(await ledger()).toEqual(ec2);
    expect(await statusOf(job(1))).toBe('Stopped');
  });

  test('the job guard on create does nothing', async () => {
    await arrange();
    await pass();
    const done = await handlerModule.guardJobs(
      clients,
      env,
      guardEvent('Create', RUN),
      Date.now() + 60_000,
    );
    expect(done.reason).toBe('no job to stop');
    expect((await ledger()).status).toBe('running');
  });
});

function guardEvent(
  type: 'Create' | 'Update' | 'Delete',
  runId?: string,
  url = 'http://127.0.0.1:9/',
) {
  return {
    RequestType: type,
    ResponseURL: url,
    StackId: STACK_ID,
    RequestId: 'request-1',
    LogicalResourceId: 'JobsJobGuard',
    PhysicalResourceId: `${STACK}-job-guard`,
    ResourceProperties: { RunId: runId ?? '' },
  } as const;
}

test('two passes at once (the schedule and a state change event) start one job and send one message', async () => {
  await arrange();

  const reports = await Promise.all([pass(), pass()]);

  expect(await jobNames()).toEqual([job(1)]);
  expect(reports.filter((r) => r.started === job(1)).length).toBeLessThanOrEqual(1);
  const recorded = await ledger();
  expect(recorded.attempts).toHaveLength(1);
  expect((await messages()).map((m) => m.status)).toEqual(['started']);
});

test("a ClientError (SageMaker blames the job's set-up) fails the run without a retry; changed settings try again", async () => {
  await arrange({ maxRetries: 3 });
  await pass();
  await emulate(job(1), {
    TrainingJobStatus: 'Failed',
    FailureReason: 'ClientError: Failed to download data. Access Denied',
  });

  await pass();
  await pass();

  expect(await jobNames()).toEqual([job(1)]);
  expect(await ledger()).toMatchObject({ status: 'failed', reason: 'job-client-error' });
  await deploy({ maxRetries: 3, volumeSizeGiB: 300 });
  await pass();
  expect(await jobNames()).toEqual([job(1), job(2)]);
});

describe('temporary causes do not stick', () => {
  test('an image not pushed yet is tried again next pass, not a failed run', async () => {
    await arrange({ imageUri: `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/${REPOSITORY}:v2` });

    await pass();

    expect(await jobNames()).toEqual([]);
    const waiting = await ledger();
    expect(waiting).toMatchObject({ status: 'running', lastStartError: { passes: 1 } });
    expect(waiting.lastStartError?.message).toContain('was not found');
    expect(await messages()).toEqual([]);
    await deploy(); // the tag that exists, as if v2 had been pushed
    await pass();
    expect(await jobNames()).toEqual([job(1)]);
    expect((await ledger()).lastStartError).toBeUndefined();
  });

  test('a CapacityError ends the job as interrupted (capacity); a later pass resumes', async () => {
    await arrange({ maxRetries: 0 });
    await pass();
    await emulate(job(1), {
      TrainingJobStatus: 'Failed',
      FailureReason: 'CapacityError: Unable to provision requested ML compute capacity.',
    });

    await pass();

    expect(await ledger()).toMatchObject({ status: 'interrupted', reason: 'capacity' });
    expect(await jobNames()).toEqual([job(1)]);
    await pass();
    expect(await jobNames()).toEqual([job(1), job(2)]);
    expect((await messages()).map((m) => m.status)).toEqual(['started', 'interrupted', 'resumed']);
  });
});

test('an unreadable ledger does not keep a job past its cost cap, and starts nothing', async () => {
  await arrange({ maxRunCostUsd: 2, instanceCount: 2 });
  const now = new Date();
  await pass(now);
  await emulate(job(1), { TrainingStartTime: (now.getTime() - HOUR) / 1000 }); // 3.03 USD
  await clients.s3.send(
    new PutObjectCommand({
      Bucket: BUCKET,
      Key: ledgerKey(RUN),
      Body: '{"schemaVersion": 1, "sta',
    }),
  );

  await expect(pass(now)).rejects.toThrow('reading the ledger failed (this pass only stops)');
  await expect(pass(now)).rejects.toThrow('reading the ledger failed');

  expect(await statusOf(job(1))).toBe('Stopped');
  expect(await jobNames()).toEqual([job(1)]);
});

test('with an unreadable ledger, an old (honoured) stop request does not stop a resumed job', async () => {
  await arrange();
  await pass();
  const old = {
    schemaVersion: 1,
    runId: RUN,
    requestId: 'req-old',
    requestedAt: new Date(Date.now() - HOUR).toISOString(),
    requestedBy: `arn:aws:iam::${ACCOUNT}:user/me`,
  };
  await clients.s3.send(
    new PutObjectCommand({ Bucket: BUCKET, Key: stopRequestKey(RUN), Body: JSON.stringify(old) }),
  );
  await clients.s3.send(
    new PutObjectCommand({ Bucket: BUCKET, Key: ledgerKey(RUN), Body: '{"broken' }),
  );

  await expect(pass()).rejects.toThrow('reading the ledger failed');

  expect(await statusOf(job(1))).toBe('InProgress');
});

test('no job starts once the stack is being deleted or is gone (a pass after the guard answered)', async () => {
  await arrange();
  const created = await clients.cloudformation.send(
    new CreateStackCommand({
      StackName: STACK,
      TemplateBody: JSON.stringify({ Resources: { Topic: { Type: 'AWS::SNS::Topic' } } }),
    }),
  );
  await clients.cloudformation.send(new DeleteStackCommand({ StackName: STACK }));
  const gone = { ...env, stackId: created.StackId as string };

  const report = await handlerModule.controlJobs(clients, gone, new Date());

  expect(report.started).toBeUndefined();
  expect(await jobNames()).toEqual([]);
});

test('no job starts for a run whose recorded cost reached the cap: it ends stopped-by-safety', async () => {
  await arrange({ maxRunCostUsd: 2, maxRetries: 2 });
  await pass();
  // Two billable hours at 1.515 USD: 3.03 USD, past the 2 USD cap.
  await emulate(job(1), {
    TrainingJobStatus: 'Failed',
    FailureReason: 'AlgorithmError: failed: CUDA error',
    BillableTimeInSeconds: 7200,
  });

  await pass();

  expect(await jobNames()).toEqual([job(1)]);
  expect(await ledger()).toMatchObject({ status: 'stopped-by-safety', reason: 'max-cost' });
  expect((await messages()).map((m) => m.status)).toEqual(['started', 'stopped-by-safety']);
});

test('a ledger the controller adopts says backend sagemaker (so tuning-lab stop stops the job)', async () => {
  await arrange();
  const bare: Ledger = { schemaVersion: 1, runId: RUN, status: 'running', attempts: [] };
  await clients.s3.send(
    new PutObjectCommand({ Bucket: BUCKET, Key: ledgerKey(RUN), Body: JSON.stringify(bare) }),
  );

  await pass();

  expect(await ledger()).toMatchObject({ backend: 'sagemaker', instanceId: job(1) });
});

describe("the run's lease (one trainer per run, whichever backend)", () => {
  async function lease(): Promise<Record<string, unknown> | undefined> {
    try {
      const got = await clients.s3.send(
        new GetObjectCommand({ Bucket: BUCKET, Key: `runs/${RUN}/lease.json` }),
      );
      return JSON.parse(
        await (got.Body as { transformToString(): Promise<string> }).transformToString(),
      );
    } catch {
      return undefined;
    }
  }

  test('a live job holds it for 15 minutes from each pass; its end releases it', async () => {
    await arrange();
    const now = new Date();
    await pass(now);
    expect(await lease()).toMatchObject({
      runId: RUN,
      holder: job(1),
      released: false,
      expiresAt: new Date(now.getTime() + 15 * 60_000).toISOString(),
    });

    await clients.s3.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: `runs/${RUN}/final/manifest.json`, Body: '{}' }),
    );
    await emulate(job(1), { TrainingJobStatus: 'Completed' });
    await pass();

    expect(await lease()).toMatchObject({ holder: job(1), released: true });
  });

  test('an EC2 instance of the same run holding it (a backend switch) keeps any job from starting until it lets go', async () => {
    await arrange();
    const held = {
      schemaVersion: 1,
      runId: RUN,
      holder: 'i-0abc1234',
      renewedAt: new Date().toISOString(),
      expiresAt: new Date(Date.now() + 300_000).toISOString(),
      released: false,
    };
    await clients.s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: `runs/${RUN}/lease.json`,
        Body: JSON.stringify(held),
      }),
    );

    const waiting = await pass();

    expect(waiting.started).toBeUndefined();
    expect(waiting.detail).toContain('waiting for i-0abc1234, which holds the run');
    expect(await jobNames()).toEqual([]);
    await clients.s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: `runs/${RUN}/lease.json`,
        Body: JSON.stringify({ ...held, released: true }),
      }),
    );
    expect((await pass()).started).toBe(job(1));
    expect(await lease()).toMatchObject({ holder: job(1), released: false });
  });

  test('the guard (cdk destroy, backend=ec2) releases it once the job ended, for the instance that waits', async () => {
    await arrange();
    await pass();

    await handlerModule.guardJobs(clients, env, guardEvent('Delete'), Date.now() + 60_000);

    expect(await lease()).toMatchObject({ holder: job(1), released: true });
  });
});
