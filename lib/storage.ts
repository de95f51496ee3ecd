import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { acknowledgeCheckov, acknowledgeFinding } from './nag';

export interface TrainingStorageProps {
  /**
   * Keep the buckets (and their data and models) when the stack is deleted.
   * @default true - buckets are retained; false deletes them with the stack (they must be empty)
   */
  readonly retainData?: boolean;
  /**
   * Move objects under `runs/` in the outputs bucket to S3 Standard-IA after this many days.
   * @default - no transition: runs stay in S3 Standard
   */
  readonly runsTransitionAfterDays?: number;
  /**
   * Days after which noncurrent object versions are deleted (overwritten or deleted objects).
   * @default 30
   */
  readonly noncurrentVersionExpirationDays?: number;
  /**
   * Days the S3 server access logs are kept.
   * @default 365
   */
  readonly accessLogRetentionDays?: number;
}

/**
 * The storage layer: a data bucket (datasets the user uploads), an outputs bucket (runs:
 * checkpoints, final models, ledgers) and an access-log bucket for both.
 *
 * Every bucket is SSE-S3 encrypted, SSL-only, versioned, blocks all public access and aborts
 * incomplete multipart uploads. SSE-S3 rather than KMS: multi-GB checkpoints would otherwise pay
 * a KMS request per part, and the instance role would need key grants for nothing gained here.
 */
export class TrainingStorage extends Construct {
  /** Datasets: read by the instance. */
  public readonly dataBucket: s3.IBucket;
  /** Runs: written by the instance under `runs/<run-id>/`, ledgers updated by the safety Lambda. */
  public readonly outputsBucket: s3.IBucket;
  /** S3 server access logs of the two buckets above. */
  public readonly accessLogsBucket: s3.IBucket;

  constructor(scope: Construct, id: string, props: TrainingStorageProps = {}) {
    super(scope, id);
    const retainData = props.retainData ?? true;
    const noncurrentDays = props.noncurrentVersionExpirationDays ?? 30;
    const accessLogDays = props.accessLogRetentionDays ?? 365;
    // Data and models are the user's work: retained unless they explicitly opt out. Buckets are
    // never emptied automatically (that would need a custom resource and could lose models).
    const removalPolicy = retainData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;

    const secureDefaults = {
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: true,
      removalPolicy,
    };
    const abortMultipart: s3.LifecycleRule = {
      id: 'abort-incomplete-multipart-uploads',
      abortIncompleteMultipartUploadAfter: Duration.days(7),
    };
    const expireNoncurrent: s3.LifecycleRule = {
      id: 'expire-noncurrent-versions',
      noncurrentVersionExpiration: Duration.days(noncurrentDays),
    };

    const accessLogs = new s3.Bucket(this, 'AccessLogsBucket', {
      ...secureDefaults,
      // S3 log delivery writes with the bucket owner enforced; the CDK adds the bucket policy.
      lifecycleRules: [
        abortMultipart,
        expireNoncurrent,
        { id: 'expire-access-logs', expiration: Duration.days(accessLogDays) },
      ],
    });

    this.dataBucket = new s3.Bucket(this, 'DataBucket', {
      ...secureDefaults,
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: 'data-bucket/',
      lifecycleRules: [abortMultipart, expireNoncurrent],
    });

    const runsTransition: s3.LifecycleRule[] =
      props.runsTransitionAfterDays === undefined
        ? []
        : [
            {
              id: 'transition-old-runs',
              prefix: 'runs/',
              transitions: [
                {
                  storageClass: s3.StorageClass.INFREQUENT_ACCESS,
                  transitionAfter: Duration.days(props.runsTransitionAfterDays),
                },
              ],
            },
          ];
    this.outputsBucket = new s3.Bucket(this, 'OutputsBucket', {
      ...secureDefaults,
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: 'outputs-bucket/',
      lifecycleRules: [abortMultipart, expireNoncurrent, ...runsTransition],
    });
    this.accessLogsBucket = accessLogs;
    acknowledgeCheckov(
      accessLogs,
      'CKV_AWS_18',
      'The access-log bucket itself: logging its own writes would log the logging.',
    );

    for (const bucket of [accessLogs, this.dataBucket, this.outputsBucket]) {
      acknowledgeFinding(
        bucket,
        'NIST.800.53.R5::NIST.800.53.R5-S3DefaultEncryptionKMS',
        'SSE-S3 (AES-256) encrypts at rest; a KMS key would add a KMS request per part of ' +
          'every multi-GB checkpoint and key grants for every reader.',
      );
      acknowledgeFinding(
        bucket,
        'NIST.800.53.R5::NIST.800.53.R5-S3BucketReplicationEnabled',
        'Versioning protects against overwrites; a cross-region replica would double the ' +
          'storage bill of a single-user lab, so it is left to the user.',
      );
    }
  }
}
