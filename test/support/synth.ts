/** Synthesizes TrainingStack from settings the way bin/ does, for assertions in tests. */
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { join } from 'node:path';
import { parseSettings, type Settings } from '../../lib/config';
import { TrainingStack } from '../../lib/training-stack';

export const ROOT = join(__dirname, '..', '..');
export const TINY_RUN_CONFIG = 'test/fixtures/tiny-run.yaml';

export interface Synthesized {
  readonly app: App;
  readonly stack: TrainingStack;
  readonly settings: Settings;
  readonly template: Template;
}

export interface SynthOptions {
  /** Run esbuild for the Lambda (slow); default false: assets are not bundled. */
  readonly bundle?: boolean;
  readonly region?: string;
}

export function synth(context: Record<string, unknown> = {}, options: SynthOptions = {}): Synthesized {
  const settings = parseSettings(context, { cwd: ROOT });
  const app = new App({
    context: { ...context, 'aws:cdk:bundling-stacks': options.bundle ? ['**'] : [] },
  });
  const stack = new TrainingStack(app, 'TrainingStack', {
    env: { region: options.region ?? settings.region ?? 'us-east-1' },
    settings,
  });
  return { app, stack, settings, template: Template.fromStack(stack) };
}

/** A run: createInstance with the small test run config. */
export const RUN_CONTEXT = { createInstance: 'true', runConfig: TINY_RUN_CONFIG };
