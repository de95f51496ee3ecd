/**
 * The safety Lambda's decisions, as plain data in and out: which of a stack's instances must be
 * stopped now, and why. No AWS imports; the adapter (handler.ts) gathers the inputs and performs
 * the effects.
 *
 * Three rules, in this order for each live instance of the stack:
 * 1. max-runtime: it ran longer than its `tuning-lab:max-runtime-hours` tag allows;
 * 2. max-cost: its run cost more than its `tuning-lab:max-run-cost-usd` tag allows, counted from
 *    EC2's records alone (meter.ts), never from what an instance wrote;
 * 3. extra-instance: a stack bills for at most one instance in its Auto Scaling group and one
 *    outside it (detached for a debug hold); the oldest of each keeps its place, any other is
 *    terminated while the run goes on.
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
  /**
   * Whether the stack's Auto Scaling group counts it (false: detached or launched outside);
   * undefined when that could not be found out (the one-instance rule then waits).
   */
  readonly inGroup?: boolean;
  /** What the instance costs per hour now; undefined when no price is known. */
  readonly usdPerHour?: number;
  /** What the run has cost so far, from the run's meter; undefined when unknown. */
  readonly runCostUsd?: number;
}

export interface Limits {
  /** Only instances tagged with this stack are considered. */
  readonly stackName: string;
  /** Used when an instance's max-runtime tag is missing or unreadable. */
  readonly defaultMaxRuntimeHours: number;
}

export type StopReason = 'max-runtime' | 'max-cost' | 'extra-instance';

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
  /** The run's cost so far (every instance of it); undefined when unknown. */
  readonly runCostUsd?: number;
  /** For an extra instance: the instance that keeps its place. */
  readonly keptInstanceId?: string;
}

const LIVE_STATES = new Set(['pending', 'running']);

/** Whether an instance in this state bills (or is about to). */
export function isLive(state: string): boolean {
  return LIVE_STATES.has(state);
}

/** Decide, for every instance, whether it must be stopped at `now`. */
export function decideTerminations(
  instances: readonly InstanceView[],
  limits: Limits,
  now: Date,
): Decision[] {
  const decisions = instances.map((instance) => decideLimits(instance, limits, now));
  // Of the live instances still kept, the oldest in the group and the oldest outside it stay.
  const places = new Map<boolean, InstanceView>();
  const byAge = instances
    .map((instance, i) => ({ instance, i }))
    .filter(({ instance, i }) => decisions[i].action === 'keep' && instance.inGroup !== undefined)
    .sort((a, b) => a.instance.launchTime.getTime() - b.instance.launchTime.getTime());
  for (const { instance, i } of byAge) {
    const inGroup = instance.inGroup as boolean;
    const holder = places.get(inGroup);
    if (!holder) {
      places.set(inGroup, instance);
      continue;
    }
    const where = instance.inGroup ? 'in its Auto Scaling group' : 'outside its group';
    decisions[i] = {
      ...decisions[i],
      action: 'stop',
      reason: 'extra-instance',
      keptInstanceId: holder.instanceId,
      detail:
        `a second billing instance of stack ${limits.stackName} ${where}; ` +
        `${holder.instanceId} (launched earlier) keeps the run`,
    };
  }
  return decisions;
}

function decideLimits(instance: InstanceView, limits: Limits, now: Date): Decision {
  const runtimeSeconds = Math.max(0, (now.getTime() - instance.launchTime.getTime()) / 1000);
  const runId = instance.tags[TAG_KEYS.runId] || undefined;
  const base = { instanceId: instance.instanceId, runId, runtimeSeconds };

  if (instance.tags[TAG_KEYS.stack] !== limits.stackName) {
    return { ...base, action: 'skip', detail: 'not an instance of this stack' };
  }
  if (!isLive(instance.state)) {
    return { ...base, action: 'skip', detail: `already ${instance.state}` };
  }

  const instanceCostUsd =
    instance.usdPerHour === undefined
      ? undefined
      : round2((runtimeSeconds / 3600) * instance.usdPerHour);
  // Without a run (no run-id tag) the instance is its own run.
  const runCostUsd = runId === undefined ? instanceCostUsd : round2OrUndefined(instance.runCostUsd);
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

/** USD to the cent, as the ledgers and messages show costs. */
export function round2(value: number): number {
  return Math.round(value * 100) / 100;
}

function round2OrUndefined(value: number | undefined): number | undefined {
  return value === undefined ? undefined : round2(value);
}
