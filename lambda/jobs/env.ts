/**
 * The job controller's environment: the names are shared by the construct that sets them
 * (lib/sagemaker.ts) and the handler that reads them, so they cannot drift apart.
 */

export const JOBS_ENV = {
  /** Jobs named `trainingJobStackPrefix(<this>)...` are the ones the controller owns. */
  stackName: 'TUNING_LAB_STACK_NAME',
  /** The stack's CloudFormation id: job names of this deployment carry a hash of it. */
  stackId: 'TUNING_LAB_STACK_ID',
  /** Where run messages go (contract section 5). */
  topicArn: 'TUNING_LAB_TOPIC_ARN',
  /** Holds `runs/<run-id>/` (ledger, messages, the job's run config). */
  outputsBucket: 'TUNING_LAB_OUTPUTS_BUCKET',
  /** The SSM parameter with the job settings (contract section 14). */
  jobSettingsParameter: 'TUNING_LAB_JOB_SETTINGS_PARAMETER',
  /** The region the Lambda runs in (set by the Lambda service itself). */
  region: 'AWS_REGION',
} as const;

export interface JobsEnv {
  readonly stackName: string;
  readonly stackId: string;
  readonly topicArn: string;
  readonly outputsBucket: string;
  readonly jobSettingsParameter: string;
  readonly region: string;
}

/** Read and check the environment once, at cold start; throws naming every missing variable. */
export function readJobsEnv(env: Record<string, string | undefined>): JobsEnv {
  const missing = Object.values(JOBS_ENV).filter((name) => !env[name]);
  if (missing.length > 0) {
    throw new Error(`job controller: missing environment variables ${missing.join(', ')}`);
  }
  return {
    stackName: env[JOBS_ENV.stackName] as string,
    stackId: env[JOBS_ENV.stackId] as string,
    topicArn: env[JOBS_ENV.topicArn] as string,
    outputsBucket: env[JOBS_ENV.outputsBucket] as string,
    jobSettingsParameter: env[JOBS_ENV.jobSettingsParameter] as string,
    region: env[JOBS_ENV.region] as string,
  };
}
