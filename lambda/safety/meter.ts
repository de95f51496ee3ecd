/**
 * A run's meter (docs/contracts.md section 8): what the safety Lambda has seen the run's
 * instances cost, from EC2's own records only (launch time, type, market, state, spot price).
 *
 * The cost cap must not depend on anything the instance or the trainer can write: the ledger is
 * the supervisor's report, not evidence. So every pass the Lambda adds to the meter the time each
 * of the run's instances billed since the last pass, at the price it sees now, and keeps the
 * meter under its own prefix of the outputs bucket. EC2 lists a terminated instance for about an
 * hour, so a pass sees every instance of the run at least once while it runs or just after.
 *
 * Pure: plain data in and out, no AWS imports.
 */
import { SCHEMA_VERSION, type Market } from '../../lib/contract';

/** One instance of the run, as far as the meter has counted it. */
export interface MeteredInstance {
  readonly instanceType: string;
  readonly market: Market;
  readonly launchTime: string;
  /** The cost below covers launchTime up to this moment. */
  readonly accountedUntil: string;
  readonly costUsd: number;
  /** The newest hourly price used, for the time after the instance left EC2's listing. */
  readonly usdPerHour?: number;
  /** When it stopped billing (terminated, stopped), once known. */
  readonly endedAt?: string;
}

export interface Meter {
  readonly schemaVersion: number;
  readonly runId: string;
  readonly updatedAt: string;
  readonly instances: Readonly<Record<string, MeteredInstance>>;
}

/** An instance of the run as DescribeInstances shows it on this pass. */
export interface Observation {
  readonly instanceId: string;
  readonly instanceType: string;
  readonly market: Market;
  readonly launchTime: Date;
  /** pending or running: it bills until now. */
  readonly live: boolean;
  /** For an instance that is not live: when EC2 says its state changed, when known. */
  readonly endedAt?: Date;
  /** Its hourly price now (spot price history, else on-demand); undefined when unknown. */
  readonly usdPerHour?: number;
}

/**
 * The meter after this pass. An instance the meter knows that EC2 no longer lists (it ended over
 * about an hour ago and no pass closed it: the Lambda was failing) is counted to now, erring on
 * the early side by at most that outage.
 */
export function updateMeter(
  meter: Meter | undefined,
  runId: string,
  observations: readonly Observation[],
  now: Date,
): Meter {
  const instances: Record<string, MeteredInstance> = { ...(meter?.instances ?? {}) };
  const seen = new Set<string>();
  for (const observed of observations) {
    seen.add(observed.instanceId);
    const known = instances[observed.instanceId] ?? {
      instanceType: observed.instanceType,
      market: observed.market,
      launchTime: observed.launchTime.toISOString(),
      accountedUntil: observed.launchTime.toISOString(),
      costUsd: 0,
    };
    if (known.endedAt) continue;
    // An ended instance without a known end time bills until now: early rather than late.
    const end = observed.live ? now : (observed.endedAt ?? now);
    // A live instance's last interval errs early (the higher of the last and the current
    // price); an ended one has no current price, so the price last seen applies (else the
    // adapter's on-demand bound).
    const price = observed.live
      ? higher(known.usdPerHour, observed.usdPerHour)
      : (known.usdPerHour ?? observed.usdPerHour);
    instances[observed.instanceId] = accrue(
      known,
      end,
      price,
      observed.live ? observed.usdPerHour : price,
      observed.live ? undefined : end,
    );
  }
  for (const [instanceId, known] of Object.entries(instances)) {
    if (seen.has(instanceId) || known.endedAt) continue;
    instances[instanceId] = accrue(known, now, known.usdPerHour, undefined, now);
  }
  return { schemaVersion: SCHEMA_VERSION, runId, updatedAt: now.toISOString(), instances };
}

/**
 * Add the time from `accountedUntil` to `end` at `accruePrice`, then remember `nextPrice` for
 * the time to come. Without any price the time stays uncounted until one is known.
 */
function accrue(
  known: MeteredInstance,
  end: Date,
  accruePrice: number | undefined,
  nextPrice: number | undefined,
  endedAt: Date | undefined,
): MeteredInstance {
  const from = new Date(known.accountedUntil).getTime();
  const seconds = Math.max(0, (end.getTime() - from) / 1000);
  const price = accruePrice ?? nextPrice;
  const counted =
    price === undefined
      ? known
      : {
          ...known,
          costUsd: round4(known.costUsd + (seconds / 3600) * price),
          accountedUntil: new Date(Math.max(from, end.getTime())).toISOString(),
        };
  return {
    ...counted,
    ...((nextPrice ?? price) !== undefined ? { usdPerHour: nextPrice ?? price } : {}),
    ...(endedAt ? { endedAt: endedAt.toISOString() } : {}),
  };
}

/** Whether this pass would change the meter: a live instance, or one it has not closed yet. */
export function needsMetering(meter: Meter | undefined, observations: readonly Observation[]) {
  return observations.some((o) => o.live || !meter?.instances[o.instanceId]?.endedAt);
}

/** What the run has cost, every instance together, as far as counted. */
export function meterCostUsd(meter: Meter): number {
  return round4(Object.values(meter.instances).reduce((sum, i) => sum + i.costUsd, 0));
}

/** Seconds the run's instances billed, as far as counted. */
export function meterBillableSeconds(meter: Meter): number {
  return Math.round(
    Object.values(meter.instances).reduce(
      (sum, i) =>
        sum + (new Date(i.accountedUntil).getTime() - new Date(i.launchTime).getTime()) / 1000,
      0,
    ),
  );
}

/**
 * When EC2 says an instance's state last changed, from DescribeInstances' StateTransitionReason
 * (e.g. `User initiated (2026-03-01 10:00:00 GMT)`); undefined when it says no time.
 */
export function stateTransitionTime(reason: string | undefined): Date | undefined {
  const found = /\((\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) (GMT|UTC)\)/.exec(reason ?? '');
  return found ? new Date(`${found[1]}T${found[2]}Z`) : undefined;
}

/** The higher of the price at the last pass and now: a spot price that moved errs early. */
function higher(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  return b === undefined ? a : Math.max(a, b);
}

function round4(value: number): number {
  return Math.round(value * 10_000) / 10_000;
}
