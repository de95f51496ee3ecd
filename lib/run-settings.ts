import { Annotations, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import {
  runSettingsParameterName,
  type JobSettingsDocument,
  type RunSettingsDocument,
} from './contract';
import { UserInputError } from './errors';

/** SSM String parameters hold at most 4 KB in the Standard tier, 8 KB in the Advanced tier. */
export const STANDARD_PARAMETER_LIMIT_BYTES = 4096;
export const ADVANCED_PARAMETER_LIMIT_BYTES = 8192;

export interface RunSettingsParameterProps {
  /**
   * The document of contract section 1 (EC2) or 14 (SageMaker job settings); may contain tokens
   * (bucket names, ARNs).
   */
  readonly document: RunSettingsDocument | JobSettingsDocument;
  /** Principals that read it (the instance role, or the job controller). */
  readonly readers: readonly iam.IGrantable[];
  /**
   * The parameter's name.
   * @default - `/tuning-lab/<stackName>/run-settings`, which the instance reads
   */
  readonly parameterName?: string;
}

/**
 * The run settings (docs/contracts.md section 1) as the SSM parameter
 * `/tuning-lab/<stackName>/run-settings`, which the instance reads at boot.
 */
export class RunSettingsParameter extends Construct {
  public readonly parameter: ssm.IStringParameter;

  constructor(scope: Construct, id: string, props: RunSettingsParameterProps) {
    super(scope, id);
    const stack = Stack.of(this);
    // Tokens are JSON-encoded into an Fn::Join; the size check measures the resolved-at-synth
    // part, with each token counted at a generous 100 bytes (ARNs and bucket names are shorter).
    const value = stack.toJsonString(props.document);
    const size = estimateBytes(JSON.stringify(props.document));
    if (size > ADVANCED_PARAMETER_LIMIT_BYTES) {
      // A deploy would fail at the parameter, after the rest of the stack was created.
      throw new UserInputError(
        `The run settings would be ~${size} bytes, over the ${ADVANCED_PARAMETER_LIMIT_BYTES} ` +
          'bytes an SSM parameter holds; shorten the run config (runConfig).',
      );
    }
    const advanced = size > STANDARD_PARAMETER_LIMIT_BYTES;
    if (advanced) {
      Annotations.of(this).addWarningV2(
        'tuning-lab:run-settings-advanced-tier',
        `The run settings are ~${size} bytes, over the 4 KB of a Standard SSM parameter: using ` +
          'the Advanced tier (about 0.05 USD per month). A shorter run config avoids it.',
      );
    }
    this.parameter = new ssm.StringParameter(this, 'Parameter', {
      parameterName: props.parameterName ?? runSettingsParameterName(stack.stackName),
      description:
        props.parameterName === undefined
          ? 'tuning-lab run settings (docs/contracts.md section 1)'
          : 'tuning-lab job settings (docs/contracts.md section 14)',
      stringValue: value,
      tier: advanced ? ssm.ParameterTier.ADVANCED : ssm.ParameterTier.STANDARD,
    });
    for (const reader of props.readers) this.parameter.grantRead(reader);
  }
}

function estimateBytes(value: string): number {
  const tokens = value.match(/\$\{Token\[[^\]]+\]\}/g) ?? [];
  const literal = value.replace(/\$\{Token\[[^\]]+\]\}/g, '');
  return Buffer.byteLength(literal, 'utf8') + tokens.length * 100;
}
