/**
 * The CreateTrainingJob request of one attempt of a run (contract section 14), as plain data:
 * the handler sends it with the SageMaker client, the tests send it to moto through the real
 * SDK. No AWS imports: the shape follows the SDK's CreateTrainingJobRequest, which type-checks
 * it where it is sent.
 */
import {
  jobOutputPrefix,
  jobRunConfigKey,
  SAGEMAKER_CHECKPOINT_LOCAL_PATH,
  TAG_KEYS,
  type JobSettingsDocument,
} from '../../lib/contract';
import { stoppingCondition } from './decide';

/**
 * What the trainer finds in its environment under SageMaker (contract section 14), besides
 * SageMaker's own (`TRAINING_JOB_NAME`, by which it knows it runs in a job, and /opt/ml).
 */
export const TRAINER_ENV = {
  /** The run config the controller wrote for the job (the trainer's `--config` default). */
  config: 'TUNING_CONFIG',
  outputUri: 'LLM_OUTPUT__URI',
  dataRoot: 'LLM_DATA__ROOT',
  /** SageMaker, not IMDS, tells the container of a spot interruption (SIGTERM). */
  spotPolling: 'LLM_INTERRUPTION__SPOT_POLLING',
} as const;

/** SageMaker's own retries of its internal errors within one job (not the trainer's failures). */
export const SAGEMAKER_RETRY_ATTEMPTS = 2;

export interface JobRequestInput {
  readonly settings: JobSettingsDocument;
  readonly jobName: string;
  readonly outputsBucket: string;
  /** The image this attempt runs: the run's pinned digest, else the settings' tag. */
  readonly imageUri: string;
}

/** The CreateTrainingJob request (the SDK's CreateTrainingJobRequest shape). */
export function trainingJobRequest(input: JobRequestInput) {
  const { settings, jobName, outputsBucket, imageUri } = input;
  const runUri = settings.outputUri.replace(/\/+$/, '');
  const configUri = `s3://${outputsBucket}/${jobRunConfigKey(settings.runId)}`;
  const { maxRuntimeSeconds, maxWaitSeconds } = stoppingCondition(settings);
  return {
    TrainingJobName: jobName,
    RoleArn: settings.executionRoleArn,
    AlgorithmSpecification: {
      TrainingImage: imageUri,
      TrainingInputMode: 'File' as const,
      // The image's entrypoint gets `train` (SageMaker's container contract).
    },
    Environment: {
      [TRAINER_ENV.config]: configUri,
      [TRAINER_ENV.outputUri]: runUri,
      [TRAINER_ENV.dataRoot]: settings.dataRootUri,
      [TRAINER_ENV.spotPolling]: 'never',
      AWS_REGION: settings.region,
      AWS_DEFAULT_REGION: settings.region,
    },
    OutputDataConfig: { S3OutputPath: `s3://${outputsBucket}/${jobOutputPrefix(settings.runId)}` },
    // SageMaker copies the run's checkpoints in at job start; the trainer only reads that copy
    // and publishes to S3 itself, so the sync's deletes never remove a published checkpoint.
    CheckpointConfig: {
      S3Uri: `${runUri}/checkpoints/`,
      LocalPath: SAGEMAKER_CHECKPOINT_LOCAL_PATH,
    },
    ResourceConfig: {
      InstanceType: settings.instanceType as never,
      InstanceCount: settings.instanceCount,
      VolumeSizeInGB: settings.volumeSizeGiB,
    },
    StoppingCondition: {
      MaxRuntimeInSeconds: maxRuntimeSeconds,
      ...(maxWaitSeconds === undefined ? {} : { MaxWaitTimeInSeconds: maxWaitSeconds }),
    },
    EnableManagedSpotTraining: settings.useSpot,
    // Only several hosts talk to each other; encrypting that traffic costs training time (and so
    // money; AWS gives no figure, docs/backends.md), which a one-host job does not pay.
    EnableInterContainerTrafficEncryption: settings.instanceCount > 1,
    // The trainer reads its data and publishes its checkpoints to S3 itself.
    EnableNetworkIsolation: false,
    RetryStrategy: { MaximumRetryAttempts: SAGEMAKER_RETRY_ATTEMPTS },
    Tags: [
      { Key: TAG_KEYS.stack, Value: settings.stackName },
      { Key: TAG_KEYS.runId, Value: settings.runId },
    ],
  };
}
