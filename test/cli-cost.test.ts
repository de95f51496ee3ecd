/** `tuning-lab cost` against the emulator: per run and per month, from the ledgers. */
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { ledgerKey, type Ledger } from '../lib/contract';
import { useOwnEmulator } from './support/cli-moto';

const emulator = useOwnEmulator();
const BUCKET = 'tuning-outputs';
const NOW = new Date('2026-12-01T12:00:00Z');

function ledger(runId: string, fields: Partial<Ledger>): Ledger {
  return {
    schemaVersion: 1,
    runId,
    status: 'completed',
    reason: 'completed',
    instanceType: 'g5.xlarge',
    market: 'spot',
    attempts: [],
    ...fields,
  };
}

beforeAll(async () => {
  const s3 = new S3Client({ ...emulator.config(), forcePathStyle: true });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  const ledgers = [
    ledger('run-nov-a', {
      startedAt: '2026-11-03T10:00:00Z',
      endedAt: '2026-11-03T12:00:00Z',
      billableSeconds: 7200,
      estimatedCostUsd: 1.25,
    }),
    ledger('run-nov-b', {
      status: 'failed',
      reason: 'trainer-failed',
      startedAt: '2026-11-20T08:00:00Z',
      endedAt: '2026-11-20T08:30:00Z',
      billableSeconds: 1800,
      estimatedCostUsd: 0.5,
    }),
    ledger('run-oct-a', {
      status: 'stopped',
      reason: 'operator',
      startedAt: '2026-10-30T23:00:00Z',
      endedAt: '2026-11-01T01:00:00Z',
      billableSeconds: 93600,
      estimatedCostUsd: 10,
    }),
    // Running: one instance ended (0.25 USD in the totals), the live one since 11:00 at 0.5/h.
    ledger('run-dec-live', {
      status: 'running',
      reason: null,
      instanceId: 'i-live',
      startedAt: '2026-12-01T10:00:00Z',
      billableSeconds: 1800,
      estimatedCostUsd: 0.25,
      attempts: [
        {
          instanceId: 'i-old',
          startedAt: '2026-12-01T10:00:00Z',
          endedAt: '2026-12-01T10:30:00Z',
          exitCode: 75,
          usdPerHour: 0.5,
        } as never,
        {
          instanceId: 'i-live',
          startedAt: '2026-12-01T11:00:00Z',
          endedAt: null,
          exitCode: null,
          usdPerHour: 0.5,
        } as never,
      ],
    }),
  ];
  for (const doc of ledgers) {
    await s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: ledgerKey(doc.runId),
        Body: JSON.stringify(doc),
      }),
    );
  }
  await emulator.stackWithOutputs('TrainingStack', { OutputsBucketName: BUCKET });
});

test('sums every run per month, by the month it started, newest month first', async () => {
  const result = await emulator.run(['cost', '--json'], () => NOW);

  const report = JSON.parse(result.stdout);
  expect(result.code).toBe(0);
  expect(report.months).toEqual([
    { month: '2026-12', runs: 1, costUsd: 0.75 },
    { month: '2026-11', runs: 2, costUsd: 1.75 },
    { month: '2026-10', runs: 1, costUsd: 10 },
  ]);
  expect(report.totalUsd).toBe(12.5);
  expect(report.estimate).toBe(true);
});

test("a running run's cost includes its live instance up to now", async () => {
  const result = await emulator.run(['cost', '--json'], () => NOW);

  const live = JSON.parse(result.stdout).runs.find(
    (r: { runId: string }) => r.runId === 'run-dec-live',
  );
  expect(live).toEqual(
    expect.objectContaining({ live: true, billableSeconds: 1800 + 3600, costUsd: 0.75 }),
  );
});

test('--month keeps the runs started that month', async () => {
  const result = await emulator.run(['cost', '--json', '--month', '2026-11'], () => NOW);

  const report = JSON.parse(result.stdout);
  expect(report.runs.map((r: { runId: string }) => r.runId)).toEqual(['run-nov-b', 'run-nov-a']);
  expect(report.totalUsd).toBe(1.75);
});

test('the text output is a table per run and per month', async () => {
  const result = await emulator.run(['cost'], () => NOW);

  expect(result.stdout).toMatch(
    /^run-dec-live +running +2026-12-01 10:00Z +g5\.xlarge spot +1 h 30 min +\$0\.75 so far$/m,
  );
  expect(result.stdout).toMatch(/^2026-11 +2 +\$1\.75$/m);
  expect(result.stdout).toMatch(/^total +4 +\$12\.50$/m);
});

test('a malformed --month is exit 2 naming the format', async () => {
  const result = await emulator.run(['cost', '--month', '2026-13']);

  expect(result.code).toBe(2);
  expect(result.stderr).toContain("--month: '2026-13' is not allowed; use YYYY-MM");
});
