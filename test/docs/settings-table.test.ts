/**
 * The settings table documents the limits validation enforces: the numbers in the table come
 * from the same ranges the schema validates with, and each range holds at its edges.
 */
import { z } from 'zod';
import {
  type NumberRange,
  parseSettings,
  SETTING_KEYS,
  settingRanges,
  settingsSchema,
} from '../../lib/config';
import { renderSettingsTable, settingRows } from '../../scripts/docs/settings-table';
import { ROOT } from '../../scripts/docs/synthesized';

const ranged = SETTING_KEYS.flatMap((key) => {
  let schema = settingsSchema.shape[key] as z.ZodType;
  while (schema instanceof z.ZodDefault || schema instanceof z.ZodOptional) {
    schema = schema.unwrap() as z.ZodType;
  }
  const range: NumberRange | undefined = settingRanges.get(schema);
  return range ? [[key, range] as const] : [];
});

/** Settings whose whole range needs another setting: several instances are SageMaker's. */
const NEEDS: Record<string, Record<string, string>> = { instanceCount: { backend: 'sagemaker' } };

function accepts(key: string, value: number): boolean {
  try {
    parseSettings({ ...NEEDS[key], [key]: String(value) }, { cwd: ROOT });
    return true;
  } catch {
    return false;
  }
}

describe('settings table', () => {
  test('has one row per setting, each with a sentence of description', () => {
    const rows = settingRows();
    expect(rows.map((r) => r.key)).toEqual(SETTING_KEYS);
    for (const row of rows) expect(row.description).toMatch(/^[`A-Z].*\.$/);
  });

  test('shows the schema defaults', () => {
    const table = renderSettingsTable();
    expect(table).toContain('| `maxRuntimeHours` | `12` | a number of hours > 0 and <= 168 |');
    expect(table).toContain('| `instanceTypes` | `g5.xlarge` |');
  });

  test('the numeric settings all have documented ranges', () => {
    expect(ranged.map(([key]) => key).sort()).toEqual(
      [
        'debugHoldMinutes',
        'idleMinutes',
        'instanceCount',
        'maxRetries',
        'maxRunCostUsd',
        'maxRuntimeHours',
        'monthlyBudgetUsd',
        'rootVolumeGiB',
      ].sort(),
    );
  });

  test.each(ranged)('%s: validation accepts the documented limits and rejects past them', (key, range) => {
    const step = range.integer ? 1 : 0.5;
    if (range.minExclusive) {
      expect(accepts(key, range.min)).toBe(false);
      expect(accepts(key, range.min + step)).toBe(true);
    } else {
      expect(accepts(key, range.min)).toBe(true);
      expect(accepts(key, range.min - step)).toBe(false);
    }
    if (range.max !== undefined) {
      expect(accepts(key, range.max)).toBe(true);
      expect(accepts(key, range.max + step)).toBe(false);
    }
    if (range.integer) expect(accepts(key, range.min + 1.5)).toBe(false);
  });
});
