/**
 * JSON objects in the outputs bucket that more than one writer updates (the ledger: the
 * supervisor and the Lambda; a meter: overlapping Lambda invocations): read with the ETag, and
 * write only if the object is still the one read (S3 `If-Match`, or `If-None-Match: *` for a new
 * one), re-reading and re-applying the change on a conflict.
 */
import { randomUUID } from 'node:crypto';
import {
  GetObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';

/** An object as read, with the ETag a conditional write must match; empty when it is missing. */
export interface Stored<T> {
  readonly value?: T;
  readonly etag?: string;
}

const WRITE_TRIES = 5;

export async function readJson<T>(s3: S3Client, bucket: string, key: string): Promise<Stored<T>> {
  try {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const text = await (object.Body as { transformToString(): Promise<string> }).transformToString();
    return { value: JSON.parse(text) as T, etag: object.ETag };
  } catch (error) {
    if (error instanceof NoSuchKey || errorName(error) === 'NoSuchKey') return {};
    // S3 answers 403, not 404, for a missing key to a caller without an unconditioned
    // ListBucket; the Lambda may list these keys exactly, which settles which one it is.
    if (errorName(error) === 'AccessDenied' && !(await isListed(s3, bucket, key))) return {};
    throw error;
  }
}

async function isListed(s3: S3Client, bucket: string, key: string): Promise<boolean> {
  const listed = await s3.send(
    new ListObjectsV2Command({ Bucket: bucket, Prefix: key, MaxKeys: 1 }),
  );
  return (listed.Contents ?? []).some((item) => item.Key === key);
}

/** Who wrote a version of the object: a fresh id per update (docs/contracts.md section 8). */
export const WRITE_ID = 'writeId';

/**
 * Write `update(current)` conditionally; on a conflict read again and re-apply. `update`
 * returning undefined leaves the object as it is. Returns what is stored afterwards.
 *
 * The SDK retries a write whose response was lost, and the retry is refused (412) although the
 * write landed: the write id stored with the object tells that from another writer's change, so
 * an update is never applied twice.
 */
export async function updateJson<T extends object>(
  s3: S3Client,
  bucket: string,
  key: string,
  stored: Stored<T>,
  update: (current?: T) => T | undefined,
): Promise<Stored<T>> {
  const writeId = randomUUID();
  let current = stored;
  for (let tries = 1; ; tries++) {
    if ((current.value as Record<string, unknown> | undefined)?.[WRITE_ID] === writeId) {
      return current;
    }
    const updated = update(current.value);
    if (updated === undefined) return current;
    const value = { ...updated, [WRITE_ID]: writeId } as T;
    try {
      const put = await s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: `${JSON.stringify(value, null, 2)}\n`,
          ContentType: 'application/json',
          ...(current.etag ? { IfMatch: current.etag } : { IfNoneMatch: '*' }),
        }),
      );
      return { value, etag: put.ETag };
    } catch (error) {
      const name = errorName(error);
      const conflict = name === 'PreconditionFailed' || name === 'ConditionalRequestConflict';
      if (!conflict || tries >= WRITE_TRIES) throw error;
      current = await readJson<T>(s3, bucket, key);
    }
  }
}

function errorName(error: unknown): string | undefined {
  return (error as { name?: string }).name;
}
