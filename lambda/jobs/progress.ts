/**
 * A SageMaker run's progress for `npx tuning-lab status` (contract section 11), as plain data in
 * and out: the trainer's metric lines (CloudWatch embedded-metric-format JSON it prints on
 * stdout, contract section 3), as SageMaker keeps them in the job's log streams, folded into the
 * run's `progress.json` and `metrics.json`. On EC2 the host supervisor does this from the
 * container's output (runtime/tuning_runtime/progress.py, the same rules); a job has no host
 * supervisor, so the controller reads the lines SageMaker stored. The lines come from the
 * container: anything malformed is ignored, never thrown.
 */
import {
  SCHEMA_VERSION,
  type MetricPoint,
  type MetricsDocument,
  type ProgressDocument,
} from '../../lib/contract';

/** A line of a job's log stream. */
export interface LogLine {
  readonly message: string;
  /** Milliseconds since the epoch, as CloudWatch Logs stamps the event. */
  readonly timestamp: number;
}

export interface MetricLine {
  readonly step: number;
  /** The run's total optimizer steps, when the line says (`max_steps`). */
  readonly maxSteps?: number;
  readonly metrics: Partial<Record<MetricName, number>>;
}

type MetricName = 'loss' | 'evalLoss' | 'learningRate' | 'tokensPerSecond';

const MAX_LINE_CHARS = 64 * 1024;
const MAX_STEP = 10 ** 9;
/** metrics.json stays under ~200 KB; older points are thinned beyond this. */
export const MAX_POINTS = 2000;
/** EMF metric names the trainer prints -> names in the published documents. */
const EMF_FIELDS: Readonly<Record<string, MetricName>> = {
  loss: 'loss',
  eval_loss: 'evalLoss',
  learning_rate: 'learningRate',
  tokens_per_second: 'tokensPerSecond',
};

function isStep(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0 && (value as number) <= MAX_STEP;
}

/** (step, metrics) from one of the trainer's EMF lines; undefined for any other line. */
export function parseMetricLine(text: string): MetricLine | undefined {
  const line = text.trim();
  if (!line.startsWith('{') || !line.includes('"_aws"') || line.length > MAX_LINE_CHARS) {
    return undefined;
  }
  let doc: unknown;
  try {
    doc = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return undefined;
  const fields = doc as Record<string, unknown>;
  if (!isStep(fields.step)) return undefined;
  const metrics: Partial<Record<MetricName, number>> = {};
  for (const [emf, name] of Object.entries(EMF_FIELDS)) {
    const value = fields[emf];
    if (typeof value === 'number' && Number.isFinite(value)) metrics[name] = value;
  }
  if (Object.keys(metrics).length === 0) return undefined;
  const maxSteps = isStep(fields.max_steps) && fields.max_steps > 0 ? fields.max_steps : undefined;
  return { step: fields.step, maxSteps, metrics };
}

export interface FoldInput {
  readonly runId: string;
  /** The job whose lines these are (`instanceId` in progress.json). */
  readonly jobName: string;
  readonly progress?: ProgressDocument;
  readonly history: readonly MetricPoint[];
  /** The job's new lines, oldest first. */
  readonly lines: readonly LogLine[];
  readonly now: Date;
}

/**
 * The documents after the new lines; undefined when no line was a metric line (nothing to
 * write). A resumed run's replayed steps (a loss at a step before the newest point) replace the
 * earlier attempt's; a new job measures its ETA from its own first step.
 */
export function foldProgress(
  input: FoldInput,
): { progress: ProgressDocument; metrics: MetricsDocument } | undefined {
  const points = new Map<number, MetricPoint>(input.history.map((p) => [p.step, { ...p }]));
  const sameJob = input.progress?.instanceId === input.jobName;
  let first =
    sameJob && input.progress?.attemptFirstStep != null && input.progress.attemptFirstStepAt
      ? { step: input.progress.attemptFirstStep, at: input.progress.attemptFirstStepAt }
      : undefined;
  let maxSteps = sameJob ? (input.progress?.maxSteps ?? null) : null;
  const latest: Partial<Record<MetricName, number | null>> = sameJob
    ? {
        loss: input.progress?.loss,
        evalLoss: input.progress?.evalLoss,
        learningRate: input.progress?.learningRate,
        tokensPerSecond: input.progress?.tokensPerSecond,
      }
    : {};
  let newest: number | undefined;
  for (const line of input.lines) {
    const parsed = parseMetricLine(line.message);
    if (!parsed) continue;
    const at = new Date(line.timestamp).toISOString();
    const top = points.size > 0 ? Math.max(...points.keys()) : undefined;
    if (parsed.metrics.loss !== undefined && top !== undefined && parsed.step < top) {
      for (const step of [...points.keys()]) if (step > parsed.step) points.delete(step);
    }
    const point: MetricPoint = { ...points.get(parsed.step), ...parsed.metrics, step: parsed.step, at };
    points.set(parsed.step, point);
    Object.assign(latest, parsed.metrics);
    if (parsed.maxSteps !== undefined) maxSteps = parsed.maxSteps;
    if (first === undefined || parsed.step < first.step) first = { step: parsed.step, at };
    newest = parsed.step;
    if (points.size > MAX_POINTS) thin(points);
  }
  if (newest === undefined) return undefined;
  const updatedAt = input.now.toISOString();
  const ordered = [...points.values()].sort((a, b) => a.step - b.step);
  return {
    progress: {
      schemaVersion: SCHEMA_VERSION,
      runId: input.runId,
      instanceId: input.jobName,
      step: Math.max(...ordered.map((p) => p.step)),
      maxSteps,
      loss: latest.loss ?? null,
      evalLoss: latest.evalLoss ?? null,
      learningRate: latest.learningRate ?? null,
      tokensPerSecond: latest.tokensPerSecond ?? null,
      attemptFirstStep: first?.step ?? null,
      attemptFirstStepAt: first?.at ?? null,
      updatedAt,
    },
    metrics: { schemaVersion: SCHEMA_VERSION, runId: input.runId, updatedAt, points: ordered },
  };
}

/** Every other point of the older half goes (eval points stay), so plots keep their shape. */
function thin(points: Map<number, MetricPoint>): void {
  const steps = [...points.keys()].sort((a, b) => a - b);
  steps.slice(0, Math.floor(steps.length / 2)).forEach((step, index) => {
    if (index % 2 === 1 && points.get(step)?.evalLoss === undefined) points.delete(step);
  });
}

/** Where to read a job's stream from: just after the newest point already published. */
export function readFrom(history: readonly MetricPoint[], jobCreatedAt: Date): number {
  return Math.max(newestPointAt(history) + 1, jobCreatedAt.getTime());
}

/** When the newest point was printed (ms since the epoch); 0 without points. */
export function newestPointAt(points: readonly Pick<MetricPoint, 'at'>[]): number {
  return Math.max(0, ...points.map((p) => Date.parse(p.at) || 0));
}
