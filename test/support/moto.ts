/** AWS SDK v3 clients pointed at the moto server that globalSetup started (MOTO_URL). */
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { EC2Client } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';

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
