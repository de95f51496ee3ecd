/**
 * `tuning-lab pull <run|alias> [dir]`: download a run's final model (or one checkpoint) and
 * verify every file against the manifest's size and sha256; a model without a manifest, with a
 * file missing in S3, or with a file that does not match is an error (exit 1), never an empty
 * success. Writes `tuning-lab.json` beside the model (run, base model, method, metrics, config),
 * so a local models/ folder is a registry too. Files already there and matching are kept.
 *
 *     npx tuning-lab pull prod                     # into models/<run-id>/
 *     npx tuning-lab pull run-3f2a9c1b ./model --checkpoint 200
 */
import { createHash } from 'node:crypto';
import {
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { parse as parseYaml } from 'yaml';
import {
  checkpointPrefix,
  finalPrefix,
  ledgerKey,
  MANIFEST_NAME,
  progressKey,
  runPrefix,
  SCHEMA_VERSION,
  type Ledger,
  type Manifest,
  type ProgressDocument,
} from '../../lib/contract';
import { stringOption, type Command } from '../command';
import type { CliContext } from '../context';
import { CliFailure, wholeNumber } from '../errors';
import { formatBytes } from '../output';
import { mapParallel, RunStore } from '../run-store';

/** The metadata file written beside the model. */
export const METADATA_NAME = 'tuning-lab.json';
const PARALLEL_DOWNLOADS = 4;

export const command: Command = {
  name: 'pull',
  summary: "download a run's final model (or a checkpoint), verified against its manifest",
  usage: '<run> [dir]',
  rank: 40,
  description: [
    'The run: an alias (runs tag) or a run id. dir: default models/<run-id>. Every file is',
    "checked against manifest.json's size and sha256; a missing or incomplete model, or a file",
    'that does not match, ends with exit 1 and leaves no unverified file behind.',
  ].join('\n'),
  options: {
    checkpoint: {
      type: 'string',
      value: 'STEP',
      help: 'the checkpoint of this step instead of final/',
    },
  },
  positionals: { min: 1, max: 2 },
  async run(ctx, args) {
    const checkpointText = stringOption(args, 'checkpoint');
    const step =
      checkpointText === undefined ? undefined : wholeNumber('--checkpoint', checkpointText, 0);
    const store = await RunStore.of(ctx);
    const { runId, alias } = await store.resolve(args.positionals[0]);
    const dir = resolve(args.positionals[1] ?? join('models', runId));
    const prefix = step === undefined ? finalPrefix(runId) : checkpointPrefix(runId, step);
    const what = step === undefined ? 'final model' : `checkpoint ${step}`;
    const source = `s3://${store.bucket}/${prefix}`;

    const [manifest, ledger, progress, configText, listed] = await Promise.all([
      store.manifest(prefix),
      store.readJson<Ledger>(ledgerKey(runId)),
      store.readJson<ProgressDocument>(progressKey(runId)),
      store.readText(`${runPrefix(runId)}/config.yaml`),
      store.list(prefix),
    ]);
    if (!manifest) {
      const state = ledger
        ? `run status ${ledger.status}${ledger.reason ? ` (${ledger.reason})` : ''}`
        : 'no ledger';
      const found = listed.length > 0 ? `${listed.length} file(s) but ` : '';
      throw new CliFailure(
        `run ${runId} has no complete ${what}: ${source} has ${found}no ${MANIFEST_NAME} (${state}; npx tuning-lab runs show ${runId})`,
      );
    }
    const files = checkManifest(manifest, source);
    const sizes = new Map(listed.map((o) => [(o.Key as string).slice(prefix.length), o.Size]));
    const missing = files.filter((f) => sizes.get(f.path) !== f.size);
    if (missing.length > 0) {
      const first = missing[0];
      const got = sizes.get(first.path);
      throw new CliFailure(
        `the ${what} of ${runId} is incomplete: ${missing.length} of ${files.length} file(s) missing ` +
          `or of the wrong size in ${source}, e.g. ${first.path} (manifest ${first.size} bytes, ` +
          `S3 ${got === undefined ? 'missing' : `${got} bytes`})`,
      );
    }

    mkdirSync(dir, { recursive: true });
    const total = files.reduce((sum, f) => sum + f.size, 0);
    const bar = ctx.out.progress(`pull ${runId}`, total);
    let kept = 0;
    const problems: string[] = [];
    await mapParallel(
      files,
      async (file) => {
        const target = resolve(dir, file.path);
        if (!target.startsWith(dir + sep)) {
          problems.push(`${file.path}: outside ${dir}`);
          return;
        }
        if (await matchesLocal(target, file)) {
          kept += 1;
          bar.advance(file.size);
          return;
        }
        const problem = await download(ctx, store.bucket, prefix + file.path, target, file, (n) =>
          bar.advance(n),
        );
        if (problem) problems.push(problem);
      },
      PARALLEL_DOWNLOADS,
    );
    bar.done();
    if (problems.length > 0) {
      throw new CliFailure(
        `refusing the ${what} of ${runId}: ${problems.length} file(s) do not match ${source}${MANIFEST_NAME} ` +
          `(removed): ${problems.join('; ')}`,
      );
    }
    writeFileSync(join(dir, MANIFEST_NAME), `${JSON.stringify(manifest, null, 2)}\n`);
    const config = configText ? (parseYaml(configText) as Record<string, unknown>) : null;
    const metadata = {
      schemaVersion: SCHEMA_VERSION,
      runId,
      alias: alias ?? null,
      stack: ctx.stackName,
      region: await ctx.region(),
      source,
      kind: manifest.kind,
      step: manifest.step,
      createdAt: manifest.createdAt,
      pulledAt: ctx.now().toISOString(),
      baseModel: (config?.model as { base_model?: string } | undefined)?.base_model ?? null,
      method: (config?.model as { method?: string } | undefined)?.method ?? null,
      data: config?.data ?? null,
      configDigest: configText
        ? `sha256:${createHash('sha256').update(configText).digest('hex')}`
        : null,
      imageUri: ledger?.imageUri ?? null,
      metrics: {
        step: progress?.step ?? ledger?.lastStep ?? null,
        maxSteps: progress?.maxSteps ?? null,
        loss: progress?.loss ?? null,
        evalLoss: progress?.evalLoss ?? null,
      },
      status: ledger?.status ?? null,
      estimatedCostUsd: ledger?.estimatedCostUsd ?? null,
      files: files.length,
      bytes: total,
      config,
    };
    writeFileSync(join(dir, METADATA_NAME), `${JSON.stringify(metadata, null, 2)}\n`);
    if (ctx.out.jsonMode) {
      ctx.out.json({ dir, ...metadata, downloaded: files.length - kept, kept });
    } else {
      ctx.out.line(
        `${what} of ${runId} (step ${manifest.step}) -> ${dir}: ${files.length} files, ${formatBytes(total)}, ` +
          `sha256 verified${kept ? ` (${kept} already there)` : ''}`,
      );
      ctx.out.line(`metadata: ${join(dir, METADATA_NAME)}`);
    }
    return 0;
  },
};

type ManifestFile = Manifest['files'][number];

/** The manifest's files; a CliFailure for a malformed manifest or a path outside the folder. */
function checkManifest(manifest: Manifest, source: string): ManifestFile[] {
  if (!Array.isArray(manifest.files) || manifest.files.length === 0) {
    throw new CliFailure(`${source}${MANIFEST_NAME} lists no files: not a valid manifest`);
  }
  for (const file of manifest.files) {
    const valid =
      typeof file.path === 'string' &&
      Number.isSafeInteger(file.size) &&
      file.size >= 0 &&
      typeof file.sha256 === 'string' &&
      /^[0-9a-f]{64}$/.test(file.sha256);
    const parts = typeof file.path === 'string' ? file.path.split('/') : [];
    if (
      !valid ||
      file.path.startsWith('/') ||
      parts.some((p) => p === '..' || p === '' || p === '.') ||
      file.path === MANIFEST_NAME
    ) {
      throw new CliFailure(
        `${source}${MANIFEST_NAME} has an invalid entry: ${JSON.stringify(file)}`,
      );
    }
  }
  return manifest.files;
}

async function matchesLocal(path: string, file: ManifestFile): Promise<boolean> {
  if (!existsSync(path) || statSync(path).size !== file.size) return false;
  return (await sha256OfFile(path)) === file.sha256;
}

function sha256OfFile(path: string): Promise<string> {
  return new Promise((done, fail) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', fail)
      .on('end', () => done(hash.digest('hex')));
  });
}

/** Download one file to `<target>.partial`, hashing as it arrives; renamed only if it matches. */
async function download(
  ctx: CliContext,
  bucket: string,
  key: string,
  target: string,
  file: ManifestFile,
  advance: (bytes: number) => void,
): Promise<string | undefined> {
  mkdirSync(dirname(target), { recursive: true });
  const partial = `${target}.partial`;
  const hash = createHash('sha256');
  let size = 0;
  const object = await ctx.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      size += chunk.length;
      advance(chunk.length);
      callback(null, chunk);
    },
  });
  try {
    await pipeline(object.Body as Readable, counter, createWriteStream(partial));
  } catch (error) {
    rmSync(partial, { force: true });
    throw error;
  }
  const sha256 = hash.digest('hex');
  if (size !== file.size || sha256 !== file.sha256) {
    rmSync(partial, { force: true });
    rmSync(target, { force: true });
    return size !== file.size
      ? `${file.path}: ${size} bytes, the manifest says ${file.size}`
      : `${file.path}: sha256 ${sha256.slice(0, 12)}..., the manifest says ${file.sha256.slice(0, 12)}...`;
  }
  renameSync(partial, target);
  return undefined;
}
