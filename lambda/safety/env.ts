/**
 * The safety Lambda's environment: the names are shared by the construct that sets them
 * (lib/safety.ts) and the handler that reads them, so they cannot drift apart.
 */

export const SAFETY_ENV = {
  /** Instances tagged `tuning-lab:stack=<this>` are the ones the Lambda watches. */
  stackName: 'TUNING_LAB_STACK_NAME',
  /** Where stop notices go (contract section 5). */
  topicArn: 'TUNING_LAB_TOPIC_ARN',
  /** Holds `runs/<run-id>/ledger.json`. */
  outputsBucket: 'TUNING_LAB_OUTPUTS_BUCKET',
  /** Runtime limit for an instance of this stack whose limit tag is missing or unreadable. */
  defaultMaxRuntimeHours: 'TUNING_LAB_DEFAULT_MAX_RUNTIME_HOURS',
  /** The region the Lambda runs in (set by the Lambda service itself). */
  region: 'AWS_REGION',
} as const;

export interface SafetyEnv {
  readonly stackName: string;
  readonly topicArn: string;
  readonly outputsBucket: string;
  readonly defaultMaxRuntimeHours: number;
  readonly region: string;
}

/** Read and check the environment once, at cold start; throws naming every missing variable. */
export function readSafetyEnv(env: Record<string, string | undefined>): SafetyEnv {
  const missing = Object.values(SAFETY_ENV).filter((name) => !env[name]);
  if (missing.length > 0) {
    throw new Error(`safety Lambda: missing environment variables ${missing.join(', ')}`);
  }
  const positive = (name: string, unit: string): number => {
    const value = Number(env[name]);
    if (!Number.isFinite(value) || value <= 0) {
      throw new Error(`safety Lambda: ${name} must be a number of ${unit} > 0, got '${env[name]}'`);
    }
    return value;
  };
  return {
    stackName: env[SAFETY_ENV.stackName] as string,
    topicArn: env[SAFETY_ENV.topicArn] as string,
    outputsBucket: env[SAFETY_ENV.outputsBucket] as string,
    defaultMaxRuntimeHours: positive(SAFETY_ENV.defaultMaxRuntimeHours, 'hours'),
    region: env[SAFETY_ENV.region] as string,
  };
}
