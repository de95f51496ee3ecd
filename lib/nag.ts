import { CfnResource, type Stack, Token, Validations } from 'aws-cdk-lib';
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
