import { readFileSync } from 'node:fs';
import { UserInputError } from '../lib/errors';
import { loadUserData, renderUserData, USER_DATA_TEMPLATE } from '../lib/instance-runtime';

const values = {
  runSettingsParameter: '/tuning-lab/TrainingStack/run-settings',
  region: 'eu-west-1',
  runtimeArchiveUri: 's3://assets/runtime.zip',
  stackName: 'TrainingStack',
};

describe('user-data rendering', () => {
  test('every marker is replaced, however often it appears', () => {
    const rendered = renderUserData(
      'P={{RUN_SETTINGS_PARAMETER}} R={{REGION}} A={{RUNTIME_ARCHIVE_URI}} S={{STACK_NAME}} again {{REGION}}',
      values,
    );
    expect(rendered).toBe(
      'P=/tuning-lab/TrainingStack/run-settings R=eu-west-1 A=s3://assets/runtime.zip S=TrainingStack again eu-west-1',
    );
  });

  test('an unknown marker fails synth and names it', () => {
    expect(() => renderUserData('echo {{RUN_ID}}', values)).toThrow(UserInputError);
    expect(() => renderUserData('echo {{RUN_ID}}', values)).toThrow(
      'runtime/user-data.sh has a marker the stack does not fill in: {{RUN_ID}}',
    );
  });

  test('the committed template renders with no marker left', () => {
    expect(readFileSync(USER_DATA_TEMPLATE, 'utf8')).toContain('{{RUN_SETTINGS_PARAMETER}}');
    const rendered = loadUserData(values);
    expect(rendered).not.toMatch(/\{\{[A-Z_]+\}\}/);
    expect(rendered).toContain('/tuning-lab/TrainingStack/run-settings');
    expect(rendered.startsWith('#!')).toBe(true);
  });
});
