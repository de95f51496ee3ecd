/**
 * The safety Lambda's decisions, as plain data in and out: which of a stack's instances must be
 * stopped now, and why. No AWS imports; the adapter (handler.ts) gathers the inputs and performs
 * the effects.
 */
import { TAG_KEYS, type Market } from '../../lib/contract';

export interface InstanceView {
  readonly instanceId: string;
  /** EC2 state name: pending, running, shutting-down, terminated, stopping, stopped. */
  readonly state: string;
  readonly instanceType: string;
  readonly availabilityZone?: string;
  readonly launchTime: Date;
  readonly market: Market;
  readonly tags: Readonly<Record<string, string>>;
  /** What the instance costs per hour now; undefined when no price is known. */
  readonly usdPerHour?: number;
  /** Estimated cost of the run's earlier instances (from its ledger). */
  readonly priorRunCostUsd?: number;
}

export interface Limits {
  /** Only instances tagged with this stack are considered. */
  readonly stackName: string;
  /** Used when an instance's max-runtime tag is missing or unreadable. */
  readonly defaultMaxRuntimeHours: number;
}

export type StopReason = 'max-runtime' | 'max-cost';

export interface Decision {
  readonly instanceId: string;
  readonly action: 'stop' | 'keep' | 'skip';
  /** Set when action is 'stop'. */
  readonly reason?: StopReason;
  /** One human-readable sentence. */
  readonly detail: string;
  readonly runId?: string;
  readonly runtimeSeconds: number;
  /** This instance's cost so far; undefined when its price is unknown. */
  readonly instanceCostUsd?: number;
  /** The run's cost so far (earlier instances + this one); undefined when unknown. */
  readonly runCostUsd?: number;
}

const ENDING_STATES = new Set(['shutting-down', 'terminated', 'stopping', 'stopped']);

/** Decide, for every instance, whether it must be stopped at `now`. */
export function decideTerminations(
  instances: readonly InstanceView[],
  limits: Limits,
  now: Date,
): Decision[] {
  return instances.map((instance) => decideOne(instance, limits, now));
}

function decideOne(instance: InstanceView, limits: Limits, now: Date): Decision {
  const runtimeSeconds = Math.max(0, (now.getTime() - instance.launchTime.getTime()) / 1000);
  const runId = instance.tags[TAG_KEYS.runId];
  const base = { instanceId: instance.instanceId, runId, runtimeSeconds };

  if (instance.tags[TAG_KEYS.stack] !== limits.stackName) {
    return { ...base, action: 'skip', detail: 'not an instance of this stack' };
  }
  if (ENDING_STATES.has(instance.state)) {
    return { ...base, action: 'skip', detail: `already ${instance.state}` };
  }

  const instanceCostUsd =
    instance.usdPerHour === undefined
      ? undefined
      : round2((runtimeSeconds / 3600) * instance.usdPerHour);
  const runCostUsd =
    instanceCostUsd === undefined
      ? undefined
      : round2((instance.priorRunCostUsd ?? 0) + instanceCostUsd);
  const costs = { instanceCostUsd, runCostUsd };

  const taggedHours = positiveNumber(instance.tags[TAG_KEYS.maxRuntimeHours]);
  const maxRuntimeHours = taggedHours ?? limits.defaultMaxRuntimeHours;
  const runtimeHours = runtimeSeconds / 3600;
  if (runtimeHours >= maxRuntimeHours) {
    const source = taggedHours === undefined ? ' (stack default: limit tag missing)' : '';
    return {
      ...base,
      ...costs,
      action: 'stop',
      reason: 'max-runtime',
      detail: `ran ${runtimeHours.toFixed(2)} h, limit ${maxRuntimeHours} h${source}`,
    };
  }

  const maxRunCostUsd = positiveNumber(instance.tags[TAG_KEYS.maxRunCostUsd]);
  if (maxRunCostUsd !== undefined && runCostUsd !== undefined && runCostUsd >= maxRunCostUsd) {
    return {
      ...base,
      ...costs,
      action: 'stop',
      reason: 'max-cost',
      detail: `run cost ~${runCostUsd.toFixed(2)} USD, cap ${maxRunCostUsd} USD`,
    };
  }

  const unpriced =
    maxRunCostUsd !== undefined && runCostUsd === undefined
      ? `; cost cap not checked: no price for ${instance.instanceType}`
      : '';
  return {
    ...base,
    ...costs,
    action: 'keep',
    detail: `within limits (${runtimeHours.toFixed(2)} of ${maxRuntimeHours} h)${unpriced}`,
  };
}

function positiveNumber(value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

function round2(value: number): number {
  return Math.round(value * 100) / 100;
}
