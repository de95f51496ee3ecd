/**
 * What runs cost, from their ledgers (docs/contracts.md section 4): per run, and per month by
 * the month each run started. Every figure is the ledger's estimate (the instance's spot or
 * on-demand price x its billable seconds), not AWS's bill; storage and requests are not in it.
 */
import type { Ledger } from '../lib/contract';

export interface RunCost {
  readonly runId: string;
  readonly status: string;
  readonly startedAt: string | null;
  /** `YYYY-MM` of the start (UTC); null for a run that never started. */
  readonly month: string | null;
  readonly instanceType: string | null;
  readonly market: string | null;
  readonly billableSeconds: number;
  readonly costUsd: number;
  /** true while the run's instance still bills (the cost includes it so far). */
  readonly live: boolean;
}

export interface MonthCost {
  readonly month: string;
  readonly runs: number;
  readonly costUsd: number;
}

interface Span {
  first: number;
  last: number;
  usdPerHour: number;
}

/**
 * A ledger's cost: its own totals for a run that ended; for a running run its totals are those
 * of the instances that have ended, so the live instance's share (from its first attempt to
 * `now`) is added, as the supervisor computes it (runtime/tuning_runtime/ledger.py).
 */
export function runCost(runId: string, ledger: Ledger | undefined, now: Date): RunCost {
  const startedAt = ledger?.startedAt ?? null;
  const base = {
    runId,
    status: ledger?.status ?? 'unknown',
    startedAt,
    month: startedAt ? startedAt.slice(0, 7) : null,
    instanceType: ledger?.instanceType ?? null,
    market: ledger?.market ?? null,
  };
  const seconds = ledger?.billableSeconds ?? 0;
  const cost = ledger?.estimatedCostUsd ?? 0;
  if (ledger?.status !== 'running' || !ledger.instanceId) {
    return { ...base, billableSeconds: seconds, costUsd: cost, live: false };
  }
  const spans = new Map<string, Span>();
  for (const attempt of ledger.attempts ?? []) {
    if (attempt.instanceId !== ledger.instanceId || !attempt.startedAt) continue;
    const start = Date.parse(attempt.startedAt);
    const end = attempt.endedAt ? Date.parse(attempt.endedAt) : now.getTime();
    const price = Number((attempt as { usdPerHour?: number }).usdPerHour ?? 0);
    const span = spans.get(attempt.instanceId);
    if (span) {
      span.first = Math.min(span.first, start);
      span.last = Math.max(span.last, end, now.getTime());
      span.usdPerHour ||= price;
    } else {
      spans.set(attempt.instanceId, {
        first: start,
        last: Math.max(end, now.getTime()),
        usdPerHour: price,
      });
    }
  }
  let liveSeconds = 0;
  let liveCost = 0;
  for (const span of spans.values()) {
    const s = Math.max(0, (span.last - span.first) / 1000);
    liveSeconds += s;
    liveCost += (s / 3600) * span.usdPerHour;
  }
  return {
    ...base,
    billableSeconds: Math.round(seconds + liveSeconds),
    costUsd: Math.round((cost + liveCost) * 10_000) / 10_000,
    live: true,
  };
}

/** Runs per month, newest month first. */
export function byMonth(runs: readonly RunCost[]): MonthCost[] {
  const months = new Map<string, { runs: number; costUsd: number }>();
  for (const run of runs) {
    if (!run.month) continue;
    const entry = months.get(run.month) ?? { runs: 0, costUsd: 0 };
    entry.runs += 1;
    entry.costUsd += run.costUsd;
    months.set(run.month, entry);
  }
  return [...months.entries()]
    .sort(([a], [b]) => b.localeCompare(a))
    .map(([month, entry]) => ({
      month,
      runs: entry.runs,
      costUsd: Math.round(entry.costUsd * 10_000) / 10_000,
    }));
}
