import { type App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, NIST80053R5Checks } from 'cdk-nag';
import type { Settings } from './config';
import { DEFAULT_STACK_NAME } from './contract';
import { TrainingStack } from './training-stack';

export const STACK_NAME = DEFAULT_STACK_NAME;

/**
 * TrainingStack in `app`, with cdk-nag's AwsSolutions and NIST 800-53 rev 5 packs as validation
 * plugins: an unacknowledged finding fails synthesis.
 */
export function buildTrainingApp(app: App, settings: Settings, region?: string): TrainingStack {
  const stack = new TrainingStack(app, STACK_NAME, {
    description: 'tuning-lab: fine-tune an LLM on one AWS GPU instance, safely and cheaply',
    env: { region: settings.region ?? region },
    settings,
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new NIST80053R5Checks(app));
  return stack;
}
