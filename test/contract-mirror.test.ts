/**
 * lib/contract.ts and its Python mirror (runtime/tuning_runtime/contract.py) name the run's
 * objects alike: the supervisor writes what the Lambda and the command line read.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import {
  DEFAULT_STACK_NAME,
  messageKey,
  messagesPrefix,
  metricsKey,
  PROGRESS_MIN_INTERVAL_SECONDS,
  progressKey,
  runPrefix,
  SAFETY_MESSAGE_SOURCE,
  TAG_KEYS,
} from '../lib/contract';

const ROOT = join(__dirname, '..');

function python(): Record<string, unknown> {
  const script = [
    'import json, sys',
    "sys.path.insert(0, 'runtime')",
    'from tuning_runtime import contract as c',
    'print(json.dumps({',
    '  "progress": c.PROGRESS_NAME, "metrics": c.METRICS_NAME, "messages": c.MESSAGES_DIR,',
    '  "interval": c.PROGRESS_MIN_INTERVAL_SECONDS, "safety": c.SAFETY_MESSAGE_SOURCE,',
    '  "message": c.message_name(1796032800.25, "i-0abc", "started"),',
    '  "stack": c.DEFAULT_STACK_NAME,',
    '  "tags": [c.TAG_STACK, c.TAG_RUN_ID, c.TAG_MAX_RUNTIME_HOURS, c.TAG_MAX_RUN_COST_USD],',
    '}))',
  ].join('\n');
  const done = spawnSync(join(ROOT, '.venv', 'bin', 'python'), ['-c', script], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  if (done.status !== 0) throw new Error(done.stderr);
  return JSON.parse(done.stdout);
}

test('the runtime names progress, metrics, messages, tags and the default stack as lib/contract.ts does', () => {
  const py = python();
  const run = runPrefix('run-1');

  expect(`${run}/${py.progress}`).toBe(progressKey('run-1'));
  expect(`${run}/${py.metrics}`).toBe(metricsKey('run-1'));
  expect(`${run}/${py.messages}/${py.message}`).toBe(
    messageKey('run-1', new Date(1796032800250), 'i-0abc', 'started'),
  );
  expect(`${run}/${py.messages}/`).toBe(messagesPrefix('run-1'));
  expect(py.interval).toBe(PROGRESS_MIN_INTERVAL_SECONDS);
  expect(py.safety).toBe(SAFETY_MESSAGE_SOURCE);
  expect(py.stack).toBe(DEFAULT_STACK_NAME);
  expect(py.tags).toEqual([
    TAG_KEYS.stack,
    TAG_KEYS.runId,
    TAG_KEYS.maxRuntimeHours,
    TAG_KEYS.maxRunCostUsd,
  ]);
});
