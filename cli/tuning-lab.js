#!/usr/bin/env node
// `npx tuning-lab <command>`: the operator's command line (cli/main.ts). The TypeScript runs
// through ts-node (a dev dependency `npm ci` installs), transpiled only: `npm run build` type-checks.
'use strict';
const { join } = require('node:path');

// The SDK's notice that its releases from January 2027 need Node.js 22 would fill every
// command's output on Node.js 20 (which package.json allows); the pinned SDK runs on 20.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
require('ts-node').register({ project: join(__dirname, '..', 'tsconfig.json'), transpileOnly: true });
require('./main')
  .main(process.argv.slice(2))
  .then(
    (code) => {
      process.exitCode = code;
    },
    (error) => {
      process.stderr.write(`tuning-lab: ${error && error.stack ? error.stack : error}\n`);
      process.exitCode = 1;
    },
  );
