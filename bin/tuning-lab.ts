#!/usr/bin/env node
/**
 * The CDK app: `npx cdk synth TrainingStack [-c key=value ...]`.
 *
 * The only place that reads context: it is parsed once with the zod schema (lib/config.ts); a bad
 * setting prints one line and exits 1, before anything is synthesized. cdk-nag's AwsSolutions and
 * NIST 800-53 rev 5 packs run as validation plugins: an unacknowledged finding fails synth.
 */
import { App } from 'aws-cdk-lib';
import { buildTrainingApp } from '../lib/app';
import { parseSettings } from '../lib/config';
import { UserInputError } from '../lib/errors';

const app = new App();
try {
  const settings = parseSettings(app.node.getAllContext(), { cwd: process.cwd() });
  buildTrainingApp(app, settings, process.env.CDK_DEFAULT_REGION);
} catch (error) {
  if (!(error instanceof UserInputError)) throw error;
  console.error(`tuning-lab: ${error.message}`);
  process.exit(1);
}
