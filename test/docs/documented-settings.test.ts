/** Every `-c key=value` the docs show is a setting, with a value the schema accepts. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SETTING_KEYS, settingsSchema } from '../../lib/config';
import { ROOT } from '../../scripts/docs/synthesized';

const DOCUMENTS = [
  'README.md',
  'CONTRIBUTING.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

/** [document, key, value] for every `-c key=value` in the documents (but that one). */
const assignments = DOCUMENTS.flatMap((document) =>
  [...readFileSync(join(ROOT, document), 'utf8').matchAll(/-c ([A-Za-z]+)=([^\s`'")|]*)/g)]
    .filter((m) => m[1] !== 'key')
    .map((m) => [document, m[1], m[2].replace(/[.,;:]+$/, '')] as const),
);

/** Placeholders (`<sha>`, `N`, `...`) stand for a value the reader chooses. */
const isPlaceholder = (value: string) =>
  value === '' || /[<>]|\.\.\./.test(value) || /^[A-Z_]+$/.test(value);

describe('documented settings', () => {
  test('the docs show some settings', () => {
    expect(assignments.length).toBeGreaterThan(10);
  });

  test.each(assignments)('%s: -c %s=%s names a setting', (_document, key) => {
    expect(SETTING_KEYS).toContain(key);
  });

  test.each(assignments.filter(([, , value]) => !isPlaceholder(value)))(
    '%s: -c %s=%s is a value the schema accepts',
    (_document, key, value) => {
      const schema = settingsSchema.shape[key as keyof typeof settingsSchema.shape];
      const result = schema.safeParse(value);
      expect(result.error?.issues[0]?.message).toBeUndefined();
    },
  );
});
