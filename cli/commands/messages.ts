/**
 * `tuning-lab messages [run]`: every message the run sent (the supervisor's and the safety
 * Lambda's), in order, as the email reads; kept under `runs/<run-id>/messages/` (contract
 * section 12), so no email subscription is needed to read them.
 *
 *     npx tuning-lab messages             # the current (or newest) run
 *     npx tuning-lab messages prod --brief
 */
import { booleanOption, type Command } from '../command';
import { formatTime } from '../output';
import { RunStore } from '../run-store';
import { statusText } from './runs';
import { chooseRun } from './status';

export const command: Command = {
  name: 'messages',
  summary: 'every message the run sent (supervisor and safety Lambda), in order',
  usage: '[run]',
  rank: 50,
  description: "The run: an alias or run id; default the stack's current run, else the newest.",
  options: { brief: { type: 'boolean', help: 'one line per message, without the bodies' } },
  positionals: { min: 0, max: 1 },
  async run(ctx, args) {
    const store = await RunStore.of(ctx);
    const runId = await chooseRun(ctx, store, args.positionals[0]);
    const records = await store.messages(runId);
    const out = ctx.out;
    if (out.jsonMode) {
      out.json({ runId, messages: records });
      return 0;
    }
    if (records.length === 0) {
      out.line(
        `run ${runId} has sent no message yet (s3://${store.bucket}/runs/${runId}/messages/)`,
      );
      return 0;
    }
    if (booleanOption(args, 'brief')) {
      out.table(
        ['SENT', 'STATUS', 'FROM'],
        records.map((r) => [formatTime(r.sentAt), statusText(out, r.status, r.reason), r.source]),
      );
      return 0;
    }
    records.forEach((record, i) => {
      if (i > 0) out.line('');
      out.line(
        out.paint(
          'bold',
          `== ${formatTime(record.sentAt)}  ${record.subject}  (from ${record.source})`,
        ),
      );
      out.line(record.body.replace(/\n$/, ''));
    });
    return 0;
  },
};
