/**
 * The job controller's pure decisions (lambda/jobs/decide.ts): what a run's jobs, ledger and
 * settings call for, case by case.
 */
import type { Ledger, StopRequest } from '../lib/contract';
import {
  decideRun,
  isTemporaryStartError,
  mayStartDuring,
  runCost,
  START_RETRY_MINUTES,
  startRefused,
  stoppingCondition,
  withInterruptions,
  type JobActivity,
  type JobView,
  type RunLimits,
  type RunView,
} from '../lambda/jobs/decide';

const NOW = new Date('2026-12-01T12:00:00Z');
const HOUR = 3600_000;
const RUN = 'run-3f2a9c1b';
const LIMITS: RunLimits = {
  createJob: true,
  maxRuntimeHours: 4,
  maxRunCostUsd: null,
  maxRetries: 2,
  idleMinutes: 30,
  useSpot: true,
  usdPerHour: 1.5,
  settingsDigest: 'digest-1',
};

function job(attempt: number, status: string, extra: Partial<JobView> = {}): JobView {
  const created = new Date(NOW.getTime() - HOUR);
  return {
    name: `tl-00000000-${RUN}-a${attempt}`,
    attempt,
    status,
    creationTime: created,
    trainingStartTime: created,
    instanceCount: 1,
    ...extra,
  };
}

function ledger(fields: Partial<Ledger> = {}): Ledger {
  return { schemaVersion: 1, runId: RUN, status: 'running', attempts: [], ...fields };
}

function recordedAttempt(j: JobView) {
  return { instanceId: j.name, endedAt: NOW.toISOString() };
}

function view(fields: Partial<RunView> = {}): RunView {
  return { runId: RUN, limits: LIMITS, jobs: [], ...fields };
}

/** The pass after the controller stopped the run's job for `cause`: the job is Stopped. */
function stoppedFor(cause: string, fields: Partial<RunView> = {}) {
  const j = job(1, 'Stopped');
  const stopRequested = { jobName: j.name, cause };
  const recorded = ledger({
    instanceId: j.name,
    attempts: [{ instanceId: j.name }],
    stopRequested,
  });
  return decideRun(view({ ledger: recorded, jobs: [j], ...fields }), NOW);
}

const STOP: StopRequest = {
  schemaVersion: 1,
  runId: RUN,
  requestId: 'req-1',
  requestedAt: NOW.toISOString(),
  requestedBy: 'arn:aws:iam::123456789012:user/me',
};

describe('starting jobs', () => {
  test.each<[string, Partial<RunView>, { attempt: number; resumed: boolean } | undefined]>([
    ['a new run starts attempt 1', {}, { attempt: 1, resumed: false }],
    [
      'an interrupted run (createInstance=false earlier) resumes with the next attempt',
      {
        ledger: ledger({ status: 'interrupted', attempts: [recordedAttempt(job(1, 'Stopped'))] }),
        jobs: [job(1, 'Stopped')],
      },
      { attempt: 2, resumed: true },
    ],
    ['createInstance=false starts nothing', { limits: { ...LIMITS, createJob: false } }, undefined],
    [
      'a completed run is never started again, whatever the deploy',
      {
        ledger: ledger({ status: 'completed', attempts: [recordedAttempt(job(1, 'Completed'))] }),
        jobs: [job(1, 'Completed')],
        limits: { ...LIMITS, settingsDigest: 'digest-2' },
      },
      undefined,
    ],
    [
      'a failed run is never started again',
      {
        ledger: ledger({ status: 'failed', reason: 'bad-input' }),
        jobs: [job(1, 'Failed', { failureReason: 'bad-input: no such file' })],
      },
      undefined,
    ],
    [
      'a run stopped by safety stays stopped while the settings are those it stopped under',
      {
        ledger: ledger({
          status: 'stopped-by-safety',
          reason: 'max-cost',
          jobSettingsDigest: 'digest-1',
        }),
      },
      undefined,
    ],
    [
      'a run stopped by safety resumes after a deploy changed its settings (a raised cap)',
      {
        ledger: ledger({
          status: 'stopped-by-safety',
          reason: 'max-cost',
          jobSettingsDigest: 'digest-0',
        }),
        jobs: [job(1, 'Stopped')],
      },
      { attempt: 2, resumed: true },
    ],
    [
      'a job SageMaker refused to start is tried again after a deploy changed the settings',
      {
        ledger: ledger({
          status: 'failed',
          reason: 'job-start-failed',
          jobSettingsDigest: 'digest-0',
        }),
      },
      { attempt: 1, resumed: true },
    ],
    ['a pending operator stop starts nothing', { pendingStop: STOP }, undefined],
  ])('%s', (_name, fields, expected) => {
    expect(decideRun(view(fields), NOW).start).toEqual(expected);
  });

  test('a running job is never joined by a second one', () => {
    const decision = decideRun(view({ ledger: ledger(), jobs: [job(1, 'InProgress')] }), NOW);
    expect(decision.start).toBeUndefined();
    expect(decision.adopt).toBe(job(1, 'InProgress').name); // the ledger does not know it yet
  });

  test('a stopping job is waited for', () => {
    const stopping = job(1, 'Stopping');
    const decision = decideRun(
      view({ ledger: ledger({ attempts: [{ instanceId: stopping.name }] }), jobs: [stopping] }),
      NOW,
    );
    expect(decision).toMatchObject({ record: [], detail: `${stopping.name} is stopping` });
    expect(decision.start ?? decision.stop).toBeUndefined();
  });
});

describe('recording how a job ended', () => {
  const outcome = (jobs: JobView[], fields: Partial<RunView> = {}) =>
    decideRun(view({ ledger: ledger(), jobs, finalModelPublished: true, ...fields }), NOW);

  test.each<[string, JobView, Partial<RunView>, object]>([
    [
      'completed with its final model',
      job(1, 'Completed'),
      {},
      { status: 'completed', reason: 'completed', exitCode: 0, message: 'completed' },
    ],
    [
      'completed without a final model is a failure',
      job(1, 'Completed'),
      { finalModelPublished: false },
      { status: 'failed', reason: 'final-model-missing', message: 'failed' },
    ],
    [
      "bad input (the trainer's failure file, behind SageMaker's AlgorithmError) is never retried",
      job(1, 'Failed', { failureReason: 'AlgorithmError: bad-input: data.train not found' }),
      {},
      { status: 'failed', reason: 'bad-input', exitCode: 2, message: 'failed' },
    ],
    [
      'a failure with retries left is retried silently',
      job(1, 'Failed', { failureReason: 'AlgorithmError: failed: CUDA error' }),
      {},
      { status: 'running', reason: null, exitCode: 1, message: null },
    ],
    [
      'an interrupted trainer counts as a failure for retries (exit 75)',
      job(1, 'Failed', { failureReason: 'interrupted' }),
      {},
      { status: 'running', exitCode: 75 },
    ],
    [
      'a job SageMaker ended at its runtime limit',
      job(1, 'Stopped', { secondaryStatus: 'MaxRuntimeExceeded' }),
      {},
      { status: 'stopped-by-safety', reason: 'max-runtime', message: 'stopped-by-safety' },
    ],
    [
      'a spot job that waited past MaxWaitTimeInSeconds',
      job(1, 'Stopped', { secondaryStatus: 'MaxWaitTimeExceeded' }),
      {},
      { status: 'stopped-by-safety', reason: 'max-runtime' },
    ],
    [
      'a job the controller stopped at the cost cap',
      job(1, 'Stopped', { secondaryStatus: 'Stopped' }),
      { ledger: ledger({ stopRequested: { jobName: job(1, 'x').name, cause: 'max-cost' } }) },
      { status: 'stopped-by-safety', reason: 'max-cost' },
    ],
    [
      'a job stopped because a deploy said createInstance=false is resumable',
      job(1, 'Stopped'),
      {
        ledger: ledger({
          stopRequested: { jobName: job(1, 'x').name, cause: 'create-instance-false' },
        }),
      },
      { status: 'interrupted', reason: 'create-instance-false', message: 'interrupted' },
    ],
    [
      'a job someone else stopped (console, StopTrainingJob) is an operator stop',
      job(1, 'Stopped', { secondaryStatus: 'Stopped' }),
      {},
      { status: 'stopped', reason: 'operator', message: 'stopped' },
    ],
  ])('%s', (_name, ended, fields, expected) => {
    const decision = outcome([ended], fields);
    expect(decision.record).toHaveLength(1);
    expect(decision.record[0]).toMatchObject({ jobName: ended.name, ...expected });
  });

  test('after maxRetries failures in a row the run fails, and nothing more starts', () => {
    const failed = [1, 2, 3].map((n) => job(n, 'Failed', { failureReason: 'failed: boom' }));
    const known = ledger({ attempts: failed.slice(0, 2).map(recordedAttempt) });
    const decision = decideRun(view({ ledger: known, jobs: failed }), NOW);
    expect(decision.record).toEqual([
      expect.objectContaining({
        jobName: failed[2].name,
        status: 'failed',
        reason: 'trainer-failed',
      }),
    ]);
    expect(decision.start).toBeUndefined();
  });

  test('a retried failure starts the next attempt in the same pass', () => {
    const decision = outcome([job(1, 'Failed', { failureReason: 'failed: boom' })]);
    expect(decision.start).toEqual({ attempt: 2, resumed: true });
  });

  test('an outcome already in the ledger is not recorded twice', () => {
    const done = job(1, 'Completed');
    const decision = outcome([done], {
      ledger: ledger({ status: 'completed', attempts: [recordedAttempt(done)] }),
    });
    expect(decision.record).toEqual([]);
  });
});

describe('stopping a live job', () => {
  const live = (extra: Partial<JobView> = {}) => job(1, 'InProgress', extra);
  const known = (j: JobView) => ledger({ attempts: [{ instanceId: j.name }] });

  test.each<
    [string, Partial<RunLimits>, Partial<JobView>, StopRequest | undefined, string | undefined]
  >([
    ['within its limits it runs on', {}, {}, undefined, undefined],
    ['createInstance=false stops it', { createJob: false }, {}, undefined, 'create-instance-false'],
    ['an operator request stops it', {}, {}, STOP, 'operator'],
    [
      'the run cost reaching maxRunCostUsd stops it (1 h x 1.5 USD x 2 instances = 3 USD)',
      { maxRunCostUsd: 3 },
      { instanceCount: 2 },
      undefined,
      'max-cost',
    ],
    [
      'under the cap it runs on',
      { maxRunCostUsd: 3.5 },
      { instanceCount: 2 },
      undefined,
      undefined,
    ],
    [
      'past its stopping condition plus the grace, the backstop stops it',
      { maxRuntimeHours: 0.25, useSpot: false },
      { creationTime: new Date(NOW.getTime() - 0.5 * HOUR - 1000) },
      undefined,
      'max-runtime',
    ],
    [
      'on demand, the time before training started (provisioning, the image pull) does not count',
      { maxRuntimeHours: 0.25, useSpot: false },
      {
        creationTime: new Date(NOW.getTime() - 2 * HOUR),
        trainingStartTime: new Date(NOW.getTime() - 0.25 * HOUR),
      },
      undefined,
      undefined,
    ],
    [
      'on demand, training past the runtime plus the grace is stopped',
      { maxRuntimeHours: 0.25, useSpot: false },
      {
        creationTime: new Date(NOW.getTime() - 2 * HOUR),
        trainingStartTime: new Date(NOW.getTime() - 0.5 * HOUR - 1000),
      },
      undefined,
      'max-runtime',
    ],
    [
      'with managed spot, waiting for capacity is allowed as long again as the runtime',
      { maxRuntimeHours: 0.25, useSpot: true },
      { creationTime: new Date(NOW.getTime() - 0.5 * HOUR - 1000) },
      undefined,
      undefined,
    ],
  ])('%s', (_name, limits, extra, pendingStop, cause) => {
    const j = live(extra);
    const decision = decideRun(
      view({ limits: { ...LIMITS, ...limits }, ledger: known(j), jobs: [j], pendingStop }),
      NOW,
    );
    expect(decision.stop?.cause).toBe(cause);
    expect(decision.start).toBeUndefined();
  });

  test('without a price the cap cannot fire (synth refuses a cap on an unpriced type)', () => {
    const j = live({ instanceCount: 8 });
    const decision = decideRun(
      view({
        limits: { ...LIMITS, maxRunCostUsd: 0.01, usdPerHour: null },
        ledger: known(j),
        jobs: [j],
      }),
      NOW,
    );
    expect(decision.stop).toBeUndefined();
    expect(decision.costUsd).toBeUndefined();
  });
});

describe('an idle job (idleMinutes 30)', () => {
  const training = (extra: Partial<JobView> = {}) =>
    job(1, 'InProgress', {
      secondaryStatus: 'Training',
      trainingStartTime: new Date(NOW.getTime() - HOUR),
      ...extra,
    });
  const minutesAgo = (m: number) => new Date(NOW.getTime() - m * 60_000);
  const quiet = { lastStepAt: minutesAgo(31), gpuPercent: 0, cpuPercent: 3, samples: 30 };

  test.each<[string, Partial<JobView>, JobActivity | undefined, boolean]>([
    ['no step, GPUs and CPUs quiet for the window: stopped', {}, quiet, true],
    [
      'never a step and quiet: stopped',
      {},
      { gpuPercent: 4.9, cpuPercent: 9.9, samples: 15 },
      true,
    ],
    ['a step inside the window: runs on', {}, { ...quiet, lastStepAt: minutesAgo(29) }, false],
    ['a busy GPU (a long step): runs on', {}, { ...quiet, gpuPercent: 5 }, false],
    ['busy CPUs (tokenizing, uploading): runs on', {}, { ...quiet, cpuPercent: 10 }, false],
    [
      'no GPU data (SageMaker published none yet): runs on',
      {},
      { ...quiet, gpuPercent: undefined },
      false,
    ],
    ['no CPU data: runs on', {}, { ...quiet, cpuPercent: undefined }, false],
    [
      'quiet, but data for less than half the window: runs on',
      {},
      { ...quiet, samples: 14 },
      false,
    ],
    [
      'training for less than the window: runs on',
      { trainingStartTime: minutesAgo(29) },
      quiet,
      false,
    ],
    [
      'a managed spot restart entered Training inside the window: runs on',
      { trainingSince: minutesAgo(10) },
      quiet,
      false,
    ],
    ['downloading, not training: runs on', { secondaryStatus: 'Downloading' }, quiet, false],
    ['not measured: runs on', {}, undefined, false],
  ])('%s', (_name, extra, activity, stopped) => {
    const j = training(extra);
    const decision = decideRun(
      view({ ledger: ledger({ attempts: [{ instanceId: j.name }] }), jobs: [j], activity }),
      NOW,
    );
    expect(decision.stop?.cause).toBe(stopped ? 'idle' : undefined);
  });

  test('idleMinutes null turns the check off', () => {
    const j = training();
    const limits = { ...LIMITS, idleMinutes: null };
    const decision = decideRun(view({ limits, jobs: [j], activity: quiet }), NOW);
    expect(decision.stop).toBeUndefined();
  });

  test('the stopped job is recorded as stopped-by-safety (idle)', () => {
    expect(stoppedFor('idle').record).toMatchObject([
      { status: 'stopped-by-safety', reason: 'idle', message: 'stopped-by-safety' },
    ]);
  });
});

describe('a run the deploy no longer asks for (superseded)', () => {
  const why = 'the deploy configured run-0b1c2d3e instead';

  test('its live job is stopped, and nothing starts even with createJob and no job', () => {
    const j = job(1, 'InProgress');
    const live = decideRun(
      view({ ledger: ledger({ attempts: [{ instanceId: j.name }] }), jobs: [j], superseded: why }),
      NOW,
    );
    expect(live.stop).toEqual({ jobName: j.name, cause: 'superseded', detail: why });

    const idle = decideRun(view({ ledger: ledger(), superseded: why }), NOW);
    expect(idle.start).toBeUndefined();
    expect(idle.stop).toBeUndefined();
  });

  test('the job it stopped is recorded as stopped (superseded), resumable by a deploy of the run', () => {
    const decision = stoppedFor('superseded', { superseded: why });
    expect(decision.record).toMatchObject([
      {
        jobName: job(1, 'Stopped').name,
        status: 'stopped',
        reason: 'superseded',
        message: 'stopped',
      },
    ]);
    expect(decision.record[0].detail).toContain(why);
    expect(decision.start).toBeUndefined();
  });

  test('configured again, it resumes even under the very settings it was stopped with (a rolled-back deploy)', () => {
    const j = job(1, 'Stopped');
    const stopped = ledger({
      status: 'stopped',
      reason: 'superseded',
      attempts: [recordedAttempt(j)],
      jobSettingsDigest: LIMITS.settingsDigest,
    });
    expect(decideRun(view({ ledger: stopped, jobs: [j] }), NOW).start).toEqual({
      attempt: 2,
      resumed: true,
    });
  });

  test('a job that completed before it was superseded is still recorded as completed', () => {
    const j = job(1, 'Completed');
    const decision = decideRun(
      view({
        ledger: ledger({ instanceId: j.name, attempts: [{ instanceId: j.name }] }),
        jobs: [j],
        finalModelPublished: true,
        superseded: why,
      }),
      NOW,
    );
    expect(decision.record).toMatchObject([{ status: 'completed' }]);
  });
});

describe("SageMaker's ClientError (the job's set-up at fault)", () => {
  const failed = job(1, 'Failed', { failureReason: 'ClientError: Failed to download data.' });

  test('fails the run without a retry, though retries are left', () => {
    // Every pass notes the settings it saw in the ledger.
    const seen = ledger({ attempts: [{ instanceId: failed.name }], jobSettingsDigest: 'digest-1' });
    const decision = decideRun(view({ ledger: seen, jobs: [failed] }), NOW);
    expect(decision.record).toMatchObject([
      { status: 'failed', reason: 'job-client-error', message: 'failed' },
    ]);
    expect(decision.start).toBeUndefined();
  });

  test('a deploy that changed the settings starts the next attempt; the same settings do not', () => {
    const recorded = ledger({
      status: 'failed',
      reason: 'job-client-error',
      attempts: [recordedAttempt(failed)],
      jobSettingsDigest: 'digest-1',
    });
    expect(decideRun(view({ ledger: recorded, jobs: [failed] }), NOW).start).toBeUndefined();
    const changed = { ...LIMITS, settingsDigest: 'digest-2' };
    expect(
      decideRun(view({ limits: changed, ledger: recorded, jobs: [failed] }), NOW).start,
    ).toEqual({ attempt: 2, resumed: true });
  });

  test('bad input is still bad input behind a ClientError prefix', () => {
    const bad = job(1, 'Failed', { failureReason: 'ClientError: bad-input: data.train not found' });
    const decision = decideRun(view({ ledger: ledger(), jobs: [bad] }), NOW);
    expect(decision.record).toMatchObject([{ reason: 'bad-input', exitCode: 2 }]);
  });
});

describe('cost and stopping condition', () => {
  test("ended jobs count SageMaker's billable seconds (spot savings included) x instances", () => {
    const ended = job(1, 'Completed', { billableSeconds: 1800, instanceCount: 2 });
    expect(runCost([ended], { usdPerHour: 2 }, NOW)).toEqual({ billableSeconds: 3600, costUsd: 2 });
  });

  test('a live job counts its whole time since training started (an upper bound)', () => {
    const live = job(2, 'InProgress', { trainingStartTime: new Date(NOW.getTime() - HOUR / 2) });
    const ended = job(1, 'Failed', { billableSeconds: 600 });
    expect(runCost([ended, live], { usdPerHour: 6 }, NOW)).toEqual({
      billableSeconds: 2400,
      costUsd: 4,
    });
  });

  test('a job that never started training costs nothing', () => {
    const failed = job(1, 'Failed', { trainingStartTime: undefined });
    expect(runCost([failed], { usdPerHour: 6 }, NOW).costUsd).toBe(0);
  });

  test('MaxWaitTimeInSeconds is set only with managed spot, twice the runtime', () => {
    expect(stoppingCondition({ maxRuntimeHours: 12, useSpot: true })).toEqual({
      maxRuntimeSeconds: 43200,
      maxWaitSeconds: 86400,
    });
    expect(stoppingCondition({ maxRuntimeHours: 12, useSpot: false })).toEqual({
      maxRuntimeSeconds: 43200,
    });
  });
});

describe('operator stop with no live job', () => {
  test('a running run with no job ends as stopped', () => {
    const decision = decideRun(view({ ledger: ledger(), pendingStop: STOP }), NOW);
    expect(decision.stopWithoutJob).toBe(true);
  });

  test('a run that already ended is left alone', () => {
    const decision = decideRun(
      view({ ledger: ledger({ status: 'completed' }), pendingStop: STOP }),
      NOW,
    );
    expect(decision.stopWithoutJob).toBe(false);
  });
});

describe('managed spot interruptions', () => {
  const at = new Date('2026-12-01T11:30:00Z');
  const interrupted = job(1, 'InProgress', { interruptedAt: [at] });

  test('a new one is added to the ledger', () => {
    expect(withInterruptions([], [interrupted])).toEqual([
      { instanceId: interrupted.name, at: at.toISOString(), action: 'spot-interruption' },
    ]);
  });

  test('one the ledger has is not added again', () => {
    const recorded = withInterruptions([], [interrupted]) ?? [];
    expect(withInterruptions(recorded, [interrupted])).toBeUndefined();
  });
});

describe("SageMaker's own failures", () => {
  test.each([
    ['CapacityError: Unable to provision requested ML compute capacity.', 'capacity'],
    ['InternalServerError: We encountered an internal error. Please try again.', 'service-error'],
  ])('%s ends the job as interrupted (%s), not failed', (failureReason, reason) => {
    const failed = job(1, 'Failed', { failureReason });

    const decision = decideRun(view({ ledger: ledger(), jobs: [failed] }), NOW);

    expect(decision.record).toEqual([
      expect.objectContaining({
        status: 'interrupted',
        reason,
        exitCode: null,
        message: 'interrupted',
      }),
    ]);
  });

  test('the pass that records it starts nothing; the next pass resumes the run', () => {
    const failed = job(1, 'Failed', { failureReason: 'CapacityError: Unable to provision' });
    expect(decideRun(view({ ledger: ledger(), jobs: [failed] }), NOW).start).toBeUndefined();

    const recorded = ledger({
      status: 'interrupted',
      reason: 'capacity',
      attempts: [recordedAttempt(failed)],
    });
    const next = decideRun(view({ ledger: recorded, jobs: [failed] }), NOW);

    expect(next.start).toEqual({ attempt: 2, resumed: true });
  });

  test('they do not count towards maxRetries', () => {
    const jobs = [
      job(1, 'Failed', { failureReason: 'AlgorithmError: failed: CUDA error' }),
      job(2, 'Failed', { failureReason: 'CapacityError: Unable to provision' }),
      job(3, 'Failed', { failureReason: 'InternalServerError' }),
      job(4, 'Failed', { failureReason: 'AlgorithmError: failed: CUDA error' }),
    ];
    const known = ledger({ attempts: jobs.slice(0, 3).map(recordedAttempt) });

    const decision = decideRun(view({ ledger: known, jobs }), NOW); // maxRetries 2

    expect(decision.record).toEqual([
      expect.objectContaining({ jobName: jobs[3].name, status: 'running', reason: null }),
    ]);
    expect(decision.start).toEqual({ attempt: 5, resumed: true });
  });
});

describe('starting only when nothing stands in the way', () => {
  test("another live job of the stack (the previous run's, stopping) is waited for", () => {
    const decision = decideRun(view({ otherLiveJobs: ['tl-00000000-run-old-a1'] }), NOW);

    expect(decision.start).toBeUndefined();
    expect(decision.detail).toContain('waiting for tl-00000000-run-old-a1');
  });

  test("another trainer holding the run's lease (an EC2 instance of the same run) is waited for", () => {
    const leaseHeldBy = { holder: 'i-0abc1234', until: '2026-12-01T12:05:00.000Z' };
    const decision = decideRun(view({ leaseHeldBy }), NOW);

    expect(decision.start).toBeUndefined();
    expect(decision.detail).toContain('waiting for i-0abc1234, which holds the run');
  });

  test('a run whose recorded cost reached maxRunCostUsd starts no job and ends at the cap', () => {
    const failed = job(1, 'Failed', {
      failureReason: 'AlgorithmError: failed: CUDA error',
      billableSeconds: 2 * 3600, // 2 h x 1.5 USD = 3 USD
    });
    const limits = { ...LIMITS, maxRunCostUsd: 3 };

    const decision = decideRun(view({ ledger: ledger(), jobs: [failed], limits }), NOW);

    expect(decision.start).toBeUndefined();
    expect(decision.endAtCostCap?.detail).toContain('already reached the cap, 3 USD');
  });

  test('a run under its cap starts', () => {
    const limits = { ...LIMITS, maxRunCostUsd: 3 };
    expect(decideRun(view({ limits }), NOW).start).toEqual({ attempt: 1, resumed: false });
  });
});

test.each<[string | undefined, boolean]>([
  ['CREATE_COMPLETE', true],
  ['UPDATE_COMPLETE', true],
  ['UPDATE_IN_PROGRESS', true],
  [undefined, true],
  ['UPDATE_COMPLETE_CLEANUP_IN_PROGRESS', false],
  ['UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS', false],
  ['UPDATE_ROLLBACK_IN_PROGRESS', false],
  ['DELETE_IN_PROGRESS', false],
  ['DELETE_COMPLETE', false],
])('a job may start while the stack is %s: %s', (status, may) => {
  expect(mayStartDuring(status)).toBe(may);
});

describe('a refused start', () => {
  test.each<[string, string, boolean]>([
    ['ThrottlingException', 'Rate exceeded', true],
    ['ResourceLimitExceeded', 'The account-level service limit is 1 Instances', true],
    ['AccessDeniedException', 'not authorized to perform sagemaker:CreateTrainingJob', true],
    ['ValidationException', 'Could not assume role arn:aws:iam::123456789012:role/x', true],
    ['ValidationException', '1 validation error detected: Value at instanceCount', false],
  ])('%s (%s) is temporary: %s', (name, message, temporary) => {
    expect(isTemporaryStartError(name, message)).toBe(temporary);
  });

  test('a temporary one is tried again next pass, counting the passes', () => {
    const first = startRefused(undefined, 'ThrottlingException: Rate exceeded', true, NOW);
    const later = new Date(NOW.getTime() + 5 * 60_000);

    const second = startRefused(first.error, 'ThrottlingException: Rate exceeded', true, later);

    expect(second).toMatchObject({
      giveUp: false,
      error: { firstAt: NOW.toISOString(), at: later.toISOString(), passes: 2 },
    });
  });

  test(`the run gives up after ${START_RETRY_MINUTES} minutes of refusals, and says so`, () => {
    const first = startRefused(undefined, 'ResourceLimitExceeded: quota', true, NOW);
    const late = new Date(NOW.getTime() + START_RETRY_MINUTES * 60_000);

    const last = startRefused(first.error, 'ResourceLimitExceeded: quota', true, late);

    expect(last.giveUp).toBe(true);
    expect(last.detail).toBe(
      `refused on 2 passes over ${START_RETRY_MINUTES} minutes (limit ${START_RETRY_MINUTES}): ` +
        'ResourceLimitExceeded: quota',
    );
  });

  test('a malformed request fails the run at once', () => {
    const refused = startRefused(undefined, 'ValidationException: bad', false, NOW);
    expect(refused).toMatchObject({ giveUp: true, error: { passes: 1 } });
  });
});
