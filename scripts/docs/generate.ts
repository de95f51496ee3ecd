/**
 * Writes the generated blocks of the docs, or checks that they are current:
 *
 *     make docs                                                 # rewrite them
 *     npx ts-node --transpile-only scripts/docs/generate.ts --check
 *
 * Each block sits between `<!-- BEGIN GENERATED name ... -->` and `<!-- END GENERATED name -->`
 * and is rendered from the code it describes, so the docs cannot drift from it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderBackendTable } from './backend-table';
import { readBlock, writeBlock } from './markdown';
import { renderPriceTable } from './price-table';
import { renderSecurityBlocks } from './security-tables';
import { renderSettingsTable } from './settings-table';
import { type ConfigurationName, ROOT, type Synthesis, synthesizeAll } from './synthesized';

export interface GeneratedBlock {
  /** Repository-relative markdown file. */
  readonly file: string;
  readonly name: string;
  readonly content: string;
}

/** Every generated block with its current content (synthesizing the stack takes seconds). */
export function generatedBlocks(
  all: Record<ConfigurationName, Synthesis> = synthesizeAll(),
): GeneratedBlock[] {
  const security = renderSecurityBlocks(all);
  return [
    { file: 'README.md', name: 'settings', content: renderSettingsTable() },
    { file: 'docs/security.md', name: 'iam-roles', content: security['iam-roles'] },
    { file: 'docs/security.md', name: 'nag-findings', content: security['nag-findings'] },
    { file: 'docs/security.md', name: 'checkov-acks', content: security['checkov-acks'] },
    { file: 'docs/costs.md', name: 'prices', content: renderPriceTable() },
    { file: 'docs/backends.md', name: 'backend-prices', content: renderBackendTable() },
  ];
}

/** The blocks whose text in their file differs from `content`. */
export function staleBlocks(blocks: readonly GeneratedBlock[]): GeneratedBlock[] {
  return blocks.filter(
    (b) => readBlock(readFileSync(join(ROOT, b.file), 'utf8'), b.name) !== b.content.trim(),
  );
}

function main(args: readonly string[]): number {
  const blocks = generatedBlocks();
  if (args.includes('--check')) {
    const stale = staleBlocks(blocks);
    for (const b of stale) console.error(`${b.file}: block ${b.name} is out of date`);
    if (stale.length > 0) console.error('Run `make docs` and commit the result.');
    return stale.length > 0 ? 1 : 0;
  }
  for (const b of blocks) {
    const path = join(ROOT, b.file);
    const before = readFileSync(path, 'utf8');
    const after = writeBlock(before, b.name, b.content);
    if (after !== before) {
      writeFileSync(path, after);
      console.log(`${b.file}: block ${b.name} rewritten`);
    }
  }
  return 0;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
