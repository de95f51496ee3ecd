/**
 * README.md's table of deploy-time settings, rendered from the zod schema (lib/config.ts): the
 * defaults and numeric limits come from the schema itself, the rest from each setting's
 * registered SettingDoc. `make docs` writes it; test/docs checks README.md holds exactly this.
 */
import { z } from 'zod';
import {
  describeRange,
  type NumberRange,
  SETTING_KEYS,
  type SettingDoc,
  settingDocs,
  settingRanges,
  settingsSchema,
} from '../../lib/config';
import { table } from './markdown';

export interface SettingRow {
  readonly key: string;
  readonly defaultValue: string;
  readonly allowed: string;
  readonly description: string;
}

/** The documented facts of every setting, in schema order; throws if one is undocumented. */
export function settingRows(): SettingRow[] {
  return SETTING_KEYS.map((key) => {
    const schema = settingsSchema.shape[key] as z.ZodType;
    const doc = settingDocs.get(schema);
    if (!doc) throw new Error(`setting ${key} has no SettingDoc in lib/config.ts`);
    const inner = unwrap(schema);
    return {
      key,
      defaultValue: defaultOf(schema, doc, key),
      allowed: allowedOf(inner, doc, key),
      description: doc.description,
    };
  });
}

export function renderSettingsTable(): string {
  return table(
    ['setting', 'default', 'allowed', 'what it does'],
    settingRows().map((r) => [`\`${r.key}\``, r.defaultValue, r.allowed, r.description]),
  );
}

/** The schema inside `.default()` / `.optional()`: where ranges are registered. */
function unwrap(schema: z.ZodType): z.ZodType {
  let current = schema;
  while (current instanceof z.ZodDefault || current instanceof z.ZodOptional) {
    current = current.unwrap() as z.ZodType;
  }
  return current;
}

function defaultOf(schema: z.ZodType, doc: SettingDoc, key: string): string {
  if (schema instanceof z.ZodDefault) {
    const value: unknown = schema.def.defaultValue;
    return `\`${Array.isArray(value) ? value.join(',') : String(value)}\``;
  }
  if (doc.whenUnset === undefined) {
    throw new Error(`setting ${key} has no default: its SettingDoc needs whenUnset`);
  }
  return doc.whenUnset;
}

function allowedOf(inner: z.ZodType, doc: SettingDoc, key: string): string {
  const range: NumberRange | undefined = settingRanges.get(inner);
  if (range) return describeRange(range);
  if (doc.allowed !== undefined) return doc.allowed;
  // Booleans arrive as a preprocess pipe whose output is a ZodBoolean.
  if (inner instanceof z.ZodPipe && inner.def.out instanceof z.ZodBoolean) {
    return '`true` or `false`';
  }
  throw new Error(`setting ${key} needs SettingDoc.allowed (no range or boolean to show)`);
}
