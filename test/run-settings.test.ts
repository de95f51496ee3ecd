/** The run-settings SSM parameter's size limits (lib/run-settings.ts), on the construct alone. */
import { App, Lazy, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { RunSettingsDocument } from '../lib/contract';
import { UserInputError } from '../lib/errors';
import { ADVANCED_PARAMETER_LIMIT_BYTES, RunSettingsParameter } from '../lib/run-settings';

const BASE: RunSettingsDocument = {
  schemaVersion: 1,
  stackName: 'TrainingStack',
  region: 'us-east-1',
  runId: 'run-1',
  imageUri: '111111111111.dkr.ecr.us-east-1.amazonaws.com/trainer:latest',
  trainerRoleArn: 'arn:aws:iam::111111111111:role/trainer',
  runConfig: {},
  dataRootUri: 's3://data/',
  outputUri: 's3://outputs/runs/run-1',
  logGroupName: 'logs',
  topicArn: 'arn:aws:sns:us-east-1:111111111111:alerts',
  maxRuntimeHours: 12,
  maxRunCostUsd: null,
  idleMinutes: 30,
  maxRetries: 2,
  debugHoldMinutes: 0,
  onDemandUsdPerHour: { 'g5.xlarge': 1.006 },
};

const TOKEN = /\$\{Token\[[^\]]+\]\}/g;

/** BASE with a run config padded to `literalBytes` of JSON besides the tokens' text. */
function documentOf(
  literalBytes: number,
  extra: Partial<RunSettingsDocument> = {},
): RunSettingsDocument {
  const empty = { ...BASE, ...extra, runConfig: { pad: '' } };
  const literal = Buffer.byteLength(JSON.stringify(empty).replace(TOKEN, ''));
  return { ...empty, runConfig: { pad: 'x'.repeat(literalBytes - literal) } };
}

function build(document: RunSettingsDocument) {
  const stack = new Stack(new App(), 'TrainingStack', { env: { region: 'us-east-1' } });
  new RunSettingsParameter(stack, 'RunSettings', { document, readers: [] });
  return Template.fromStack(stack);
}

function errorOf(document: RunSettingsDocument): string {
  try {
    build(document);
  } catch (error) {
    expect(error).toBeInstanceOf(UserInputError);
    return (error as Error).message;
  }
  throw new Error('expected a UserInputError');
}

describe('run settings size', () => {
  test('a document of exactly 8192 bytes fits the Advanced tier', () => {
    const template = build(documentOf(ADVANCED_PARAMETER_LIMIT_BYTES));
    template.hasResourceProperties('AWS::SSM::Parameter', { Tier: 'Advanced' });
  });

  test('a document over 8192 bytes fails synth with its size and the fix', () => {
    expect(errorOf(documentOf(8193))).toBe(
      'The run settings would be ~8193 bytes, over the 8192 bytes an SSM parameter holds; ' +
        'shorten the run config (runConfig).',
    );
  });

  test('each token (a value known at deploy) counts 100 bytes toward the limit', () => {
    const token = () => Lazy.string({ produce: () => 'arn:aws:iam::111111111111:role/x' });
    const document = documentOf(8000, { trainerRoleArn: token(), topicArn: token() });
    expect(errorOf(document)).toBe(
      'The run settings would be ~8200 bytes, over the 8192 bytes an SSM parameter holds; ' +
        'shorten the run config (runConfig).',
    );
  });
});
