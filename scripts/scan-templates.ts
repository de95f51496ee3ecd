/**
 * Writes TrainingStack's template in every configuration the docs describe (scripts/docs/
 * synthesized.ts: defaults, githubRepo, a run, an existing network, and backend=sagemaker with a
 * run) for `make scan`, which runs checkov on them:
 *
 *     npx ts-node --transpile-only scripts/scan-templates.ts cdk.out.scan
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { synthesizeAll } from './docs/synthesized';

const outdir = process.argv[2] ?? 'cdk.out.scan';
rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });
for (const [name, synthesis] of Object.entries(synthesizeAll())) {
  const file = join(outdir, `${name}.template.json`);
  writeFileSync(file, `${JSON.stringify(synthesis.template, null, 1)}\n`);
  console.log(`scan-templates: ${file}`);
}
