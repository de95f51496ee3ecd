/** Synthesizes TrainingStack from settings the way bin/ does, for assertions in tests. */
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildTrainingApp } from '../../lib/app';
import { parseSettings, type Settings } from '../../lib/config';
import { TrainingStack } from '../../lib/training-stack';

export const ROOT = join(__dirname, '..', '..');
export const TINY_RUN_CONFIG = 'test/fixtures/tiny-run.yaml';
/** The feature flags of cdk.json: tests synthesize with exactly what `cdk synth` uses. */
export const CDK_JSON_CONTEXT: Record<string, unknown> = JSON.parse(
  readFileSync(join(ROOT, 'cdk.json'), 'utf8'),
).context;

export interface Synthesized {
  readonly app: App;
  readonly stack: TrainingStack;
  readonly settings: Settings;
  readonly template: Template;
  /** What synthesis printed (the validation report: warnings, findings). */
  readonly report: string;
}

export interface SynthOptions {
  /** Run esbuild for the Lambda (slow); default false: assets are not bundled. */
  readonly bundle?: boolean;
  readonly region?: string;
}

export function synth(context: Record<string, unknown> = {}, options: SynthOptions = {}): Synthesized {
  const settings = parseSettings(context, { cwd: ROOT });
  const app = new App({
    context: {
      ...CDK_JSON_CONTEXT,
      ...context,
      'aws:cdk:bundling-stacks': options.bundle ? ['**'] : [],
    },
  });
  const stack = new TrainingStack(app, 'TrainingStack', {
    env: { region: options.region ?? settings.region ?? 'us-east-1' },
    settings,
  });
  // The validation report goes to console.error; keep it for assertions instead of the log.
  const printed: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => printed.push(args.join(' '));
  try {
    const template = Template.fromStack(stack);
    return { app, stack, settings, template, report: printed.join('\n') };
  } finally {
    console.error = original;
  }
}

/** A run: createInstance with the small test run config. */
export const RUN_CONTEXT = { createInstance: 'true', runConfig: TINY_RUN_CONFIG };

/** The app as bin/ builds it, for the cdk-nag gates: synthesize it with {@link synthError}. */
export function nagApp(context: Record<string, unknown>): { app: App; stack: TrainingStack } {
  const app = new App({
    context: { ...CDK_JSON_CONTEXT, ...context, 'aws:cdk:bundling-stacks': [] },
  });
  const stack = buildTrainingApp(app, parseSettings(context, { cwd: ROOT }), 'us-east-1');
  return { app, stack };
}

/** What synthesis failed with (the error and the report it printed), or '' when it succeeded. */
export function synthError(app: App): string {
  const original = console.error;
  const printed: string[] = [];
  console.error = (...args: unknown[]) => printed.push(args.join(' '));
  try {
    app.synth();
    return '';
  } catch (error) {
    return `${(error as Error).message}\n${printed.join('\n')}`;
  } finally {
    console.error = original;
  }
}
