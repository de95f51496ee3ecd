/** AWS SDK v3 clients pointed at the moto server that globalSetup started (MOTO_URL). */
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { EC2Client } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import { startMoto, stopMoto, type Moto } from './moto-server';

export const REGION = 'us-east-1';

export function motoUrl(): string {
  const url = process.env.MOTO_URL;
  if (!url) throw new Error('MOTO_URL is not set: jest globalSetup starts moto');
  return url;
}

/** Dummy credentials: moto accepts anything, and nothing can reach a real account. */
export function motoClientConfig() {
  return {
    endpoint: motoUrl(),
    region: REGION,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing', sessionToken: 'testing' },
  };
}

export function motoClients() {
  const config = motoClientConfig();
  return {
    ec2: new EC2Client(config),
    autoscaling: new AutoScalingClient(config),
    s3: new S3Client({ ...config, forcePathStyle: true }),
    sns: new SNSClient(config),
    sqs: new SQSClient(config),
  };
}

/** Forget every emulated resource (moto's /moto-api/reset). */
export async function resetMoto(): Promise<void> {
  const response = await fetch(`${motoUrl()}/moto-api/reset`, { method: 'POST' });
  if (!response.ok) throw new Error(`moto reset failed: ${response.status}`);
}

/**
 * A moto server of this test file's own for the whole file: MOTO_URL points at it from the
 * file's first beforeAll (call this before any other hook) and back at the shared one after.
 * For files that reset moto between tests: jest runs two files at once, and a reset would wipe
 * the other file's resources on a shared server. Create clients inside hooks or tests, not at
 * import time.
 */
export function useOwnMotoServer(): void {
  let moto: Moto | undefined;
  let shared: string | undefined;
  beforeAll(async () => {
    shared = process.env.MOTO_URL;
    moto = await startMoto();
    process.env.MOTO_URL = moto.url;
  }, 90_000);
  afterAll(async () => {
    await stopMoto(moto);
    process.env.MOTO_URL = shared;
  });
}
