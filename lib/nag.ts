import { CfnResource, type Stack, Token, Validations } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/**
 * Acknowledge one cdk-nag finding on one resource, with the trade-off in one sentence.
 *
 * `construct` may be an L2: the acknowledgement goes on its CloudFormation resource, so it never
 * covers anything else. `finding` is the id synth prints after "Acknowledge with", e.g.
 * `AwsSolutions::AwsSolutions-IAM5[Resource::*]`.
 */
export function acknowledgeFinding(construct: IConstruct, finding: string, reason: string): void {
  const resource = CfnResource.isCfnResource(construct)
    ? construct
    : (construct.node.defaultChild ?? construct);
  Validations.of(resource).acknowledge({ id: finding, reason });
}

/** The start of an ARN as cdk-nag prints it in a finding id: tokens become `<AWS::...>`. */
export function nagArnPrefix(stack: Stack, service: string): string {
  const partition = Token.isUnresolved(stack.partition) ? '<AWS::Partition>' : stack.partition;
  const region = Token.isUnresolved(stack.region) ? '<AWS::Region>' : stack.region;
  return `arn:${partition}:${service}:${region}:<AWS::AccountId>`;
}
