/**
 * A run's time and cost before it starts: an ESTIMATE, labelled as one wherever it is shown.
 *
 *   hours = steps x tokens per step / assumed tokens per second of the GPU, plus startup
 *   cost  = hours x the on-demand price of the type (lib/pricing.ts; spot is usually lower),
 *           for an `ml.*` type its SageMaker training price (lib/sagemaker-types.ts)
 *
 * Steps come from the run config (`training.max_steps`) or from `tuning-trainer validate`'s
 * plan line; tokens per step are `per_device_train_batch_size x gradient_accumulation_steps x
 * max_seq_length`, the most a step trains (packed rows are full). The throughput is ASSUMED, not
 * measured by this project: a 7B-parameter model with LoRA in bf16 (fp16 on T4) at about 30 % of
 * the GPU's dense tensor-core peak (NVIDIA's datasheets), i.e. 0.3 x peak / (4 x 7e9 FLOPs a
 * token: forward and input gradient of the frozen weights). Larger models are slower in
 * proportion (a 14B model: about half). Replace the figures with measured ones when a GPU has
 * run the benchmarks.
 */
import { onDemandPrice } from '../../lib/pricing';
import { sageMakerTrainingPrice, sageMakerTypeInfo } from '../../lib/sagemaker-types';

/** Assumed tokens per second of a 7B LoRA run, per GPU family (see the module comment). */
export const ASSUMED_TOKENS_PER_SECOND: Readonly<Record<string, number>> = {
  g4dn: 700, // T4, 65 TFLOP/s fp16
  g5: 670, // A10G, 62.5 TFLOP/s bf16
  g6: 1300, // L4, 121 TFLOP/s bf16
  g6e: 3900, // L40S, 362 TFLOP/s bf16
};
/** Boot, image pull and model download before the first step, assumed. */
export const ASSUMED_STARTUP_HOURS = 0.25;

export interface RunShape {
  readonly steps: number;
  readonly tokensPerStep: number;
}

export interface RunEstimate {
  readonly instanceType: string;
  readonly hours: number;
  readonly usd: number;
  readonly usdPerHour: number;
  readonly tokensPerSecond: number;
}

/** Steps (when the config fixes them) and tokens per step of a run config. */
export function runShape(config: Record<string, unknown>, steps?: number): RunShape | undefined {
  const section = (name: string) => (config[name] ?? {}) as Record<string, unknown>;
  const training = section('training');
  const data = section('data');
  const number = (value: unknown, fallback: number) =>
    typeof value === 'number' && Number.isFinite(value) ? value : fallback;
  const maxSteps = number(training.max_steps, -1);
  const found = steps ?? (maxSteps > 0 ? maxSteps : undefined);
  if (found === undefined) return undefined;
  const tokensPerStep =
    number(training.per_device_train_batch_size, 4) *
    number(training.gradient_accumulation_steps, 4) *
    number(data.max_seq_length, 2048);
  return { steps: found, tokensPerStep };
}

/** The estimate for one instance type, or undefined for a type without a throughput figure. */
export function estimateRun(
  shape: RunShape,
  instanceType: string,
  region: string,
): RunEstimate | undefined {
  const sageMaker = sageMakerTypeInfo(instanceType);
  const family = (sageMaker?.ec2Type ?? instanceType).split('.')[0];
  const tokensPerSecond = ASSUMED_TOKENS_PER_SECOND[family];
  const price = sageMaker
    ? sageMakerTrainingPrice(instanceType, region)
    : onDemandPrice(instanceType, region);
  if (tokensPerSecond === undefined || price === undefined) return undefined;
  const hours =
    (shape.steps * shape.tokensPerStep) / tokensPerSecond / 3600 + ASSUMED_STARTUP_HOURS;
  return {
    instanceType,
    hours,
    usd: hours * price.usdPerHour,
    usdPerHour: price.usdPerHour,
    tokensPerSecond,
  };
}

/** The steps `tuning-trainer validate` plans, from its `plan` line; undefined if absent. */
export function stepsFromValidate(output: string): number | undefined {
  const match = output.match(/^plan\s.*?;\s*(\d+) steps \(/m);
  return match ? Number(match[1]) : undefined;
}
