/**
 * `tuning-lab runs`: every run of the stack, newest first; the model registry.
 *
 *     npx tuning-lab runs                      # the table
 *     npx tuning-lab runs show run-3f2a9c1b    # one run: model, data, digests, metrics, cost
 *     npx tuning-lab runs tag run-3f2a9c1b prod
 *     npx tuning-lab runs untag prod
 */
import { createHash } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { finalPrefix, ledgerKey, runPrefix, type Ledger } from '../../lib/contract';
import type { Command, ParsedArgs } from '../command';
import type { CliContext } from '../context';
import { CliFailure, UsageError } from '../errors';
import { formatBytes, formatDuration, formatTime, formatUsd, type Output } from '../output';
import { RunStore, type RunView } from '../run-store';

export const command: Command = {
  name: 'runs',
  summary: 'every run of the stack, newest first (the model registry); show, tag, untag',
  usage: '[show <run> | tag <run> <name> | untag <name>]',
  rank: 10,
  description: [
    'Without arguments: run id, status and reason, start, duration, instance type and market,',
    'estimated cost, step / total, the latest training loss and whether a complete final model',
    'exists. `show` adds the base model, method, data, config and image digests, eval loss and',
    "the model's location; `tag` names a run (an alias `pull` accepts), `untag` removes a name.",
  ].join('\n'),
  positionals: { min: 0, max: 3 },
  async run(ctx, args) {
    const [action, ...rest] = args.positionals;
    const store = await RunStore.of(ctx);
    if (action === undefined) return listRuns(ctx, store);
    if (action === 'show' && rest.length === 1) return showRun(ctx, store, rest[0]);
    if (action === 'tag' && rest.length === 2) return tagRun(ctx, store, rest[0], rest[1]);
    if (action === 'untag' && rest.length === 1) return untag(ctx, store, rest[0]);
    throw new UsageError(usageProblem(args));
  },
};

/**
 * The ledger's estimate (instances that have ended) plus, while the run is live, its instance
 * from its first attempt's start to now at that attempt's price.
 */
export function costSoFar(run: RunView, now: Date): number | null {
  const ledger: Ledger | undefined = run.ledger;
  if (!ledger) return null;
  let cost = ledger.estimatedCostUsd ?? 0;
  if (ledger.status === 'running' && ledger.instanceId) {
    const here = (ledger.attempts ?? []).filter((a) => a.instanceId === ledger.instanceId);
    const open = here.some((a) => !a.endedAt);
    const first = here[0] as { startedAt?: string; usdPerHour?: number } | undefined;
    if (open && first?.startedAt && first.usdPerHour) {
      cost +=
        (Math.max(0, now.getTime() - new Date(first.startedAt).getTime()) / 3_600_000) *
        first.usdPerHour;
    }
  }
  return Math.round(cost * 100) / 100;
}

function usageProblem(args: ParsedArgs): string {
  const [action] = args.positionals;
  const forms = 'runs show <run>, runs tag <run> <name>, runs untag <name>';
  if (!['show', 'tag', 'untag'].includes(action)) {
    return `action: '${action}' is not allowed; use one of show, tag, untag (${forms})`;
  }
  return `${action}: wrong number of arguments; use ${forms}`;
}

/** One row of the table, as text and as JSON. */
export function summarise(run: RunView, now: Date) {
  const ledger = run.ledger;
  const started = ledger?.startedAt;
  const ended = ledger?.endedAt ?? (ledger?.status === 'running' ? now.toISOString() : undefined);
  const durationSeconds =
    started && ended ? (new Date(ended).getTime() - new Date(started).getTime()) / 1000 : null;
  return {
    runId: run.runId,
    status: ledger?.status ?? 'unknown',
    reason: ledger?.reason ?? null,
    startedAt: started ?? null,
    endedAt: ledger?.endedAt ?? null,
    durationSeconds,
    instanceType: ledger?.instanceType ?? null,
    market: ledger?.market ?? null,
    // A live run's estimate includes its instance so far (the ledger's, only ended ones).
    estimatedCostUsd:
      ledger?.status === 'running' ? costSoFar(run, now) : (ledger?.estimatedCostUsd ?? null),
    step: run.progress?.step ?? ledger?.lastStep ?? null,
    maxSteps: run.progress?.maxSteps ?? null,
    loss: run.progress?.loss ?? null,
    finalModel: run.finalModel ?? false,
    aliases: run.aliases,
  };
}

export function statusText(out: Output, status: string, reason?: string | null): string {
  const colour =
    status === 'completed'
      ? 'green'
      : status === 'running'
        ? 'cyan'
        : status === 'interrupted'
          ? 'yellow'
          : status === 'unknown'
            ? 'dim'
            : 'red';
  const text = reason && reason !== status ? `${status} (${reason})` : status;
  return out.paint(colour, text);
}

export function stepText(step: number | null, maxSteps: number | null): string {
  if (step === null) return '-';
  return maxSteps ? `${step}/${maxSteps}` : String(step);
}

export function lossText(loss: number | null | undefined): string {
  return loss === null || loss === undefined || !Number.isFinite(loss) ? '-' : loss.toFixed(4);
}

async function listRuns(ctx: CliContext, store: RunStore): Promise<number> {
  const runs = (await store.allRuns({ finalModel: true })).map((run) => summarise(run, ctx.now()));
  const out = ctx.out;
  if (out.jsonMode) {
    out.json({ stack: ctx.stackName, bucket: store.bucket, runs });
    return 0;
  }
  if (runs.length === 0) {
    out.line(`No runs in s3://${store.bucket}/runs/ yet.`);
    out.note(
      `Start one: npx cdk deploy ${ctx.stackName} -c createInstance=true -c runConfig=<file>`,
    );
    return 0;
  }
  out.table(
    ['RUN', 'STATUS', 'STARTED', 'DURATION', 'INSTANCE', 'COST', 'STEP', 'LOSS', 'MODEL', 'ALIAS'],
    runs.map((r) => [
      r.runId,
      statusText(out, r.status, r.reason),
      formatTime(r.startedAt),
      formatDuration(r.durationSeconds),
      r.instanceType ? `${r.instanceType} ${r.market ?? ''}`.trim() : '-',
      formatUsd(r.estimatedCostUsd),
      stepText(r.step, r.maxSteps),
      lossText(r.loss),
      r.finalModel ? out.paint('green', 'yes') : 'no',
      r.aliases.join(',') || '-',
    ]),
    { align: ['left', 'left', 'left', 'right', 'left', 'right', 'right', 'right'] },
  );
  return 0;
}

async function showRun(ctx: CliContext, store: RunStore, nameOrId: string): Promise<number> {
  const { runId } = await store.resolve(nameOrId);
  const [run, configText, metrics, manifest, files, aliases] = await Promise.all([
    store.run(runId, { finalModel: false }),
    store.readText(`${runPrefix(runId)}/config.yaml`),
    store.metrics(runId),
    store.manifest(finalPrefix(runId)),
    store.list(finalPrefix(runId)),
    store.aliases(),
  ]);
  if (!run.ledger && !configText && files.length === 0) {
    throw new CliFailure(
      `run ${runId} does not exist in s3://${store.bucket}/runs/ (npx tuning-lab runs)`,
    );
  }
  const config = configText ? (parseYaml(configText) as RunConfigView) : undefined;
  const evalPoints = (metrics?.points ?? []).filter((p) => p.evalLoss !== undefined);
  const lastEval = evalPoints[evalPoints.length - 1];
  const sizes = new Map(files.map((o) => [o.Key as string, o.Size ?? -1]));
  const prefix = finalPrefix(runId);
  const complete =
    manifest !== undefined &&
    manifest.files.every((f) => sizes.get(`${prefix}${f.path}`) === f.size);
  const modelBytes = manifest?.files.reduce((sum, f) => sum + f.size, 0);
  const summary = summarise({ ...run, finalModel: complete, aliases: [] }, ctx.now());
  const details = {
    ...summary,
    aliases: aliases.filter((a) => a.runId === runId).map((a) => a.name),
    baseModel: config?.model?.base_model ?? null,
    method: config?.model?.method ?? null,
    data: { train: config?.data?.train ?? null, eval: config?.data?.eval ?? null },
    configDigest: configText
      ? `sha256:${createHash('sha256').update(configText).digest('hex')}`
      : null,
    imageUri: run.ledger?.imageUri ?? null,
    evalLoss: lastEval?.evalLoss ?? run.progress?.evalLoss ?? null,
    evalStep: lastEval?.step ?? null,
    billableSeconds: run.ledger?.billableSeconds ?? null,
    attempts: run.ledger?.attempts?.length ?? 0,
    interruptions: run.ledger?.interruptions?.length ?? 0,
    model: {
      uri: `s3://${store.bucket}/${prefix}`,
      complete,
      files: manifest?.files.length ?? 0,
      bytes: modelBytes ?? null,
      step: manifest?.step ?? null,
    },
    logsUri: run.ledger?.logsUri ?? null,
  };
  const out = ctx.out;
  if (out.jsonMode) {
    out.json(details);
    return 0;
  }
  out.keyValues([
    ['run', runId + (details.aliases.length ? `  (${details.aliases.join(', ')})` : '')],
    ['status', statusText(out, details.status, details.reason)],
    ['started', `${formatTime(details.startedAt)}  ended ${formatTime(details.endedAt)}`],
    ['duration', formatDuration(details.durationSeconds)],
    ['instance', instanceText(run.ledger)],
    ['attempts', `${details.attempts} (${details.interruptions} interruptions)`],
    [
      'cost',
      `${formatUsd(details.estimatedCostUsd)} (estimate), ${formatDuration(details.billableSeconds)} billed`,
    ],
    ['base model', details.baseModel ?? '-'],
    ['method', details.method ?? '-'],
    ['data', `train ${details.data.train ?? '-'}, eval ${details.data.eval ?? '-'}`],
    ['config', details.configDigest ?? '-'],
    ['image', details.imageUri ?? '-'],
    ['step', stepText(details.step, details.maxSteps)],
    ['loss', lossText(details.loss)],
    [
      'eval loss',
      details.evalStep !== null
        ? `${lossText(details.evalLoss)} (step ${details.evalStep})`
        : lossText(details.evalLoss),
    ],
    [
      'model',
      complete
        ? `${details.model.uri}  ${details.model.files} files, ${formatBytes(details.model.bytes ?? 0)}`
        : out.paint('yellow', manifest ? `${details.model.uri} incomplete` : 'no final model'),
    ],
    ['logs', details.logsUri ?? '-'],
  ]);
  return 0;
}

interface RunConfigView {
  model?: { base_model?: string; method?: string };
  data?: { train?: string; eval?: string };
}

function instanceText(ledger?: Ledger): string {
  if (!ledger?.instanceType) return '-';
  return [ledger.instanceType, ledger.market, ledger.availabilityZone, ledger.instanceId]
    .filter(Boolean)
    .join(' ');
}

async function tagRun(
  ctx: CliContext,
  store: RunStore,
  runId: string,
  name: string,
): Promise<number> {
  const { runId: target } = await store.resolve(runId);
  const [ledger, previous] = await Promise.all([
    store.readJson<Ledger>(ledgerKey(target)),
    store.alias(name),
  ]);
  if (!ledger) {
    throw new CliFailure(
      `run ${target} has no ledger in s3://${store.bucket}/runs/: nothing to tag (npx tuning-lab runs)`,
    );
  }
  const doc = await store.setAlias(name, target);
  if (ctx.out.jsonMode) {
    ctx.out.json({ ...doc, previousRunId: previous?.runId ?? null });
  } else if (previous && previous.runId !== target) {
    ctx.out.line(`${name} -> ${target} (was ${previous.runId})`);
  } else {
    ctx.out.line(`${name} -> ${target}`);
  }
  return 0;
}

async function untag(ctx: CliContext, store: RunStore, name: string): Promise<number> {
  const alias = await store.alias(name);
  if (!alias) throw new CliFailure(`no alias named ${name} (npx tuning-lab runs lists them)`);
  await store.deleteAlias(name);
  if (ctx.out.jsonMode) ctx.out.json({ removed: name, runId: alias.runId });
  else ctx.out.line(`removed ${name} (was ${alias.runId})`);
  return 0;
}
