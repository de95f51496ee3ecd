/**
 * What the GPU instance runs at boot: the user-data template from runtime/user-data.sh, with its
 * markers filled in, and the runtime/ folder shipped as an S3 asset the instance downloads.
 *
 * The instance runtime (runtime/) owns the template's body; this module only renders it. A marker
 * left unreplaced fails synth, so a template and this renderer can never drift apart silently.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import { Construct } from 'constructs';
import { UserInputError } from './errors';

export const RUNTIME_DIR = join(__dirname, '..', 'runtime');
export const USER_DATA_TEMPLATE = join(RUNTIME_DIR, 'user-data.sh');

/** What the markers of the user-data template are replaced with. */
export interface UserDataValues {
  /** `{{RUN_SETTINGS_PARAMETER}}`: name of the run-settings SSM parameter. */
  readonly runSettingsParameter: string;
  /** `{{REGION}}`: the stack's region (may be a token). */
  readonly region: string;
  /** `{{RUNTIME_ARCHIVE_URI}}`: s3:// URI of the zipped runtime/ folder (may be a token). */
  readonly runtimeArchiveUri: string;
  /** `{{STACK_NAME}}`: the stack name. */
  readonly stackName: string;
}

const MARKERS: Record<keyof UserDataValues, string> = {
  runSettingsParameter: '{{RUN_SETTINGS_PARAMETER}}',
  region: '{{REGION}}',
  runtimeArchiveUri: '{{RUNTIME_ARCHIVE_URI}}',
  stackName: '{{STACK_NAME}}',
};

/** Fill in the template's markers; throws if any `{{...}}` marker is left. */
export function renderUserData(template: string, values: UserDataValues): string {
  let rendered = template;
  for (const [key, marker] of Object.entries(MARKERS)) {
    rendered = rendered.split(marker).join(values[key as keyof UserDataValues]);
  }
  const leftover = rendered.match(/\{\{[A-Z0-9_]+\}\}/);
  if (leftover) {
    throw new UserInputError(
      `runtime/user-data.sh has a marker the stack does not fill in: ${leftover[0]} ` +
        `(known: ${Object.values(MARKERS).join(', ')}).`,
    );
  }
  return rendered;
}

/** Read and render runtime/user-data.sh. */
export function loadUserData(values: UserDataValues, templatePath = USER_DATA_TEMPLATE): string {
  return renderUserData(readFileSync(templatePath, 'utf8'), values);
}

/** Files of runtime/ that never go to the instance. */
export const RUNTIME_ARCHIVE_EXCLUDES = [
  'tests',
  'bench',
  '**/__pycache__',
  '**/*.pyc',
  '.pytest_cache',
  '.ruff_cache',
  '*.egg-info',
];

/** The runtime/ folder as a zip asset in the CDK assets bucket. */
export function runtimeArchive(scope: Construct, id: string): s3assets.Asset {
  return new s3assets.Asset(scope, id, { path: RUNTIME_DIR, exclude: RUNTIME_ARCHIVE_EXCLUDES });
}
