/**
 * How `runs` and `status` scale with the number of runs: 50 runs in the bucket (the four of
 * test/cli/cli.test.ts and 46 more finished ones), the stack without a current run (as after
 * `createInstance=false`, so `status` looks for the newest). Prints the AWS calls and wall time
 * of each (docs/runbook.md quotes them) and holds the number of calls to its formula.
 */
import { spawnSync } from 'node:child_process';
import {
  arrangeStack,
  cli,
  motoEnv,
  ROOT,
  startMoto,
  stopMoto,
  type Moto,
  type TestStack,
} from './support';

const RUNS = 50;
let moto: Moto;
let stack: TestStack;

beforeAll(async () => {
  moto = await startMoto();
  stack = await arrangeStack(moto.url, 'ScaleStack', { extraRuns: RUNS - 4 });
}, 600_000);

afterAll(() => stopMoto(moto));

function report(
  what: string,
  result: { calls: number; seconds: number; byOperation: Record<string, number> },
) {
  console.log(
    `${what} with ${RUNS} runs: ${result.calls} AWS calls in ${result.seconds.toFixed(2)} s ` +
      JSON.stringify(result.byOperation),
  );
}

test(`runs reads each run's ledger and progress once, and the manifest of a completed one`, async () => {
  const result = await cli(moto.url, ['runs', '--stack', stack.name, '--json']);

  expect(result.code).toBe(0);
  const runs = JSON.parse(result.stdout).runs;
  expect(runs).toHaveLength(RUNS);
  const completed = runs.filter((r: { status: string }) => r.status === 'completed').length;
  report('runs', result);
  // DescribeStacks, one listing of runs/, one of aliases/, 2 reads a run, 1 head a completed run
  expect(result.calls).toBe(3 + 2 * RUNS + completed);
});

test('status without a current run finds the newest run, then reads it and the group', async () => {
  const result = await cli(moto.url, ['status', '--stack', stack.name, '--json']);

  expect(result.code).toBe(0);
  expect(JSON.parse(result.stdout).runId).toBe('run-live0001');
  report('status', result);
  // DescribeStacks, one listing of runs/, a ledger a run; then the newest's ledger and
  // progress, and the group
  expect(result.calls).toBe(2 + RUNS + 2 + 1);
});

test('status of a named run does not depend on the number of runs', async () => {
  const result = await cli(moto.url, ['status', 'run-fin00001', '--stack', stack.name, '--json']);

  expect(result.code).toBe(0);
  report('status <run>', result);
  // DescribeStacks, the alias lookup (a run id may be an alias too), ledger, progress, the group
  expect(result.calls).toBe(5);
});

test('as a process, node and ts-node start-up included', () => {
  for (const argv of [['runs'], ['status']]) {
    const started = process.hrtime.bigint();
    const done = spawnSync('node', ['cli/tuning-lab.js', ...argv, '--stack', stack.name], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, ...motoEnv(moto.url) },
    });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    console.log(`node cli/tuning-lab.js ${argv[0]} with ${RUNS} runs: ${seconds.toFixed(2)} s`);
    expect(done.status).toBe(0);
  }
});
