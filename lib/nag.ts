import { CfnResource, type Stack, Token, Validations } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type { IConstruct } from 'constructs';

/**
 * Acknowledge one cdk-nag finding on one resource, with the trade-off in one sentence.
 *
 * `construct` may be an L2: the acknowledgement goes on its CloudFormation resource, so it never
 * covers anything else. `finding` is the id synth prints after "Acknowledge with", e.g.
 * `AwsSolutions::AwsSolutions-IAM5[Resource::*]`.
 */
export function acknowledgeFinding(
  construct: IConstruct,
  finding: string,
  reason: string,
  /** checkov's id for the same concern on the same resource, acknowledged with the same reason */
  checkovCheck?: string,
): void {
  const resource = CfnResource.isCfnResource(construct)
    ? construct
    : (construct.node.defaultChild ?? construct);
  Validations.of(resource).acknowledge({ id: finding, reason });
  if (checkovCheck) acknowledgeCheckov(construct, checkovCheck, reason);
}

/** The start of an ARN as cdk-nag prints it in a finding id: tokens become `<AWS::...>`. */
export function nagArnPrefix(stack: Stack, service: string): string {
  const partition = Token.isUnresolved(stack.partition) ? '<AWS::Partition>' : stack.partition;
  const region = Token.isUnresolved(stack.region) ? '<AWS::Region>' : stack.region;
  return `arn:${partition}:${service}:${region}:<AWS::AccountId>`;
}

/**
 * Acknowledge one checkov check on one resource (CloudFormation metadata `checkov.skip`, which
 * checkov reads from the template), with the trade-off in one sentence. `make scan` runs checkov
 * on the synthesized template and fails on any finding not acknowledged this way.
 */
export function acknowledgeCheckov(construct: IConstruct, check: string, reason: string): void {
  const resource = CfnResource.isCfnResource(construct)
    ? construct
    : (construct.node.defaultChild as CfnResource | undefined);
  if (!resource) throw new Error(`${construct.node.path} has no CloudFormation resource`);
  const existing = (resource.getMetadata('checkov') as { skip?: unknown[] } | undefined) ?? {};
  resource.addMetadata('checkov', {
    ...existing,
    skip: [...(existing.skip ?? []), { id: check, comment: reason }],
  });
}

/**
 * A role's default policy (`role.node.findChild('DefaultPolicy')`): CDK's grants write it inline,
 * for that one role.
 */
export function acknowledgeGrantPolicy(policy: IConstruct): void {
  acknowledgeFinding(
    policy,
    'NIST.800.53.R5::NIST.800.53.R5-IAMNoInlinePolicy',
    'CDK grants write one policy owned by this role only; it lives and dies with the role.',
  );
}

/** A policy that grants publishing to the alerts topic, which its own KMS key encrypts. */
export function acknowledgeAlertsKeyUse(policy: IConstruct): void {
  acknowledgeFinding(
    policy,
    'AwsSolutions::AwsSolutions-IAM5[Action::kms:GenerateDataKey*]',
    'Publishing to the KMS-encrypted alerts topic needs data keys of that one key.',
  );
}

/** What differs between the Lambda functions that {@link acknowledgeApiOnlyFunction} covers. */
export interface ApiOnlyFunctionReasons {
  /** Why overlapping invocations do no harm, e.g. "overlapping runs are harmless because ...". */
  readonly overlap: string;
  /** What its environment variables hold, e.g. "names (stack, topic, bucket)". */
  readonly environment: string;
}

/**
 * A Lambda function that only calls AWS APIs (no reserved concurrency, no VPC, no secrets in its
 * environment) and the log group of its decision logs: the same trade-offs for each such function.
 */
export function acknowledgeApiOnlyFunction(
  fn: lambda.Function,
  logGroup: logs.ILogGroup,
  reasons: ApiOnlyFunctionReasons,
): void {
  acknowledgeFinding(
    fn,
    'NIST.800.53.R5::NIST.800.53.R5-LambdaConcurrency',
    'Reserved concurrency fails to deploy in accounts at the default 10-execution quota, and ' +
      reasons.overlap,
    'CKV_AWS_115',
  );
  acknowledgeFinding(
    fn,
    'NIST.800.53.R5::NIST.800.53.R5-LambdaInsideVPC',
    'It only calls AWS APIs; inside a VPC it would need NAT or interface endpoints ' +
      '(tens of USD a month) for no data-path benefit.',
    'CKV_AWS_117',
  );
  acknowledgeFinding(
    logGroup,
    'NIST.800.53.R5::NIST.800.53.R5-CloudWatchLogGroupEncrypted',
    'Decision logs hold no secrets; CloudWatch Logs encrypts them at rest with its own keys, ' +
      'and a customer key would add cost and key-policy coupling.',
    'CKV_AWS_158',
  );
  acknowledgeCheckov(
    fn,
    'CKV_AWS_173',
    `Its environment holds ${reasons.environment}, no secrets; Lambda encrypts it at rest with ` +
      'an AWS-managed key.',
  );
}
