import type { Ledger } from '../lib/contract';
import type { Decision } from '../lambda/safety/decide';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  extraInstanceMessage,
  formatRunMessage,
  ledgerAfterSafetyStop,
  safetyStopMessage,
  type RunMessageFields,
  type StoppedInstance,
} from '../lambda/safety/report';

/** The message cases the supervisor (Python) and this Lambda must render identically. */
const golden: { cases: { name: string; facts: unknown; subject: string; body: string }[] } =
  JSON.parse(readFileSync(join(__dirname, '..', 'testing', 'run-messages.golden.json'), 'utf8'));

const NOW = new Date('2026-01-10T12:00:00Z');
const decision: Decision = {
  instanceId: 'i-2',
  action: 'stop',
  reason: 'max-runtime',
  detail: 'ran 12.50 h, limit 12 h',
  runId: 'run-1',
  runtimeSeconds: 45_000,
  instanceCostUsd: 4.5,
  runCostUsd: 6.5,
};
const stopped: StoppedInstance = {
  decision,
  instanceType: 'g5.xlarge',
  availabilityZone: 'us-east-1b',
  market: 'spot',
  launchTime: new Date(NOW.getTime() - 45_000_000),
};
const supervisorLedger: Ledger = {
  schemaVersion: 1,
  runId: 'run-1',
  status: 'running',
  instanceId: 'i-2',
  startedAt: '2026-01-09T20:00:00Z',
  billableSeconds: 7200,
  estimatedCostUsd: 2,
  attempts: [
    {
      instanceId: 'i-1',
      instanceType: 'g5.xlarge',
      market: 'spot',
      startedAt: '2026-01-09T20:00:00Z',
      endedAt: '2026-01-09T22:00:00Z',
      exitCode: 75,
    },
    {
      instanceId: 'i-2',
      instanceType: 'g5.xlarge',
      market: 'spot',
      startedAt: '2026-01-09T23:30:00Z',
      endedAt: null,
      exitCode: null,
    },
  ],
  interruptions: [{ instanceId: 'i-1', at: '2026-01-09T21:58:00Z', action: 'terminate' }],
  lastStep: 420,
  customField: 'kept',
};

describe('ledger after a safety stop', () => {
  test('status, reason and end time are set', () => {
    const ledger = ledgerAfterSafetyStop(supervisorLedger, stopped, 'run-1', NOW);
    expect(ledger).toMatchObject({
      status: 'stopped-by-safety',
      reason: 'max-runtime',
      endedAt: NOW.toISOString(),
    });
  });

  test("billable seconds add this instance's runtime to the earlier ones", () => {
    expect(ledgerAfterSafetyStop(supervisorLedger, stopped, 'run-1', NOW).billableSeconds).toBe(
      7200 + 45_000,
    );
  });

  test('the estimated cost is the run cost the decision computed', () => {
    expect(ledgerAfterSafetyStop(supervisorLedger, stopped, 'run-1', NOW).estimatedCostUsd).toBe(
      6.5,
    );
  });

  test("the meter's totals replace what the ledger claims", () => {
    const metered = { ...stopped, runTotals: { billableSeconds: 50_000, costUsd: 9.876 } };
    const claimsNothing: Ledger = { ...supervisorLedger, billableSeconds: 0, estimatedCostUsd: 0 };
    expect(ledgerAfterSafetyStop(claimsNothing, metered, 'run-1', NOW)).toMatchObject({
      billableSeconds: 50_000,
      estimatedCostUsd: 9.88,
    });
  });

  test("the supervisor's fields and attempts are kept; this attempt gets its end time", () => {
    const ledger = ledgerAfterSafetyStop(supervisorLedger, stopped, 'run-1', NOW);
    expect(ledger).toMatchObject({
      lastStep: 420,
      customField: 'kept',
      startedAt: '2026-01-09T20:00:00Z',
    });
    expect(ledger.interruptions).toEqual(supervisorLedger.interruptions);
    expect(ledger.attempts).toEqual([
      supervisorLedger.attempts?.[0],
      { ...supervisorLedger.attempts?.[1], endedAt: NOW.toISOString() },
    ]);
  });

  test('of several attempts on the instance, only the open one is closed', () => {
    const retried: Ledger = {
      ...supervisorLedger,
      attempts: [
        {
          instanceId: 'i-2',
          startedAt: '2026-01-09T23:30:00Z',
          endedAt: '2026-01-10T01:00:00Z',
          exitCode: 1,
        },
        { instanceId: 'i-2', startedAt: '2026-01-10T01:01:00Z', endedAt: null, exitCode: null },
      ],
    };
    const ledger = ledgerAfterSafetyStop(retried, stopped, 'run-1', NOW);
    expect(ledger.attempts).toEqual([
      retried.attempts?.[0],
      { ...retried.attempts?.[1], endedAt: NOW.toISOString() },
    ]);
  });

  test('attempts the supervisor already closed are left as they are', () => {
    const closed: Ledger = {
      ...supervisorLedger,
      attempts: [
        {
          instanceId: 'i-2',
          startedAt: '2026-01-09T23:30:00Z',
          endedAt: '2026-01-10T01:00:00Z',
          exitCode: 1,
        },
      ],
    };
    expect(ledgerAfterSafetyStop(closed, stopped, 'run-1', NOW).attempts).toEqual(closed.attempts);
  });

  test('without a ledger one is created from the instance', () => {
    const ledger = ledgerAfterSafetyStop(undefined, stopped, 'run-1', NOW);
    expect(ledger).toMatchObject({
      schemaVersion: 1,
      runId: 'run-1',
      status: 'stopped-by-safety',
      instanceId: 'i-2',
      instanceType: 'g5.xlarge',
      availabilityZone: 'us-east-1b',
      market: 'spot',
      startedAt: stopped.launchTime.toISOString(),
      billableSeconds: 45_000,
      attempts: [{ instanceId: 'i-2', endedAt: NOW.toISOString(), exitCode: null }],
    });
  });
});

describe('SNS message format', () => {
  test('subject names the run and the status', () => {
    const message = formatRunMessage({
      runId: 'run-1',
      status: 'completed',
      reason: 'completed',
      instance: 'i-1',
      durationSeconds: 61,
      nextStep: 'x',
    });
    expect(message.subject).toBe('tuning-lab run-1: completed');
    expect(message.attributes).toEqual({ runId: 'run-1', status: 'completed' });
  });

  test('the subject is at most 100 characters', () => {
    const message = formatRunMessage({
      runId: 'r'.repeat(120),
      status: 'failed',
      reason: 'x',
      instance: 'i',
      durationSeconds: 1,
      nextStep: 'x',
    });
    expect(message.subject.length).toBe(100);
  });

  test.each(golden.cases)('renders the shared golden case: $name', (goldenCase) => {
    const message = formatRunMessage(goldenCase.facts as RunMessageFields);
    expect(message.subject).toBe(goldenCase.subject);
    expect(message.body).toBe(goldenCase.body);
  });

  test('a failure carries at most the last 20 log lines', () => {
    const lines = Array.from({ length: 30 }, (_, i) => `line ${i}`);
    const body = formatRunMessage({
      runId: 'run-1',
      status: 'failed',
      instance: 'i-1',
      nextStep: 'x',
      lastLogLines: lines,
    }).body;
    expect(body).toContain('Last 20 log lines:\n  line 10\n');
    expect(body).not.toContain('line 9\n');
  });

  test('the safety stop message says which limit fired and how to resume', () => {
    const ledger = ledgerAfterSafetyStop(supervisorLedger, stopped, 'run-1', NOW);
    const message = safetyStopMessage(stopped, ledger, 'outputs-bucket', 'TrainingStack');
    expect(message.subject).toBe('tuning-lab run-1: stopped-by-safety');
    expect(message.body).toContain('Reason: max-runtime: ran 12.50 h, limit 12 h');
    expect(message.body).toContain('Instance: i-2 g5.xlarge spot us-east-1b');
    expect(message.body).toContain('Estimated cost: $6.50 (estimate)');
    expect(message.body).toContain(
      'Next step:\nThe run reached the runtime limit (maxRuntimeHours)',
    );
    expect(message.body).toContain('s3://outputs-bucket/runs/run-1/checkpoints/');
  });
});

describe('the extra-instance message', () => {
  const extra: StoppedInstance = {
    ...stopped,
    decision: {
      instanceId: 'i-3',
      action: 'stop',
      reason: 'extra-instance',
      detail:
        'a second billing instance of stack TrainingStack in its Auto Scaling group; i-2 ' +
        '(launched earlier) keeps the run',
      runId: 'run-1',
      runtimeSeconds: 600,
      instanceCostUsd: 0.17,
      keptInstanceId: 'i-2',
    },
  };
  const message = extraInstanceMessage(extra, 'TrainingStack');

  test('has its own status in the subject and the attributes', () => {
    expect(message.subject).toBe('tuning-lab run-1: extra-instance-stopped');
    expect(message.attributes).toEqual({ runId: 'run-1', status: 'extra-instance-stopped' });
  });

  test("names the reason, this instance's cost and the instance that goes on", () => {
    expect(message.body).toContain(
      'Reason: extra-instance: a second billing instance of stack TrainingStack',
    );
    expect(message.body).toContain('Instance: i-3 g5.xlarge spot us-east-1b');
    expect(message.body).toContain('Duration: 10 min 00 s');
    expect(message.body).toContain('Estimated cost: $0.17 (estimate)');
    expect(message.body).toContain('this one was terminated and i-2 goes on');
  });
});
