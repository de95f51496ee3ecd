/**
 * `tuning-lab sweep`: everything of this stack that may still bill with no run to show for it.
 *
 *     npx tuning-lab sweep                  # list, with the cost per hour; exit 1 if any
 *     npx tuning-lab sweep --delete         # the same, then remove them after a confirmation
 *     npx tuning-lab sweep --delete --yes   # no question (scripts)
 *
 * What counts, and the grace times, are in cli/sweep.ts.
 */
import { createInterface } from 'node:readline/promises';
import { booleanOption, type Command } from '../command';
import { describeError, UsageError } from '../errors';
import { formatUsd } from '../output';
import { RunStore } from '../run-store';
import { findLeaks, removeLeak } from '../sweep';

export const command: Command = {
  name: 'sweep',
  summary: 'find (and with --delete remove) what still bills with no run to show for it',
  usage: '[--delete [--yes]]',
  rank: 90,
  description: [
    "Instances with the stack's tag outside its group, in no ledger or past their run's end,",
    'debug holds past their time, unattached volumes, group capacity above 0 with no run',
    "running, and incomplete multipart uploads in the stack's buckets, each with its cost per",
    'hour (an estimate). Exit 1 when anything is found and left in place.',
  ].join('\n'),
  options: {
    delete: { type: 'boolean', help: 'remove what was found (after a confirmation)' },
    yes: { type: 'boolean', short: 'y', help: 'with --delete: do not ask' },
  },
  positionals: { min: 0, max: 0 },
  async run(ctx, args) {
    const remove = booleanOption(args, 'delete');
    const yes = booleanOption(args, 'yes');
    if (remove && !yes && !process.stdin.isTTY) {
      throw new UsageError('--delete: stdin is not a terminal to confirm on; add --yes');
    }
    const store = await RunStore.of(ctx);
    const { leaks, kept } = await findLeaks(ctx, store);
    const perHour = leaks.reduce((sum, l) => sum + (l.usdPerHour ?? 0), 0);
    const results: string[] = [];
    if (!ctx.out.jsonMode) {
      if (leaks.length === 0) {
        ctx.out.line(`nothing of ${ctx.stackName} bills without a run`);
      } else {
        ctx.out.table(
          ['what', 'id', 'why', '$/hour', '--delete'],
          leaks.map((l) => [l.kind, l.id, l.why, hourly(l.usdPerHour), l.action]),
          { align: ['left', 'left', 'left', 'right', 'left'] },
        );
        ctx.out.line(
          `total ~ ${hourly(perHour)} an hour, ~ ${formatUsd(perHour * 730)} a month (estimates)`,
        );
      }
      for (const k of kept) ctx.out.line(`kept: ${k.kind} ${k.id}: ${k.why}`);
    }
    let removed = false;
    if (remove && leaks.length > 0) {
      const confirmed = yes || (await ask(`remove these ${leaks.length}? [y/N] `));
      if (confirmed) {
        for (const leak of leaks) {
          try {
            results.push(await removeLeak(ctx, leak));
          } catch (error) {
            results.push(`FAILED ${leak.action} ${leak.id}: ${describeError(error)}`);
          }
        }
        removed = results.every((r) => !r.startsWith('FAILED'));
        if (!ctx.out.jsonMode) for (const r of results) ctx.out.line(r);
      } else if (!ctx.out.jsonMode) {
        ctx.out.line('nothing removed');
      }
    }
    if (ctx.out.jsonMode) {
      ctx.out.json({ leaks, kept, usdPerHour: perHour, removed: results });
    }
    return leaks.length === 0 || removed ? 0 : 1;
  },
};

function hourly(usd: number | null): string {
  if (usd === null) return '?';
  if (usd > 0 && usd < 0.0001) return '<$0.0001';
  return usd < 0.01 && usd > 0 ? `$${usd.toFixed(4)}` : formatUsd(usd);
}

async function ask(question: string): Promise<boolean> {
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await prompt.question(question)).trim());
  } finally {
    prompt.close();
  }
}
