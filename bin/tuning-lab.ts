#!/usr/bin/env node
/**
 * The CDK app: `npx cdk synth TrainingStack [-c key=value ...]`.
 *
 * The only place that reads context: it is parsed once with the zod schema (lib/config.ts); a bad
 * setting prints one line and exits 1, before anything is synthesized. cdk-nag's AwsSolutions and
 * NIST 800-53 rev 5 packs run as validation plugins: an unacknowledged finding fails synth.
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, NIST80053R5Checks } from 'cdk-nag';
import { parseSettings } from '../lib/config';
import { UserInputError } from '../lib/errors';
import { TrainingStack } from '../lib/training-stack';

export const STACK_NAME = 'TrainingStack';

function main(): void {
  const app = new App();
  try {
    const context = app.node.getAllContext() as Record<string, unknown>;
    const settings = parseSettings(context, { cwd: process.cwd() });
    new TrainingStack(app, STACK_NAME, {
      description: 'tuning-lab: fine-tune an LLM on one AWS GPU instance, safely and cheaply',
      env: { region: settings.region ?? process.env.CDK_DEFAULT_REGION },
      settings,
    });
  } catch (error) {
    if (!(error instanceof UserInputError)) throw error;
    console.error(`tuning-lab: ${error.message}`);
    process.exit(1);
  }
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new NIST80053R5Checks(app));
}

main();
