/**
 * The run layout in the outputs bucket as the command line reads it (DESIGN.md section 3,
 * docs/contracts.md): run ids, ledgers, progress, metrics, messages, manifests and aliases, by
 * the keys of lib/contract.ts. Reads of many runs go out in parallel (a few at a time).
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  paginateListObjectsV2,
  PutObjectCommand,
  type _Object,
} from '@aws-sdk/client-s3';
import {
  aliasKey,
  ALIAS_PATTERN,
  ALIASES_PREFIX,
  finalPrefix,
  ledgerKey,
  MANIFEST_NAME,
  messagesPrefix,
  metricsKey,
  progressKey,
  RUN_ID_PATTERN,
  SCHEMA_VERSION,
  type AliasDocument,
  type Ledger,
  type Manifest,
  type MessageRecord,
  type MetricsDocument,
  type ProgressDocument,
} from '../lib/contract';
import type { CliContext } from './context';
import { CliFailure, UsageError } from './errors';

/** How many reads of different runs are in flight at once. */
export const PARALLEL_READS = 16;

export interface RunView {
  readonly runId: string;
  readonly ledger?: Ledger;
  readonly progress?: ProgressDocument;
  /** Whether `final/manifest.json` exists (the manifest is written last: the model is whole). */
  readonly finalModel?: boolean;
  readonly aliases: string[];
}

export class RunStore {
  constructor(
    private readonly ctx: CliContext,
    readonly bucket: string,
  ) {}

  static async of(ctx: CliContext): Promise<RunStore> {
    return new RunStore(ctx, await ctx.output('outputsBucket'));
  }

  /** Every run id under `runs/` (one listing per 1000 runs). */
  async runIds(): Promise<string[]> {
    const ids: string[] = [];
    const pages = paginateListObjectsV2(
      { client: this.ctx.s3 },
      { Bucket: this.bucket, Prefix: 'runs/', Delimiter: '/' },
    );
    for await (const page of pages) {
      for (const prefix of page.CommonPrefixes ?? []) {
        const id = prefix.Prefix?.slice('runs/'.length, -1);
        if (id && RUN_ID_PATTERN.test(id)) ids.push(id);
      }
    }
    return ids;
  }

  /** Every run with its ledger and progress, newest first (by the ledger's start). */
  async allRuns(options: { finalModel?: boolean } = {}): Promise<RunView[]> {
    const [ids, aliases] = await Promise.all([this.runIds(), this.aliases()]);
    const runs = await mapParallel(ids, (id) => this.run(id, { ...options, aliases }));
    return runs.sort(newestFirst);
  }

  /** The run whose ledger started last (one read per run: the ledgers only). */
  async newestRunId(): Promise<string | undefined> {
    const ids = await this.runIds();
    const ledgers = await mapParallel(ids, (id) => this.readJson<Ledger>(ledgerKey(id)));
    const started = ids.map((id, i) => ({ id, at: ledgers[i]?.startedAt ?? '' }));
    started.sort((a, b) => b.at.localeCompare(a.at) || a.id.localeCompare(b.id));
    return started[0]?.id;
  }

  /** One run's ledger and progress (both may be missing); `finalModel` checks the manifest. */
  async run(
    runId: string,
    options: { finalModel?: boolean; aliases?: AliasDocument[] } = {},
  ): Promise<RunView> {
    const [ledger, progress] = await Promise.all([
      this.readJson<Ledger>(ledgerKey(runId)),
      this.readJson<ProgressDocument>(progressKey(runId)),
    ]);
    // A final model exists only for a completed run (the supervisor checked it then); the
    // manifest says whether it is still there.
    const finalModel =
      options.finalModel && ledger?.status === 'completed'
        ? await this.exists(`${finalPrefix(runId)}${MANIFEST_NAME}`)
        : options.finalModel
          ? false
          : undefined;
    const aliases = (options.aliases ?? []).filter((a) => a.runId === runId).map((a) => a.name);
    return { runId, ledger, progress, finalModel, aliases };
  }

  metrics(runId: string): Promise<MetricsDocument | undefined> {
    return this.readJson<MetricsDocument>(metricsKey(runId));
  }

  /** A checkpoint's or the final model's manifest; undefined when it does not exist. */
  manifest(prefix: string): Promise<Manifest | undefined> {
    return this.readJson<Manifest>(`${prefix}${MANIFEST_NAME}`);
  }

  /** Every message of the run, in the order sent. */
  async messages(runId: string): Promise<MessageRecord[]> {
    const keys = (await this.list(messagesPrefix(runId)))
      .map((o) => o.Key as string)
      .filter((key) => key.endsWith('.json'))
      .sort();
    const records = await mapParallel(keys, (key) => this.readJson<MessageRecord>(key));
    return records.filter((r): r is MessageRecord => r !== undefined);
  }

  /** Objects under a prefix, all pages. */
  async list(prefix: string): Promise<_Object[]> {
    const objects: _Object[] = [];
    const pages = paginateListObjectsV2(
      { client: this.ctx.s3 },
      { Bucket: this.bucket, Prefix: prefix },
    );
    for await (const page of pages) objects.push(...(page.Contents ?? []));
    return objects;
  }

  // -- aliases (contract section 13) --------------------------------------------------------

  async aliases(): Promise<AliasDocument[]> {
    const keys = (await this.list(ALIASES_PREFIX)).map((o) => o.Key as string);
    const docs = await mapParallel(keys, (key) => this.readJson<AliasDocument>(key));
    return docs.filter((d): d is AliasDocument => Boolean(d?.runId && d.name));
  }

  alias(name: string): Promise<AliasDocument | undefined> {
    return this.readJson<AliasDocument>(aliasKey(checkAliasName(name)));
  }

  async setAlias(name: string, runId: string): Promise<AliasDocument> {
    const doc: AliasDocument = {
      schemaVersion: SCHEMA_VERSION,
      name: checkAliasName(name),
      runId,
      taggedAt: this.ctx.now().toISOString(),
    };
    await this.ctx.s3.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: aliasKey(name),
        Body: `${JSON.stringify(doc, null, 2)}\n`,
        ContentType: 'application/json',
      }),
    );
    return doc;
  }

  async deleteAlias(name: string): Promise<void> {
    await this.ctx.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: aliasKey(name) }));
  }

  /**
   * A run id from what the user typed: an alias (`prod`) or a run id; exit 1 when neither names
   * a run of this stack.
   */
  async resolve(nameOrId: string): Promise<{ runId: string; alias?: string }> {
    if (ALIAS_PATTERN.test(nameOrId)) {
      const alias = await this.alias(nameOrId);
      if (alias) return { runId: alias.runId, alias: alias.name };
    }
    if (!RUN_ID_PATTERN.test(nameOrId)) {
      throw new UsageError(
        `run: '${nameOrId}' is neither an alias nor a run id (${RUN_ID_PATTERN.source}); ` +
          'npx tuning-lab runs lists them',
      );
    }
    return { runId: nameOrId };
  }

  // -- objects ------------------------------------------------------------------------------

  async readJson<T>(key: string): Promise<T | undefined> {
    const text = await this.readText(key);
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliFailure(`s3://${this.bucket}/${key} is not valid JSON`);
    }
  }

  async readText(key: string): Promise<string | undefined> {
    try {
      const object = await this.ctx.s3.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key }),
      );
      return await (object.Body as { transformToString(): Promise<string> }).transformToString();
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.ctx.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch (error) {
      if (isMissing(error)) return false;
      throw error;
    }
  }
}

export function checkAliasName(name: string): string {
  if (!ALIAS_PATTERN.test(name)) {
    throw new UsageError(
      `name: '${name}' is not allowed; use lower-case letters, digits, '.', '_' or '-', ` +
        'starting with a letter, at most 63 characters',
    );
  }
  return name;
}

export function isMissing(error: unknown): boolean {
  const name = (error as { name?: string }).name;
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return name === 'NoSuchKey' || name === 'NotFound' || status === 404;
}

function newestFirst(a: RunView, b: RunView): number {
  const started = (run: RunView) => run.ledger?.startedAt ?? run.progress?.updatedAt ?? '';
  return started(b).localeCompare(started(a)) || a.runId.localeCompare(b.runId);
}

/** `map` with at most `limit` promises in flight, results in input order. */
export async function mapParallel<T, R>(
  items: readonly T[],
  map: (item: T) => Promise<R>,
  limit = PARALLEL_READS,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await map(items[index]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
