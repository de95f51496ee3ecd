import type { Ledger } from '../lib/contract';
import type { Decision } from '../lambda/safety/decide';
import {
  formatRunMessage,
  ledgerAfterSafetyStop,
  safetyStopMessage,
  type StoppedInstance,
} from '../lambda/safety/report';

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

  test('the body has the contract lines in order, then the next step', () => {
    const body = formatRunMessage({
      runId: 'run-1',
      status: 'stopped-by-safety',
      reason: 'max-cost',
      instance: 'i-1 g5.xlarge',
      durationSeconds: 3725,
      estimatedCostUsd: 1.234,
      modelUri: null,
      logsUri: 's3://b/runs/run-1/logs/',
      nextStep: 'Raise the cap.',
    }).body;
    expect(body.split('\n')).toEqual([
      'Run: run-1',
      'Status: stopped-by-safety',
      'Reason: max-cost',
      'Instance: i-1 g5.xlarge',
      'Duration: 1 h 2 min',
      'Estimated cost: 1.23 USD',
      'Model: none (no final model was published)',
      'Logs: s3://b/runs/run-1/logs/',
      '',
      'Next step: Raise the cap.',
      '',
    ]);
  });

  test('the safety stop message says which limit fired and how to resume', () => {
    const ledger = ledgerAfterSafetyStop(supervisorLedger, stopped, 'run-1', NOW);
    const message = safetyStopMessage(stopped, ledger, 'outputs-bucket', 'TrainingStack');
    expect(message.subject).toBe('tuning-lab run-1: stopped-by-safety');
    expect(message.body).toContain('Reason: max-runtime: ran 12.50 h, limit 12 h');
    expect(message.body).toContain('Instance: i-2 g5.xlarge spot us-east-1b');
    expect(message.body).toContain('Estimated cost: 6.50 USD');
    expect(message.body).toContain(
      'Next step: the run reached the runtime limit (maxRuntimeHours)',
    );
    expect(message.body).toContain('s3://outputs-bucket/runs/run-1/checkpoints/');
  });
});
