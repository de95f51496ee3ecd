/**
 * bin/tuning-lab.ts as the CDK CLI runs it: context arrives in CDK_CONTEXT_JSON, a bad setting
 * prints one line and exits 1 without a stack trace.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CDK_JSON_CONTEXT, ROOT } from './support/synth';

function runApp(context: Record<string, unknown>) {
  const result = spawnSync(
    join(ROOT, 'node_modules', '.bin', 'ts-node'),
    ['--prefer-ts-exts', 'bin/tuning-lab.ts'],
    {
      cwd: ROOT,
      encoding: 'utf8',
      env: {
        ...process.env,
        CDK_CONTEXT_JSON: JSON.stringify({
          ...CDK_JSON_CONTEXT,
          'aws:cdk:bundling-stacks': [],
          ...context,
        }),
        CDK_OUTDIR: mkdtempSync(join(tmpdir(), 'cdk-out-')),
      },
    },
  );
  return { status: result.status, stderr: result.stderr.trim() };
}

describe('the CDK app entry point', () => {
  test('a typo in a setting prints one line naming it and exits 1', () => {
    const { status, stderr } = runApp({ maxRuntimeHour: '2' });
    expect(status).toBe(1);
    expect(stderr.split('\n')).toHaveLength(1);
    expect(stderr).toMatch(
      /^tuning-lab: Unknown setting maxRuntimeHour=2: did you mean maxRuntimeHours\?/,
    );
  });

  test('a bad run config prints the field path, no stack trace', () => {
    const { status, stderr } = runApp({
      createInstance: 'true',
      runConfig: 'configs/missing.yaml',
    });
    expect(status).toBe(1);
    expect(stderr).toMatch(
      /^tuning-lab: Invalid setting runConfig=configs\/missing\.yaml: file not found/,
    );
    expect(stderr).not.toMatch(/\n\s+at /);
  });
});
