/**
 * `tuning-lab status [run]`: one screen on a run: the ledger, the GPU group's capacity and its
 * instances, and live progress (step / total, loss, tokens/s, ETA, cost so far).
 *
 *     npx tuning-lab status                       # the stack's current run, else the newest
 *     npx tuning-lab status --watch               # redraw every 10 s until the run ends
 *     npx tuning-lab status run-3f2a9c1b --plot loss.svg
 */
import { writeFileSync } from 'node:fs';
import { extname } from 'node:path';
import { DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import type { ProgressDocument } from '../../lib/contract';
import { booleanOption, stringOption, type Command } from '../command';
import type { CliContext } from '../context';
import { CliFailure, UsageError, wholeNumber } from '../errors';
import { formatDuration, formatTime, formatUsd } from '../output';
import { lossSvg, metricsCsv } from '../plot';
import { RunStore } from '../run-store';
import { costSoFar, lossText, statusText, stepText } from './runs';

export const command: Command = {
  name: 'status',
  summary: 'one screen on a run: ledger, capacity, instances, step, loss, tokens/s, ETA, cost',
  usage: '[run]',
  rank: 20,
  description: [
    "The run: an alias or run id; default the stack's current run (output RunId), else the",
    'newest. Progress is what the supervisor last published (every logging_steps window or',
    '30 s, whichever is slower), so it lags the instance by up to that much.',
  ].join('\n'),
  options: {
    watch: { type: 'boolean', short: 'w', help: 'redraw until the run is no longer running' },
    interval: { type: 'string', value: 'SECONDS', help: 'seconds between redraws (default 10)' },
    plot: {
      type: 'string',
      value: 'FILE',
      help: 'write the loss curve (training and eval) to FILE.svg, or the metrics to FILE.csv',
    },
  },
  positionals: { min: 0, max: 1 },
  async run(ctx, args) {
    const plot = stringOption(args, 'plot');
    if (plot !== undefined) checkPlotFile(plot);
    const intervalText = stringOption(args, 'interval');
    const intervalSeconds =
      intervalText === undefined ? 10 : wholeNumber('--interval', intervalText, 1);
    const store = await RunStore.of(ctx);
    const runId = await chooseRun(ctx, store, args.positionals[0]);

    if (plot !== undefined) {
      const metrics = await store.metrics(runId);
      if (!metrics || metrics.points.length === 0) {
        throw new CliFailure(
          `run ${runId} has published no metrics yet (runs/${runId}/metrics.json)`,
        );
      }
      writeFileSync(
        plot,
        extname(plot).toLowerCase() === '.csv'
          ? metricsCsv(metrics.points)
          : lossSvg(`${ctx.stackName} ${runId}`, metrics.points),
      );
      if (ctx.out.jsonMode) ctx.out.json({ runId, plot, points: metrics.points.length });
      else ctx.out.line(`wrote ${plot} (${metrics.points.length} points)`);
      return 0;
    }

    for (;;) {
      const screen = await readStatus(ctx, store, runId);
      if (ctx.out.jsonMode) ctx.out.json(screen);
      else render(ctx, screen, booleanOption(args, 'watch'));
      if (!booleanOption(args, 'watch') || screen.status !== 'running') return 0;
      await new Promise((resolve) => setTimeout(resolve, intervalSeconds * 1000));
    }
  },
};

function checkPlotFile(file: string): void {
  const ext = extname(file).toLowerCase();
  if (ext === '.svg' || ext === '.csv') return;
  throw new UsageError(
    `--plot: '${file}' is not allowed; use a .svg or .csv file (PNG would need a native canvas ` +
      'library; any browser or image tool turns the SVG into a PNG)',
  );
}

/** The positional run, else the stack's current run (output RunId), else the newest run. */
export async function chooseRun(ctx: CliContext, store: RunStore, given?: string): Promise<string> {
  if (given) return (await store.resolve(given)).runId;
  const current = await ctx.optionalOutput('runId');
  if (current) return current;
  const newest = await store.newestRunId();
  if (newest === undefined) {
    throw new CliFailure(
      `stack ${ctx.stackName} has no runs yet: npx cdk deploy ${ctx.stackName} -c createInstance=true -c runConfig=<file>`,
    );
  }
  return newest;
}

export interface GroupView {
  name: string;
  desired: number;
  min: number;
  max: number;
  instances: {
    instanceId: string;
    instanceType?: string;
    availabilityZone?: string;
    lifecycleState?: string;
    health?: string;
  }[];
}

async function readStatus(ctx: CliContext, store: RunStore, runId: string) {
  const stack = await ctx.stack();
  const groupName = await ctx.optionalOutput('groupName');
  const [run, group, region] = await Promise.all([
    store.run(runId),
    groupName ? describeGroup(ctx, groupName) : undefined,
    ctx.region(),
  ]);
  if (!run.ledger && !run.progress) {
    throw new CliFailure(
      `run ${runId} has no ledger yet in s3://${store.bucket}/runs/${runId}/ (is its instance still booting? npx tuning-lab logs ${runId})`,
    );
  }
  const now = ctx.now();
  const progress = run.progress;
  const live = run.ledger?.status === 'running';
  return {
    stack: stack.name,
    runId,
    current: stack.outputs.RunId === runId,
    status: run.ledger?.status ?? 'unknown',
    reason: run.ledger?.reason ?? null,
    startedAt: run.ledger?.startedAt ?? null,
    endedAt: run.ledger?.endedAt ?? null,
    instance: run.ledger
      ? {
          instanceId: run.ledger.instanceId ?? null,
          instanceType: run.ledger.instanceType ?? null,
          availabilityZone: run.ledger.availabilityZone ?? null,
          market: run.ledger.market ?? null,
        }
      : null,
    attempts: run.ledger?.attempts?.length ?? 0,
    interruptions: run.ledger?.interruptions?.length ?? 0,
    /** `sagemaker` on a stack of training jobs (no group, no shell), else `ec2`. */
    backend: (await ctx.optionalOutput('backend')) === 'sagemaker' ? 'sagemaker' : 'ec2',
    group: group ?? null,
    sessionCommand: sessionCommand(group, region),
    progress: progress
      ? {
          step: progress.step,
          maxSteps: progress.maxSteps,
          loss: progress.loss,
          evalLoss: progress.evalLoss,
          learningRate: progress.learningRate,
          tokensPerSecond: progress.tokensPerSecond,
          updatedAt: progress.updatedAt,
          ageSeconds: (now.getTime() - new Date(progress.updatedAt).getTime()) / 1000,
          etaSeconds: live ? etaSeconds(progress) : null,
        }
      : null,
    lastStep: progress?.step ?? run.ledger?.lastStep ?? null,
    costSoFarUsd: costSoFar(run, now),
    finalModelUri: run.ledger?.finalModelUri ?? null,
    logsUri: run.ledger?.logsUri ?? null,
    lastLogLines: run.ledger?.lastLogLines ?? [],
    dashboardUrl: stack.outputs.DashboardUrl ?? null,
  };
}

type StatusScreen = Awaited<ReturnType<typeof readStatus>>;

async function describeGroup(ctx: CliContext, name: string): Promise<GroupView | undefined> {
  const found = await ctx.autoscaling.send(
    new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [name] }),
  );
  const group = found.AutoScalingGroups?.[0];
  if (!group) return undefined;
  return {
    name,
    desired: group.DesiredCapacity ?? 0,
    min: group.MinSize ?? 0,
    max: group.MaxSize ?? 0,
    instances: (group.Instances ?? []).map((i) => ({
      instanceId: i.InstanceId ?? '?',
      instanceType: i.InstanceType,
      availabilityZone: i.AvailabilityZone,
      lifecycleState: i.LifecycleState,
      health: i.HealthStatus,
    })),
  };
}

/**
 * The Session Manager command that opens a shell on the group's in-service instance (README
 * step 6), or null when none is in service: never a `--target` without an instance.
 */
export function sessionCommand(group: GroupView | undefined, region: string): string | null {
  const inService = group?.instances.find((i) => i.lifecycleState === 'InService');
  return inService
    ? `aws ssm start-session --region ${region} --target ${inService.instanceId}`
    : null;
}

/** Seconds to the last step at the rate this attempt has kept so far; null when unknown. */
export function etaSeconds(progress: ProgressDocument): number | null {
  const { step, maxSteps, attemptFirstStep, attemptFirstStepAt, updatedAt } = progress;
  if (step === null || !maxSteps || attemptFirstStep === null || !attemptFirstStepAt) return null;
  const steps = step - attemptFirstStep;
  const seconds = (new Date(updatedAt).getTime() - new Date(attemptFirstStepAt).getTime()) / 1000;
  if (steps <= 0 || seconds <= 0) return null;
  return Math.max(0, ((maxSteps - step) * seconds) / steps);
}

function render(ctx: CliContext, s: StatusScreen, watching: boolean): void {
  const out = ctx.out;
  if (watching && out.color) out.stdout.write('\u001b[H\u001b[2J');
  const p = s.progress;
  const pairs: [string, string][] = [
    ['run', `${s.runId}${s.current ? ' (current run of the stack)' : ''}`],
    ['status', statusText(out, s.status, s.reason)],
    ['started', `${formatTime(s.startedAt)}${s.endedAt ? `  ended ${formatTime(s.endedAt)}` : ''}`],
    [
      'instance',
      s.instance?.instanceType
        ? [
            s.instance.instanceType,
            s.instance.market,
            s.instance.availabilityZone,
            s.instance.instanceId,
          ]
            .filter(Boolean)
            .join(' ')
        : '-',
    ],
    ['attempts', `${s.attempts} (${s.interruptions} interruptions)`],
  ];
  if (s.backend === 'ec2') {
    pairs.push([
      'group',
      s.group
        ? `${s.group.name}: desired ${s.group.desired} (min ${s.group.min}, max ${s.group.max})`
        : '-',
    ]);
  }
  for (const i of s.group?.instances ?? []) {
    pairs.push([
      '',
      `${i.instanceId} ${i.instanceType ?? ''} ${i.availabilityZone ?? ''} ${i.lifecycleState ?? ''} ${i.health ?? ''}`
        .replace(/ +/g, ' ')
        .trim(),
    ]);
  }
  if (s.group) {
    pairs.push([
      'shell',
      s.sessionCommand ??
        `no instance in service (run ${s.status}, group desired ${s.group.desired}): nothing to open a shell on`,
    ]);
  }
  pairs.push(
    [
      'step',
      p ? stepText(p.step, p.maxSteps) + percent(p.step, p.maxSteps) : stepText(s.lastStep, null),
    ],
    [
      'loss',
      p ? `${lossText(p.loss)}${p.evalLoss !== null ? `  eval ${lossText(p.evalLoss)}` : ''}` : '-',
    ],
    ['tokens/s', p?.tokensPerSecond ? p.tokensPerSecond.toFixed(0) : '-'],
    [
      'ETA',
      p?.etaSeconds !== null && p?.etaSeconds !== undefined ? formatDuration(p.etaSeconds) : '-',
    ],
    ['cost so far', `${formatUsd(s.costSoFarUsd)} (estimate)`],
    ['updated', p ? `${formatTime(p.updatedAt)} (${formatDuration(p.ageSeconds)} ago)` : '-'],
  );
  if (s.finalModelUri) pairs.push(['model', s.finalModelUri]);
  if (s.logsUri) pairs.push(['logs', s.logsUri]);
  if (s.dashboardUrl) pairs.push(['dashboard', s.dashboardUrl]);
  out.keyValues(pairs);
  if (s.lastLogLines.length > 0 && s.status === 'failed') {
    out.line('');
    out.line(out.paint('bold', `last ${Math.min(10, s.lastLogLines.length)} log lines:`));
    for (const line of s.lastLogLines.slice(-10)) out.line(`  ${line}`);
  }
}

function percent(step: number | null, maxSteps: number | null): string {
  return step !== null && maxSteps ? ` (${Math.floor((step / maxSteps) * 100)} %)` : '';
}
