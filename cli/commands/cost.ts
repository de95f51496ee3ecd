/**
 * `tuning-lab cost`: what each run cost and what each month cost, from the run ledgers.
 *
 *     npx tuning-lab cost                     # every run, and a line per month
 *     npx tuning-lab cost --month 2026-11     # the runs started that month
 */
import { ledgerKey, type Ledger } from '../../lib/contract';
import type { Command } from '../command';
import { stringOption } from '../command';
import { byMonth, runCost } from '../cost';
import { UsageError } from '../errors';
import { formatDuration, formatTime, formatUsd } from '../output';
import { mapParallel, RunStore } from '../run-store';

const MONTH = /^\d{4}-(0[1-9]|1[0-2])$/;

export const command: Command = {
  name: 'cost',
  summary: 'what each run and each month cost, from the ledgers (an estimate)',
  usage: '[--month YYYY-MM]',
  rank: 70,
  description: [
    "Per run: the ledger's estimate (billable seconds x the instance's spot or on-demand",
    'price; a running run up to now). Per month: the runs started that month. Storage,',
    'requests and data transfer are not included: AWS Cost Explorer has the bill.',
  ].join('\n'),
  options: {
    month: { type: 'string', value: 'YYYY-MM', help: 'only the runs started that month' },
  },
  positionals: { min: 0, max: 0 },
  async run(ctx, args) {
    const month = stringOption(args, 'month');
    if (month !== undefined && !MONTH.test(month)) {
      throw new UsageError(`--month: '${month}' is not allowed; use YYYY-MM, e.g. 2026-11`);
    }
    const store = await RunStore.of(ctx);
    const ids = await store.runIds();
    const now = ctx.now();
    const ledgers = await mapParallel(ids, (id) => store.readJson<Ledger>(ledgerKey(id)));
    const runs = ids
      .map((id, i) => runCost(id, ledgers[i], now))
      .filter((run) => month === undefined || run.month === month)
      .sort((a, b) => (b.startedAt ?? '').localeCompare(a.startedAt ?? ''));
    const months = byMonth(runs);
    const totalUsd = Math.round(runs.reduce((sum, r) => sum + r.costUsd, 0) * 10_000) / 10_000;
    if (ctx.out.jsonMode) {
      ctx.out.json({ estimate: true, month: month ?? null, runs, months, totalUsd });
      return;
    }
    if (runs.length === 0) {
      ctx.out.line(month ? `no run started in ${month}` : 'no runs yet');
      return;
    }
    ctx.out.table(
      ['run', 'status', 'started', 'instance', 'billed', 'cost'],
      runs.map((r) => [
        r.runId,
        r.status,
        formatTime(r.startedAt),
        [r.instanceType, r.market].filter(Boolean).join(' ') || '-',
        formatDuration(r.billableSeconds),
        formatUsd(r.costUsd) + (r.live ? ' so far' : ''),
      ]),
      { align: ['left', 'left', 'left', 'left', 'right', 'right'] },
    );
    ctx.out.line();
    ctx.out.table(
      ['month', 'runs', 'cost'],
      [
        ...months.map((m) => [m.month, String(m.runs), formatUsd(m.costUsd)]),
        ['total', String(runs.length), formatUsd(totalUsd)],
      ],
      { align: ['left', 'right', 'right'] },
    );
    ctx.out.note(
      'Estimates from the run ledgers (instance time x price); AWS Cost Explorer has the bill.',
    );
  },
};
