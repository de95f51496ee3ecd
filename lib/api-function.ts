import { type CfnResource, type Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';

export interface ApiFunctionProps {
  /** Construct ids of the function, its role and its log group (their logical ids). */
  readonly ids: { readonly function: string; readonly role: string; readonly logs: string };
  readonly description: string;
  readonly roleDescription: string;
  /** The handler's TypeScript file (its export `handler`), bundled by esbuild. */
  readonly entry: string;
  readonly timeout: Duration;
  readonly environment: Record<string, string>;
  /** Where a failed invocation is reported (the dead-letter topic). */
  readonly alertsTopic: sns.ITopic;
  /** Keep the log group when the stack is deleted. */
  readonly retainLogs: boolean;
}

/**
 * A Lambda of the stack that only calls AWS APIs on a schedule (the safety Lambda, the job
 * controller): Node.js 24 on ARM, its own role and log group (JSON, three months), no retry of a
 * failed invocation (the schedule comes back in 5 minutes) and the failure reported to the
 * alerts topic. The caller adds the role's grants and acknowledges its cdk-nag findings
 * (lib/nag.ts, `acknowledgeApiOnlyFunction`).
 */
export function newApiFunction(
  scope: Construct,
  props: ApiFunctionProps,
): { fn: nodejs.NodejsFunction; role: iam.Role; logGroup: logs.LogGroup } {
  const logGroup = new logs.LogGroup(scope, props.ids.logs, {
    retention: logs.RetentionDays.THREE_MONTHS,
    removalPolicy: props.retainLogs ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
  });
  const role = new iam.Role(scope, props.ids.role, {
    description: props.roleDescription,
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
  });
  logGroup.grantWrite(role);
  const fn = new nodejs.NodejsFunction(scope, props.ids.function, {
    role,
    description: props.description,
    entry: props.entry,
    handler: 'handler',
    runtime: lambda.Runtime.NODEJS_24_X,
    architecture: lambda.Architecture.ARM_64,
    memorySize: 256,
    timeout: props.timeout,
    logGroup,
    loggingFormat: lambda.LoggingFormat.JSON,
    applicationLogLevelV2: lambda.ApplicationLogLevel.INFO,
    systemLogLevelV2: lambda.SystemLogLevel.WARN,
    retryAttempts: 0,
    deadLetterTopic: props.alertsTopic,
    environment: props.environment,
    bundling: { minify: true, sourceMap: true, target: 'node24' },
  });
  // cfn-lint W3005: the L2 adds DependsOn on the role although Fn::GetAtt already orders them.
  (fn.node.defaultChild as CfnResource).addMetadata('cfn-lint', {
    config: { ignore_checks: ['W3005'] },
    reason:
      'W3005: DependsOn on the role is added by the CDK Function construct; redundant, harmless.',
  });
  return { fn, role, logGroup };
}
