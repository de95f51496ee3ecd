/**
 * What a running job shows from outside, for the job controller: its progress (the trainer's
 * metric lines in SageMaker's log streams, published as the run's progress.json and
 * metrics.json for `tuning-lab status`) and whether its hosts are busy (SageMaker's per-host
 * instance metrics in CloudWatch, for the idle check). Neither asks the container anything.
 */
import { CloudWatchClient, GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import {
  CloudWatchLogsClient,
  DescribeLogStreamsCommand,
  GetLogEventsCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  metricsKey,
  progressKey,
  SAGEMAKER_TRAINING_LOG_GROUP,
  type MetricsDocument,
  type ProgressDocument,
} from '../../lib/contract';
import { readJson } from '../safety/store';
import type { JobView } from './decide';
import { foldProgress, newestPointAt, readFrom, type LogLine } from './progress';

/** SageMaker's per-host training metrics (namespace and the `Host` dimension's form). */
export const SAGEMAKER_JOB_METRICS = {
  namespace: '/aws/sagemaker/TrainingJobs',
  host: (jobName: string, index: number) => `${jobName}/algo-${index}`,
} as const;
/** Pages of log events one pass reads at most per stream (10,000 events each). */
const MAX_PAGES = 5;

/**
 * Publish the run's progress from the job's first host (`algo-1`, where rank 0 prints the
 * metric lines) when it printed new ones; returns when its newest metric line was stamped.
 */
export async function publishJobProgress(
  clients: { readonly s3: S3Client; readonly logs: CloudWatchLogsClient },
  bucket: string,
  runId: string,
  job: JobView,
  now: Date,
): Promise<{ published: boolean; lastStepAt?: Date }> {
  const progress = (await readJson<ProgressDocument>(clients.s3, bucket, progressKey(runId))).value;
  const history = (await readJson<MetricsDocument>(clients.s3, bucket, metricsKey(runId))).value;
  const points = Array.isArray(history?.points) ? history.points : [];
  const lines = await readLines(clients.logs, job, readFrom(points, job.creationTime));
  const folded = foldProgress({ runId, jobName: job.name, progress, history: points, lines, now });
  const previous = progress?.instanceId === job.name ? lastStepAt(points) : undefined;
  if (!folded) return { published: false, lastStepAt: previous };
  for (const [key, document] of [
    [metricsKey(runId), folded.metrics],
    [progressKey(runId), folded.progress],
  ] as const) {
    await clients.s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: `${JSON.stringify(document, null, 2)}\n`,
        ContentType: 'application/json',
      }),
    );
  }
  return { published: true, lastStepAt: lastStepAt(folded.metrics.points) };
}

function lastStepAt(points: readonly { at: string }[]): Date | undefined {
  const newest = newestPointAt(points);
  return newest > 0 ? new Date(newest) : undefined;
}

/** The first host's lines since `from` (ms), every stream of the job (a spot restart adds one). */
async function readLines(
  logs: CloudWatchLogsClient,
  job: JobView,
  from: number,
): Promise<LogLine[]> {
  const prefix = `${SAGEMAKER_JOB_METRICS.host(job.name, 1)}-`;
  let streams: string[];
  try {
    const found = await logs.send(
      new DescribeLogStreamsCommand({
        logGroupName: SAGEMAKER_TRAINING_LOG_GROUP,
        logStreamNamePrefix: prefix,
      }),
    );
    streams = (found.logStreams ?? []).map((s) => s.logStreamName ?? '').filter(Boolean).sort();
  } catch (error) {
    // No log group yet: SageMaker creates it with the first job's first line.
    if ((error as { name?: string }).name === 'ResourceNotFoundException') return [];
    throw error;
  }
  const lines: LogLine[] = [];
  for (const logStreamName of streams) {
    let token: string | undefined;
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const got = await logs.send(
        new GetLogEventsCommand({
          logGroupName: SAGEMAKER_TRAINING_LOG_GROUP,
          logStreamName,
          startTime: from,
          startFromHead: true,
          nextToken: token,
        }),
      );
      for (const event of got.events ?? []) {
        lines.push({ message: event.message ?? '', timestamp: event.timestamp ?? 0 });
      }
      // The end is the token coming back unchanged; a page may be empty before it.
      if (!got.nextForwardToken || got.nextForwardToken === token) break;
      token = got.nextForwardToken;
    }
  }
  return lines.sort((a, b) => a.timestamp - b.timestamp);
}

/** The busiest any host of the job was over the window: GPU and CPU, summed per host as SageMaker reports them. */
export interface HostActivity {
  /** Highest `GPUUtilization` of any host (percent x GPUs); undefined without data. */
  readonly gpuPercent?: number;
  /** Highest `CPUUtilization` of any host (percent x cores); undefined without data. */
  readonly cpuPercent?: number;
  /** The fewest data points any host's GPU or CPU series had. */
  readonly samples: number;
}

/** SageMaker's per-host metrics of the job over the `minutes` before `now` (1-minute data). */
export async function hostActivity(
  cloudwatch: CloudWatchClient,
  job: JobView,
  minutes: number,
  now: Date,
): Promise<HostActivity> {
  const queries = [];
  for (let index = 1; index <= job.instanceCount; index += 1) {
    for (const metric of ['GPUUtilization', 'CPUUtilization']) {
      queries.push({
        Id: `${metric === 'GPUUtilization' ? 'gpu' : 'cpu'}${index}`,
        MetricStat: {
          Metric: {
            Namespace: SAGEMAKER_JOB_METRICS.namespace,
            MetricName: metric,
            Dimensions: [{ Name: 'Host', Value: SAGEMAKER_JOB_METRICS.host(job.name, index) }],
          },
          Period: 60,
          Stat: 'Maximum',
        },
      });
    }
  }
  const found = await cloudwatch.send(
    new GetMetricDataCommand({
      StartTime: new Date(now.getTime() - minutes * 60_000),
      EndTime: now,
      MetricDataQueries: queries,
    }),
  );
  const results = found.MetricDataResults ?? [];
  const highest = (kind: string) => {
    const values = results.filter((r) => r.Id?.startsWith(kind)).flatMap((r) => r.Values ?? []);
    return values.length > 0 ? Math.max(...values) : undefined;
  };
  const counts = queries.map((q) => results.find((r) => r.Id === q.Id)?.Values?.length ?? 0);
  return { gpuPercent: highest('gpu'), cpuPercent: highest('cpu'), samples: Math.min(...counts) };
}
