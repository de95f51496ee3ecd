/**
 * `tuning-lab logs [run] [--follow]`: the run's training log without knowing instance ids or
 * stream names. While the run is live: CloudWatch Logs, streams `<run-id>/<instance-id>/attempt-<n>`
 * (the trainer's output, every attempt in time order); once it ended: the copy the supervisor
 * uploaded to `runs/<run-id>/logs/<instance-id>/training.log` (the trainer's output and the
 * supervisor's own lines), else CloudWatch again.
 *
 *     npx tuning-lab logs                 # the current (or newest) run
 *     npx tuning-lab logs run-3f2a9c1b -f  # follow until the run ends
 */
import {
  DescribeLogStreamsCommand,
  FilterLogEventsCommand,
  type FilteredLogEvent,
} from '@aws-sdk/client-cloudwatch-logs';
import { ledgerKey, logsPrefix, trainingJobRunPrefix, type Ledger } from '../../lib/contract';
import { booleanOption, stringOption, type Command } from '../command';
import type { CliContext } from '../context';
import { CliFailure, wholeNumber } from '../errors';
import { RunStore } from '../run-store';
import { chooseRun } from './status';

/** The file names the supervisor uploads (runtime/tuning_runtime/__main__.py). */
const TRAINING_LOG = 'training.log';
const SUPERVISOR_LOG = 'tuning-supervisor.log';
const FOLLOW_POLL_MS = 5000;
/** Re-read the ledger every this many polls while following, to stop when the run ends. */
const LEDGER_EVERY_POLLS = 6;

export const command: Command = {
  name: 'logs',
  summary: "the run's training log: CloudWatch while it runs, the S3 copy afterwards",
  usage: '[run]',
  rank: 30,
  description:
    "The run: an alias or run id; default the stack's current run, else the newest. Metric lines\n" +
    '(embedded metric format) are left out; `status` shows the numbers.',
  options: {
    follow: { type: 'boolean', short: 'f', help: 'keep printing new lines until the run ends' },
    tail: { type: 'string', value: 'N', help: 'only the last N lines' },
    supervisor: { type: 'boolean', help: "the supervisor's own log instead (ended runs, from S3)" },
  },
  positionals: { min: 0, max: 1 },
  async run(ctx, args) {
    const tailText = stringOption(args, 'tail');
    const tail = tailText === undefined ? undefined : wholeNumber('--tail', tailText, 1);
    const store = await RunStore.of(ctx);
    const runId = await chooseRun(ctx, store, args.positionals[0]);
    const ledger = await store.readJson<Ledger>(ledgerKey(runId));
    const live = ledger === undefined || ledger.status === 'running';
    const follow = booleanOption(args, 'follow');

    const lines: string[] = [];
    let source = '';
    if (!live || booleanOption(args, 'supervisor')) {
      const copies = await s3Copies(
        store,
        runId,
        ledger,
        booleanOption(args, 'supervisor') ? SUPERVISOR_LOG : TRAINING_LOG,
      );
      for (const key of copies) {
        const text = (await store.readText(key)) ?? '';
        lines.push(...text.split('\n').filter((line, i, all) => line !== '' || i < all.length - 1));
      }
      if (copies.length > 0) source = copies.map((key) => `s3://${store.bucket}/${key}`).join(', ');
    }
    let cursor: Cursor | undefined;
    if (source === '') {
      const logGroup = await ctx.output('logGroup');
      cursor = {
        logGroup,
        streams: await attemptStreams(ctx, logGroup, runId),
        seen: new Set(),
        startTime: 0,
      };
      lines.push(...(await readEvents(ctx, cursor)));
      const { prefix } = await streamNaming(ctx, runId);
      source = `CloudWatch Logs ${logGroup}, ${cursor.streams.length} stream(s) ${prefix}*`;
    }
    const shown = tail === undefined ? lines : lines.slice(-tail);
    if (ctx.out.jsonMode) {
      ctx.out.json({ runId, status: ledger?.status ?? null, source, lines: shown });
      return 0;
    }
    if (lines.length === 0) {
      if (!follow) {
        throw new CliFailure(
          `run ${runId} has no log yet (${source}; status ${ledger?.status ?? 'no ledger'}): ` +
            'the instance may still be booting or pulling the image',
        );
      }
    }
    ctx.out.note(ctx.out.paint('dim', `# ${runId}: ${source}`));
    for (const line of shown) ctx.out.line(line);
    if (!follow) return 0;
    if (!live) {
      ctx.out.note(`run ${runId} is ${ledger?.status}: nothing to follow`);
      return 0;
    }
    return followRun(ctx, store, runId, cursor as Cursor);
  },
};

interface Cursor {
  logGroup: string;
  streams: string[];
  seen: Set<string>;
  startTime: number;
}

async function followRun(
  ctx: CliContext,
  store: RunStore,
  runId: string,
  cursor: Cursor,
): Promise<number> {
  for (let poll = 1; ; poll++) {
    await new Promise((resolve) => setTimeout(resolve, FOLLOW_POLL_MS));
    if (cursor.streams.length === 0 || poll % LEDGER_EVERY_POLLS === 0) {
      cursor.streams = await attemptStreams(ctx, cursor.logGroup, runId); // a new attempt
    }
    for (const line of await readEvents(ctx, cursor)) ctx.out.line(line);
    if (poll % LEDGER_EVERY_POLLS === 0) {
      const ledger = await store.readJson<Ledger>(ledgerKey(runId));
      if (ledger && ledger.status !== 'running') {
        for (const line of await readEvents(ctx, cursor)) ctx.out.line(line);
        ctx.out.note(
          `run ${runId} is ${ledger.status}${ledger.reason ? ` (${ledger.reason})` : ''}`,
        );
        return 0;
      }
    }
  }
}

/** Where a run's trainer logs: EC2 streams, or a SageMaker stack's job streams. */
async function streamNaming(ctx: CliContext, runId: string) {
  if ((await ctx.optionalOutput('backend')) === 'sagemaker') {
    // `<job name>/algo-<n>-<epoch>`, one per host of each job of the run (in this deployment).
    const { id } = await ctx.stack();
    return { prefix: trainingJobRunPrefix(ctx.stackName, id, runId), pattern: /\/algo-\d+-\d+$/ };
  }
  return { prefix: `${runId}/`, pattern: /\/attempt-\d+$/ };
}

/**
 * The trainer's streams of the run (`<run-id>/<instance-id>/attempt-<n>`, or a SageMaker run's
 * `<job name>/algo-<n>-<epoch>`), oldest first.
 */
async function attemptStreams(ctx: CliContext, logGroup: string, runId: string): Promise<string[]> {
  const { prefix, pattern } = await streamNaming(ctx, runId);
  const streams: { name: string; first: number }[] = [];
  let nextToken: string | undefined;
  do {
    const page = await ctx.logs.send(
      new DescribeLogStreamsCommand({
        logGroupName: logGroup,
        logStreamNamePrefix: prefix,
        nextToken,
      }),
    );
    for (const stream of page.logStreams ?? []) {
      if (stream.logStreamName && pattern.test(stream.logStreamName)) {
        streams.push({
          name: stream.logStreamName,
          first: stream.firstEventTimestamp ?? stream.creationTime ?? 0,
        });
      }
    }
    nextToken = page.nextToken;
  } while (nextToken);
  return streams.sort((a, b) => a.first - b.first).map((s) => s.name);
}

/** New events of the streams since the cursor, in time order, without metric lines. */
async function readEvents(ctx: CliContext, cursor: Cursor): Promise<string[]> {
  const events: FilteredLogEvent[] = [];
  for (let i = 0; i < cursor.streams.length; i += 100) {
    let nextToken: string | undefined;
    do {
      const page = await ctx.logs.send(
        new FilterLogEventsCommand({
          logGroupName: cursor.logGroup,
          logStreamNames: cursor.streams.slice(i, i + 100),
          startTime: cursor.startTime || undefined,
          nextToken,
        }),
      );
      events.push(...(page.events ?? []));
      nextToken = page.nextToken;
    } while (nextToken);
  }
  const fresh = events
    .filter((e) => !cursor.seen.has(eventId(e)))
    .sort((a, b) => (a.timestamp ?? 0) - (b.timestamp ?? 0));
  for (const event of fresh) {
    cursor.seen.add(eventId(event));
    cursor.startTime = Math.max(cursor.startTime, event.timestamp ?? 0);
  }
  return fresh
    .map((e) => (e.message ?? '').replace(/\n$/, ''))
    .filter((message) => !message.startsWith('{"_aws"'));
}

function eventId(event: FilteredLogEvent): string {
  return event.eventId ?? `${event.logStreamName}:${event.timestamp}:${event.message}`;
}

/** The uploaded copies of one log file, one per instance, in the order the run used them. */
async function s3Copies(
  store: RunStore,
  runId: string,
  ledger: Ledger | undefined,
  file: string,
): Promise<string[]> {
  const prefix = logsPrefix(runId);
  const keys = (await store.list(prefix))
    .map((o) => o.Key as string)
    .filter((key) => /^i-[0-9a-z]+\//.test(key.slice(prefix.length)) && key.endsWith(`/${file}`));
  const order = (ledger?.attempts ?? []).map((a) => a.instanceId);
  const rank = (key: string) => {
    const index = order.indexOf(key.slice(prefix.length).split('/')[0]);
    return index === -1 ? order.length : index;
  };
  return keys.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}
