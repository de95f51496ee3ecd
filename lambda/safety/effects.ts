/**
 * Effects the safety Lambda and the SageMaker job controller (lambda/jobs/handler.ts) perform the
 * same way: a step whose failure goes into the pass's report instead of ending the pass, and a
 * run message published to the alerts topic (contract section 5) and kept in the run's
 * messages/ (contract section 12).
 */
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import type { MessageRecord } from '../../lib/contract';
import type { RunMessage } from './report';

/** Runs `action`; a failure is added to `failures` as "<what> failed: <error>". */
export async function attempt(
  failures: string[],
  what: string,
  action: () => Promise<unknown>,
): Promise<void> {
  try {
    await action();
  } catch (error) {
    failures.push(`${what} failed: ${errorMessage(error)}`);
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** The message on the alerts topic, with the run id and status as attributes to filter on. */
export function publishRunMessage(sns: SNSClient, topicArn: string, notice: RunMessage) {
  return sns.send(
    new PublishCommand({
      TopicArn: topicArn,
      Subject: notice.subject,
      Message: notice.body,
      MessageAttributes: {
        runId: { DataType: 'String', StringValue: notice.attributes.runId },
        status: { DataType: 'String', StringValue: notice.attributes.status },
      },
    }),
  );
}

/** The message as the run keeps it, at the key `messageRecord()` (report.ts) gives it. */
export function keepRunMessage(s3: S3Client, bucket: string, key: string, record: MessageRecord) {
  return s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: `${JSON.stringify(record, null, 2)}\n`,
      ContentType: 'application/json',
    }),
  );
}
