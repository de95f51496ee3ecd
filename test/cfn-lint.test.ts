import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, RUN_CONTEXT, synth } from './support/synth';

const CFN_LINT = join(ROOT, '.venv', 'bin', 'cfn-lint');

function lint(context: Record<string, unknown>): { status: number | null; output: string } {
  const { template } = synth(context);
  const file = join(mkdtempSync(join(tmpdir(), 'cfn-lint-')), 'TrainingStack.template.json');
  writeFileSync(file, JSON.stringify(template.toJSON(), null, 1));
  const result = spawnSync(CFN_LINT, [file], { encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('cfn-lint on the synthesized template', () => {
  test('a run with every option has no errors or warnings', () => {
    expect(
      lint({
        ...RUN_CONTEXT,
        githubRepo: 'acme/llm',
        alertEmail: 'me@acme.dev',
        maxRunCostUsd: '20',
      }),
    ).toEqual({ status: 0, output: '' });
  });

  test('a SageMaker run on two nodes has no errors or warnings', () => {
    expect(
      lint({
        ...RUN_CONTEXT,
        backend: 'sagemaker',
        instanceTypes: 'ml.g5.2xlarge',
        instanceCount: '2',
        maxRunCostUsd: '20',
      }),
    ).toEqual({ status: 0, output: '' });
  });

  test('g4dn on-demand in an existing network without retained data has no errors or warnings', () => {
    expect(
      lint({
        instanceTypes: 'g4dn.xlarge',
        useSpot: 'false',
        vpcId: 'vpc-0123456789abcdef0',
        subnetIds: 'subnet-0aaaaaaaaaaaaaaa1',
        retainData: 'false',
      }),
    ).toEqual({ status: 0, output: '' });
  });
});
