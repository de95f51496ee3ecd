/**
 * A SageMaker run's progress from its log lines (lambda/jobs/progress.ts): the trainer's metric
 * lines read as untrusted input, folded into progress.json and metrics.json by the rules of
 * contract section 11 (those the EC2 supervisor follows in runtime/tuning_runtime/progress.py).
 */
import type { MetricPoint, ProgressDocument } from '../lib/contract';
import { foldProgress, MAX_POINTS, parseMetricLine, readFrom } from '../lambda/jobs/progress';

const RUN = 'run-3f2a9c1b';
const JOB = 'tl-00000000-11111111-run-3f2a9c1b-a1';
const NOW = new Date('2026-12-01T12:00:00Z');
const T0 = Date.parse('2026-12-01T11:00:00Z');

/** A metric line as the trainer prints it (trainer-image callbacks.py `_emit_metrics`). */
function emf(step: number, metrics: Record<string, number>, maxSteps = 60): string {
  return JSON.stringify({
    _aws: {
      Timestamp: T0,
      CloudWatchMetrics: [{ Namespace: 'TuningLab', Dimensions: [['RunId']], Metrics: [] }],
    },
    RunId: RUN,
    step,
    max_steps: maxSteps,
    ...metrics,
  });
}

const line = (message: string, seconds: number) => ({ message, timestamp: T0 + seconds * 1000 });

describe('parseMetricLine', () => {
  test.each<[string, string, ReturnType<typeof parseMetricLine>]>([
    [
      'a training line',
      emf(10, { loss: 1.5, learning_rate: 1e-4, tokens_per_second: 900 }),
      {
        step: 10,
        maxSteps: 60,
        metrics: { loss: 1.5, learningRate: 1e-4, tokensPerSecond: 900 },
      },
    ],
    [
      'an eval line',
      emf(20, { eval_loss: 1.2 }),
      { step: 20, maxSteps: 60, metrics: { evalLoss: 1.2 } },
    ],
    ['a readable line', 'step 10/60 loss 1.5000 lr 1.00e-04', undefined],
    ['JSON without _aws', JSON.stringify({ step: 1, loss: 1 }), undefined],
    ['broken JSON', '{"_aws": ', undefined],
    ['a negative step', emf(-1, { loss: 1 }), undefined],
    ['a fractional step', emf(1.5, { loss: 1 }), undefined],
    ['no finite metric', emf(3, { loss: Number.NaN }) /* JSON writes NaN as null */, undefined],
    [
      'a line too long',
      emf(3, { loss: 1 }).replace('"RunId"', `"x":"${'a'.repeat(70_000)}","RunId"`),
      undefined,
    ],
  ])('%s', (_name, text, expected) => {
    expect(parseMetricLine(text)).toEqual(expected);
  });
});

describe('foldProgress', () => {
  const lines = [
    line('loading builtin:tiny-llama', 0),
    line(emf(10, { loss: 2.0, learning_rate: 1e-4, tokens_per_second: 800 }), 60),
    line('step 10/60 loss 2.0000', 60),
    line(emf(20, { loss: 1.5, learning_rate: 9e-5, tokens_per_second: 820 }), 120),
    line(emf(20, { eval_loss: 1.6 }), 125),
  ];

  test('the first lines of a job: progress with its ETA start, and one point per step', () => {
    const folded = foldProgress({ runId: RUN, jobName: JOB, history: [], lines, now: NOW });
    expect(folded?.progress).toEqual({
      schemaVersion: 1,
      runId: RUN,
      instanceId: JOB,
      step: 20,
      maxSteps: 60,
      loss: 1.5,
      evalLoss: 1.6,
      learningRate: 9e-5,
      tokensPerSecond: 820,
      attemptFirstStep: 10,
      attemptFirstStepAt: new Date(T0 + 60_000).toISOString(),
      updatedAt: NOW.toISOString(),
    });
    expect(folded?.metrics.points).toEqual([
      {
        step: 10,
        at: new Date(T0 + 60_000).toISOString(),
        loss: 2.0,
        learningRate: 1e-4,
        tokensPerSecond: 800,
      },
      {
        step: 20,
        at: new Date(T0 + 125_000).toISOString(),
        loss: 1.5,
        learningRate: 9e-5,
        tokensPerSecond: 820,
        evalLoss: 1.6,
      },
    ]);
  });

  test('no metric line: nothing to write', () => {
    expect(
      foldProgress({ runId: RUN, jobName: JOB, history: [], lines: [line('hello', 1)], now: NOW }),
    ).toBeUndefined();
  });

  test("a resumed job's replayed steps replace the earlier attempt's; its ETA starts at its own first step", () => {
    const first = foldProgress({ runId: RUN, jobName: JOB, history: [], lines, now: NOW })!;
    const next = `${JOB.slice(0, -1)}2`;
    const resumed = foldProgress({
      runId: RUN,
      jobName: next,
      progress: first.progress,
      history: first.metrics.points,
      lines: [line(emf(15, { loss: 1.7 }), 600)],
      now: NOW,
    })!;
    expect(resumed.metrics.points.map((p) => p.step)).toEqual([10, 15]);
    expect(resumed.progress).toMatchObject({
      instanceId: next,
      step: 15,
      loss: 1.7,
      evalLoss: null, // this job's own, not the earlier one's
      attemptFirstStep: 15,
      attemptFirstStepAt: new Date(T0 + 600_000).toISOString(),
    });
  });

  test('the same job keeps its ETA start and latest values across passes', () => {
    const first = foldProgress({ runId: RUN, jobName: JOB, history: [], lines, now: NOW })!;
    const later = foldProgress({
      runId: RUN,
      jobName: JOB,
      progress: first.progress as ProgressDocument,
      history: first.metrics.points,
      lines: [line(emf(30, { loss: 1.2 }), 180)],
      now: NOW,
    })!;
    expect(later.progress).toMatchObject({
      step: 30,
      loss: 1.2,
      evalLoss: 1.6,
      attemptFirstStep: 10,
    });
  });

  test('past MAX_POINTS the older half is thinned, eval points kept', () => {
    const many = Array.from({ length: MAX_POINTS + 1 }, (_, i) =>
      line(emf(i + 1, i === 1 ? { loss: 1, eval_loss: 1 } : { loss: 1 }), i),
    );
    const folded = foldProgress({ runId: RUN, jobName: JOB, history: [], lines: many, now: NOW })!;
    const steps = folded.metrics.points.map((p) => p.step);
    expect(steps.length).toBeLessThanOrEqual(MAX_POINTS);
    expect(steps).toContain(2); // the eval point
    expect(steps[steps.length - 1]).toBe(MAX_POINTS + 1);
  });
});

test('readFrom: just after the newest published point, never before the job', () => {
  const history: MetricPoint[] = [
    { step: 10, at: new Date(T0 + 60_000).toISOString() },
    { step: 20, at: new Date(T0 + 120_000).toISOString() },
  ];
  expect(readFrom(history, new Date(T0))).toBe(T0 + 120_001);
  expect(readFrom(history, new Date(T0 + 3600_000))).toBe(T0 + 3600_000);
  expect(readFrom([], new Date(T0))).toBe(T0);
});
