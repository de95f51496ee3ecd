/**
 * The generated parts of the docs equal what the code renders now, so they cannot drift from it.
 * After changing a setting, a grant, an acknowledgement or a price: `make docs`, then commit.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type GeneratedBlock, generatedBlocks } from '../../scripts/docs/generate';
import { readBlock } from '../../scripts/docs/markdown';
import {
  CONFIGURATIONS,
  type ConfigurationName,
  ROOT,
  type Synthesis,
  synthesizeAll,
} from '../../scripts/docs/synthesized';

let synthesized: Record<ConfigurationName, Synthesis>;
let blocks: GeneratedBlock[];

beforeAll(() => {
  synthesized = synthesizeAll();
  blocks = generatedBlocks(synthesized);
});

function documented(file: string, name: string): { inFile?: string; rendered: string } {
  const block = blocks.find((b) => b.file === file && b.name === name);
  if (!block) throw new Error(`no generated block ${name} for ${file}`);
  const inFile = readBlock(readFileSync(join(ROOT, file), 'utf8'), name);
  return { inFile, rendered: block.content.trim() };
}

describe('generated docs are current (regenerate with make docs)', () => {
  test("README's settings table is the one the zod schema renders", () => {
    const { inFile, rendered } = documented('README.md', 'settings');
    expect(inFile).toBe(rendered);
  });

  test('docs/security.md lists every role and IAM statement of the synthesized stack', () => {
    const { inFile, rendered } = documented('docs/security.md', 'iam-roles');
    expect(inFile).toBe(rendered);
  });

  test('docs/security.md lists every cdk-nag finding the synthesized stack acknowledges', () => {
    const { inFile, rendered } = documented('docs/security.md', 'nag-findings');
    expect(inFile).toBe(rendered);
  });

  test('docs/costs.md shows the price table of lib/pricing.ts', () => {
    const { inFile, rendered } = documented('docs/costs.md', 'prices');
    expect(inFile).toBe(rendered);
  });

  test('docs/backends.md compares the EC2 and SageMaker tables of lib/', () => {
    const { inFile, rendered } = documented('docs/backends.md', 'backend-prices');
    expect(inFile).toBe(rendered);
  });
});

describe('the acknowledged-findings table is complete', () => {
  test.each(Object.keys(CONFIGURATIONS) as ConfigurationName[])(
    '%s: every cdk-nag acknowledgement suppresses a finding cdk-nag raised',
    (name) => {
      const s = synthesized[name];
      const raised = new Set(s.suppressed.map((f) => `${f.path} ${f.pack}::${f.rule}`));
      const unused = s.acknowledged.filter((a) => !raised.has(`${a.path} ${a.id}`));
      expect(s.acknowledged.length).toBeGreaterThan(0);
      expect(unused).toEqual([]);
    },
  );

  test('every resource with a finding in the validation report appears in the table', () => {
    const { inFile } = documented('docs/security.md', 'nag-findings');
    const resources = new Set(
      Object.values(synthesized).flatMap((s) =>
        s.suppressed.map((f) => f.path.replace(/^TrainingStack\//, '').replace(/\/Resource$/, '')),
      ),
    );
    for (const resource of resources) expect(inFile).toContain(`\`${resource}\``);
  });
});
