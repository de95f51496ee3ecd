/**
 * `tuning-lab doctor`: everything that would stop a run or surprise a bill, checked before any
 * money is spent. Each line is PASS, WARN or FAIL with the fix; exit 1 when any line FAILs.
 *
 *     npx tuning-lab doctor
 *     npx tuning-lab doctor --run-config configs/qwen2.5-7b-lora.yaml -c instanceTypes=g6.xlarge
 *     npx tuning-lab doctor --backend sagemaker -c instanceTypes=g5.2xlarge
 *
 * The settings are what `npx cdk deploy` would use: cdk.json's context, then `-c key=value`
 * (and `--run-config FILE` as `-c runConfig=FILE`), parsed by lib/config.ts. The backend is
 * `--backend`, else the settings' `backend` (`-c backend=sagemaker`), else ec2; a SageMaker job's
 * instance count is the settings' `instanceCount` (default 1). The checks are in
 * cli/doctor/checks.ts.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseSettings, type Settings } from '../../lib/config';
import { UserInputError } from '../../lib/errors';
import { stringOption, type Command, type ParsedArgs } from '../command';
import type { CliContext } from '../context';
import { UsageError, wholeNumber } from '../errors';
import { BACKENDS, runDoctor, type Backend, type CheckLine, type Verdict } from '../doctor/checks';
import { runShape, stepsFromValidate } from '../doctor/estimate';

const VALIDATE_TIMEOUT_MS = 180_000;

export const command: Command = {
  name: 'doctor',
  summary: 'check account, region, bootstrap, quotas, zones, AMI, image, budget, cost estimate',
  usage: '[--run-config FILE] [--backend ec2|sagemaker] [-c key=value ...]',
  rank: 5,
  description: [
    'Credentials and account; region; CDK bootstrap; the spot or on-demand vCPU quota (G/VT,',
    'P) of the market the run uses against the configured types, with the exact',
    "request-service-quota-increase command when short; which of the launch subnets' zones",
    'offer each type; the Deep Learning AMI parameter; the image tag in the repository; the',
    "monthly budget; and an ESTIMATE of the run's time and cost. Settings as `cdk deploy` sees",
    'them: cdk.json, then -c key=value. With --backend sagemaker (or -c backend=sagemaker):',
    "SageMaker's per-type training or spot training quota against the job's instance count,",
    'instead of the EC2 quota, zone and AMI checks.',
  ].join('\n'),
  options: {
    'run-config': { type: 'string', value: 'FILE', help: 'the run config (as -c runConfig=FILE)' },
    backend: {
      type: 'string',
      value: 'NAME',
      help: "where the run trains (default: the settings' backend, else ec2)",
      choices: BACKENDS,
    },
    context: {
      type: 'string',
      short: 'c',
      multiple: true,
      value: 'key=value',
      help: 'a deploy-time setting, as for cdk deploy (repeatable)',
    },
    steps: {
      type: 'string',
      value: 'N',
      help: 'optimizer steps for the estimate (default: max_steps, else tuning-trainer validate)',
    },
  },
  positionals: { min: 0, max: 0 },
  async run(ctx, args) {
    const settings = deploySettings(args, process.cwd());
    const region = await ctx.region();
    const outputs = await ctx
      .stack()
      .then((stack) => stack.outputs)
      .catch(() => undefined);
    const steps = stringOption(args, 'steps');
    const plannedSteps =
      steps !== undefined ? wholeNumber('--steps', steps, 1) : plannedStepsOf(ctx, settings);
    const lines = await runDoctor(
      {
        sts: ctx.sts,
        quotas: ctx.serviceQuotas,
        ec2: ctx.ec2,
        ssm: ctx.ssm,
        ecr: ctx.ecr,
        budgets: ctx.budgets,
        autoscaling: ctx.autoscaling,
      },
      {
        settings,
        region,
        stackName: ctx.stackName,
        outputs,
        plannedSteps,
        backend: backendOf(args, settings),
        instanceCount: instanceCountOf(settings),
      },
    );
    const failed = lines.some((l) => l.verdict === 'FAIL');
    if (ctx.out.jsonMode) {
      ctx.out.json({ ok: !failed, region, stack: ctx.stackName, checks: lines });
    } else {
      printLines(ctx, lines);
    }
    return failed ? 1 : 0;
  },
};

/** cdk.json's context (when there is one), then `-c` and `--run-config`, parsed as bin/ does. */
export function deploySettings(args: ParsedArgs, cwd: string): Settings {
  const context: Record<string, unknown> = {};
  const cdkJson = join(cwd, 'cdk.json');
  if (existsSync(cdkJson)) {
    Object.assign(context, JSON.parse(readFileSync(cdkJson, 'utf8')).context ?? {});
  }
  const pairs = (args.options.context as string[] | undefined) ?? [];
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new UsageError(`-c: '${pair}' is not allowed; use key=value`);
    context[pair.slice(0, at)] = pair.slice(at + 1);
  }
  const runConfig = stringOption(args, 'run-config');
  if (runConfig !== undefined) context.runConfig = runConfig;
  try {
    return parseSettings(context, { cwd });
  } catch (error) {
    if (error instanceof UserInputError) throw new UsageError(error.message);
    throw error;
  }
}

/** `--backend`, else the settings' `backend` (once lib/config.ts has one), else ec2. */
function backendOf(args: ParsedArgs, settings: Settings): Backend {
  const chosen = stringOption(args, 'backend') ?? (settings as { backend?: unknown }).backend;
  return chosen === 'sagemaker' ? 'sagemaker' : 'ec2';
}

/** A SageMaker job's instances: the settings' `instanceCount` (once lib/config.ts has one), else 1. */
function instanceCountOf(settings: Settings): number {
  const count = (settings as { instanceCount?: unknown }).instanceCount;
  return typeof count === 'number' && Number.isInteger(count) && count > 0 ? count : 1;
}

/** Steps the run config fixes, else those `tuning-trainer validate` plans (when it can run). */
function plannedStepsOf(ctx: CliContext, settings: Settings): number | undefined {
  if (!settings.run || runShape(settings.run.config)) return undefined;
  const local = join(process.cwd(), '.venv', 'bin', 'tuning-trainer');
  const trainer = existsSync(local) ? local : 'tuning-trainer';
  ctx.out.note(`asking ${trainer} validate for the planned steps...`);
  const done = spawnSync(trainer, ['validate', '--config', settings.run.configPath], {
    encoding: 'utf8',
    timeout: VALIDATE_TIMEOUT_MS,
    env: { ...process.env, HF_HUB_OFFLINE: process.env.HF_HUB_OFFLINE ?? '1' },
  });
  return done.status === 0 ? stepsFromValidate(done.stdout) : undefined;
}

const COLOURS: Record<Verdict, 'green' | 'yellow' | 'red'> = {
  PASS: 'green',
  WARN: 'yellow',
  FAIL: 'red',
};

function printLines(ctx: CliContext, lines: readonly CheckLine[]): void {
  const width = Math.max(...lines.map((l) => l.check.length));
  for (const line of lines) {
    ctx.out.line(
      `${ctx.out.paint(COLOURS[line.verdict], line.verdict)}  ${line.check.padEnd(width)}  ${line.detail}`,
    );
    if (line.fix) ctx.out.line(`${' '.repeat(width + 8)}fix: ${line.fix}`);
  }
  const count = (v: Verdict) => lines.filter((l) => l.verdict === v).length;
  ctx.out.line();
  ctx.out.line(`${count('PASS')} passed, ${count('WARN')} warnings, ${count('FAIL')} failed`);
}
