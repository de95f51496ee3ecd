/**
 * The run's lease (contract section 7) on the SageMaker backend: at most one trainer per run,
 * whichever backend it runs on. The controller holds the lease for the run's live job (holder:
 * the job's name) and renews it every pass; an EC2 instance of the same run (a deploy switched
 * `backend` and kept the run id) waits for it as for another instance's, and the controller
 * starts no job while an instance holds it. Writes are conditional (lambda/safety/store.ts).
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { leaseKey, SCHEMA_VERSION } from '../../lib/contract';
import { readJson, updateJson, type Stored } from '../safety/store';

/** `runs/<run-id>/lease.json`. */
export interface LeaseDocument {
  readonly schemaVersion: number;
  readonly runId: string;
  readonly holder: string;
  readonly renewedAt: string;
  readonly expiresAt: string;
  readonly released: boolean;
  readonly releasedAt?: string;
  readonly [extra: string]: unknown;
}

/**
 * How long a job's lease lasts from each renewal: three schedule periods, so a pass or two that
 * fail do not free it, and a controller gone for good frees it in 15 minutes.
 */
export const JOB_LEASE_MINUTES = 15;

/**
 * Who else holds the lease, or undefined when it is free for the run's jobs: absent, released,
 * expired, unreadable, or held by one of them (`isOwn`: a job name of the run, whether or not
 * the job exists: a start SageMaker refused leaves its name there) (contract section 7).
 */
export function otherHolder(
  lease: LeaseDocument | undefined,
  isOwn: (holder: string) => boolean,
  now: Date,
): { holder: string; until: string } | undefined {
  if (!lease || lease.released || isOwn(String(lease.holder))) return undefined;
  const until = Date.parse(lease.expiresAt);
  if (!Number.isFinite(until) || until <= now.getTime()) return undefined;
  return { holder: String(lease.holder), until: lease.expiresAt };
}

export async function readLease(s3: S3Client, bucket: string, runId: string) {
  return readJson<LeaseDocument>(s3, bucket, leaseKey(runId));
}

/**
 * Take or renew the lease for `holder` (a job of the run); false when another holder has it
 * (an instance took it first).
 */
export function holdLease(
  s3: S3Client,
  bucket: string,
  runId: string,
  holder: string,
  isOwn: (holder: string) => boolean,
  now: Date,
  stored?: Stored<LeaseDocument>,
): Promise<boolean> {
  return changeLease(s3, bucket, runId, stored, (current) => {
    if (otherHolder(current, isOwn, now) !== undefined) return undefined;
    return {
      schemaVersion: SCHEMA_VERSION,
      runId,
      holder,
      renewedAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + JOB_LEASE_MINUTES * 60_000).toISOString(),
      released: false,
    };
  });
}

/** Release the lease if one of the run's jobs holds it (its job ended). */
export function releaseLease(
  s3: S3Client,
  bucket: string,
  runId: string,
  isOwn: (holder: string) => boolean,
  now: Date,
  stored?: Stored<LeaseDocument>,
): Promise<boolean> {
  return changeLease(s3, bucket, runId, stored, (current) => {
    if (!current || current.released || !isOwn(String(current.holder))) return undefined;
    return { ...current, released: true, releasedAt: now.toISOString() };
  });
}

/** Write `change(current)` conditionally (undefined: leave it); whether it wrote. */
async function changeLease(
  s3: S3Client,
  bucket: string,
  runId: string,
  stored: Stored<LeaseDocument> | undefined,
  change: (current?: LeaseDocument) => LeaseDocument | undefined,
): Promise<boolean> {
  let wrote = false;
  await updateJson<LeaseDocument>(
    s3,
    bucket,
    leaseKey(runId),
    stored ?? (await readLease(s3, bucket, runId)),
    (current) => {
      const next = change(current);
      wrote = next !== undefined;
      return next;
    },
  );
  return wrote;
}
