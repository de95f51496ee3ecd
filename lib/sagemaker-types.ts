/**
 * The SageMaker training instance types (`ml.*`) tuning-lab accepts with `backend=sagemaker`, with
 * their GPUs and vCPUs (the same hardware as the EC2 type of lib/instance-types.ts they are named
 * after) and their on-demand training price per hour. The one table behind the sagemaker
 * backend's config validation (lib/config.ts), the job cost meter, the doctor's quota check
 * (cli/doctor/sagemaker-quotas.ts), docs/backends.md and the trainer's copy
 * (instance_prices.json, `sagemaker_*` keys; scripts/docs/instance-prices.ts).
 *
 * Sources (docs/external-names.md, "SageMaker training instance types"; looked up 2026-12-01,
 * no live AWS page or API was reachable, so every figure is a public copy of AWS data):
 * - that each type exists for SageMaker training: its "ml.X for training job usage" and
 *   "ml.X for spot training job usage" Service Quotas (a public Service Quotas snapshot,
 *   cli/doctor/sagemaker-quotas.ts), and CreateTrainingJob's TrainingInstanceType values;
 * - GPUs and vCPUs: the EC2 twin's row of lib/instance-types.ts; a us-east-1 SageMaker table of
 *   2026-09-27 (public repository file, search index id 70282000957) gives the same vCPUs and GPU
 *   counts for all 31 types;
 * - us-east-1 price: that table of 2026-09-27 (SageMaker list price per instance-hour); for g5.xlarge
 *   and g5.2xlarge the Price List API's Training component (usagetype USE1-Train:ml.g5.2xlarge,
 *   read 2026-08-20) is exact where the table rounds (1.408, 1.515 against 1.41, 1.52);
 * - us-west-2 price: the Price List API's Training component (AmazonSageMaker, public repository
 *   file, search index id 67049560902, undated, read 2026-12-01) for g5, g6 and g6e except the
 *   16xlarge sizes; equal to the us-east-1 table on every type both list.
 * `trainingPriceConfirmed` is true where a source names the Training component for the type
 * (g5, g6 and g6e but their 16xlarge); for g4dn, g6.16xlarge, g6e.16xlarge, p4d and p5 the price
 * is the type's SageMaker list price, and older copies disagree on p4d and p5 (37.688 and
 * 98.32-113.07 USD before AWS's 2025 price cuts): check them before relying on a cost cap there.
 *
 * Managed spot training bills the job's BillableTimeInSeconds (x InstanceCount) at the on-demand
 * price: the spot discount shows as billable time shorter than training time, savings being
 * (1 - BillableTimeInSeconds / TrainingTimeInSeconds) x 100, "up to 90%" (SageMaker developer
 * guide, model-managed-spot-training; DescribeTrainingJob.BillableTimeInSeconds). So a job's cost
 * is billable seconds x instance count x `onDemandUsdPerHour` / 3600 in either market.
 *
 * Imported by the safety Lambda's cost meter: no aws-cdk-lib, no AWS SDK.
 */
import { INSTANCE_TYPES, type InstanceTypeInfo } from './instance-types';

export interface SageMakerTypeInfo extends InstanceTypeInfo {
  /** The EC2 type with the same GPUs and vCPUs (lib/instance-types.ts). */
  readonly ec2Type: string;
  /** On-demand SageMaker training USD per hour and instance in us-east-1. */
  readonly onDemandUsdPerHour: number;
  /** true where a source gives the Training component's price, false for the list price. */
  readonly trainingPriceConfirmed: boolean;
}

/** The date of the us-east-1 table (the newest source; see the module comment). */
export const SAGEMAKER_PRICE_DATE = '2026-09-27';
export const SAGEMAKER_PRICE_SOURCE =
  'SageMaker us-east-1 list prices of 2026-09-27 and the AWS Price List API Training component ' +
  '(USE1-Train, 2026-08-20; us-west-2), as copied in public repositories (docs/external-names.md)';

/** Managed spot: what SageMaker documents about its bill (developer guide, managed spot). */
export const MANAGED_SPOT = {
  maxSavingsPercent: 90,
  billing:
    'BillableTimeInSeconds x InstanceCount at the on-demand price; savings = ' +
    '(1 - BillableTimeInSeconds / TrainingTimeInSeconds) x 100',
} as const;

function ml(ec2Type: string, usdPerHour: number, confirmed: boolean): SageMakerTypeInfo {
  const twin = INSTANCE_TYPES[ec2Type];
  if (!twin) throw new Error(`${ec2Type} is not in lib/instance-types.ts`);
  return {
    ...twin,
    ec2Type,
    onDemandUsdPerHour: usdPerHour,
    trainingPriceConfirmed: confirmed,
  };
}

/** Keys are the only SageMaker training types the stack accepts, in lib/instance-types.ts's order. */
export const SAGEMAKER_INSTANCE_TYPES: Readonly<Record<string, SageMakerTypeInfo>> = {
  'ml.g4dn.xlarge': ml('g4dn.xlarge', 0.7364, false),
  'ml.g4dn.2xlarge': ml('g4dn.2xlarge', 0.94, false),
  'ml.g4dn.4xlarge': ml('g4dn.4xlarge', 1.505, false),
  'ml.g4dn.8xlarge': ml('g4dn.8xlarge', 2.72, false),
  'ml.g4dn.16xlarge': ml('g4dn.16xlarge', 5.44, false),
  'ml.g5.xlarge': ml('g5.xlarge', 1.408, true),
  'ml.g5.2xlarge': ml('g5.2xlarge', 1.515, true),
  'ml.g5.4xlarge': ml('g5.4xlarge', 2.03, true),
  'ml.g5.8xlarge': ml('g5.8xlarge', 3.06, true),
  'ml.g5.16xlarge': ml('g5.16xlarge', 5.12, true),
  'ml.g6.xlarge': ml('g6.xlarge', 1.127, true),
  'ml.g6.2xlarge': ml('g6.2xlarge', 1.222, true),
  'ml.g6.4xlarge': ml('g6.4xlarge', 1.654, true),
  'ml.g6.8xlarge': ml('g6.8xlarge', 2.518, true),
  'ml.g6.16xlarge': ml('g6.16xlarge', 4.246, false),
  'ml.g6e.xlarge': ml('g6e.xlarge', 2.61, true),
  'ml.g6e.2xlarge': ml('g6e.2xlarge', 2.8, true),
  'ml.g6e.4xlarge': ml('g6e.4xlarge', 3.76, true),
  'ml.g6e.8xlarge': ml('g6e.8xlarge', 5.66, true),
  'ml.g6e.16xlarge': ml('g6e.16xlarge', 9.47, false),
  'ml.g5.12xlarge': ml('g5.12xlarge', 7.09, true),
  'ml.g5.24xlarge': ml('g5.24xlarge', 10.18, true),
  'ml.g5.48xlarge': ml('g5.48xlarge', 20.36, true),
  'ml.g6.12xlarge': ml('g6.12xlarge', 5.752, true),
  'ml.g6.24xlarge': ml('g6.24xlarge', 8.344, true),
  'ml.g6.48xlarge': ml('g6.48xlarge', 16.688, true),
  'ml.g6e.12xlarge': ml('g6e.12xlarge', 13.12, true),
  'ml.g6e.24xlarge': ml('g6e.24xlarge', 18.83, true),
  'ml.g6e.48xlarge': ml('g6e.48xlarge', 37.66, true),
  'ml.p4d.24xlarge': ml('p4d.24xlarge', 25.2513, false),
  'ml.p5.48xlarge': ml('p5.48xlarge', 63.296, false),
};

/** The SageMaker training types the stack accepts, in the table's order (a config's list). */
export const SUPPORTED_SAGEMAKER_INSTANCE_TYPES: readonly string[] =
  Object.keys(SAGEMAKER_INSTANCE_TYPES);

/** The figures of `instanceType` (`ml.g5.2xlarge`), or undefined for a type not accepted. */
export function sageMakerTypeInfo(instanceType: string): SageMakerTypeInfo | undefined {
  return Object.hasOwn(SAGEMAKER_INSTANCE_TYPES, instanceType)
    ? SAGEMAKER_INSTANCE_TYPES[instanceType]
    : undefined;
}

/** us-east-1 training USD per hour of every accepted type. */
export const SAGEMAKER_USD_PER_HOUR: Readonly<Record<string, number>> = Object.fromEntries(
  Object.entries(SAGEMAKER_INSTANCE_TYPES).map(([type, info]) => [type, info.onDemandUsdPerHour]),
);

/**
 * Training USD per hour in the regions a source priced (types a source did not list are absent).
 * us-west-2: the Price List API's Training component (see the module comment).
 */
export const SAGEMAKER_REGIONAL_USD_PER_HOUR: Readonly<
  Record<string, Readonly<Record<string, number>>>
> = {
  'us-east-1': SAGEMAKER_USD_PER_HOUR,
  'us-west-2': {
    'ml.g5.xlarge': 1.408,
    'ml.g5.2xlarge': 1.515,
    'ml.g5.4xlarge': 2.03,
    'ml.g5.8xlarge': 3.06,
    'ml.g5.16xlarge': 5.12,
    'ml.g6.xlarge': 1.127,
    'ml.g6.2xlarge': 1.222,
    'ml.g6.4xlarge': 1.654,
    'ml.g6.8xlarge': 2.518,
    'ml.g6e.xlarge': 2.61,
    'ml.g6e.2xlarge': 2.8,
    'ml.g6e.4xlarge': 3.76,
    'ml.g6e.8xlarge': 5.66,
    'ml.g5.12xlarge': 7.09,
    'ml.g5.24xlarge': 10.18,
    'ml.g5.48xlarge': 20.36,
    'ml.g6.12xlarge': 5.752,
    'ml.g6.24xlarge': 8.344,
    'ml.g6.48xlarge': 16.688,
    'ml.g6e.12xlarge': 13.12,
    'ml.g6e.24xlarge': 18.83,
    'ml.g6e.48xlarge': 37.66,
  },
};

/**
 * Markup on the us-east-1 price for a region or type without a listed price: lib/pricing.ts's
 * OTHER_REGION_FACTOR for EC2 (1.75, above every regional EC2 ratio found). No SageMaker regional
 * table outside the US was found to check it against.
 */
export const SAGEMAKER_OTHER_REGION_FACTOR = 1.75;

export interface TrainingPrice {
  readonly usdPerHour: number;
  /** true when the region's table lacks the type and the price is the markup estimate. */
  readonly estimated: boolean;
}

/** The on-demand training price of `instanceType` in `region`, or undefined for an unknown type. */
export function sageMakerTrainingPrice(
  instanceType: string,
  region: string,
): TrainingPrice | undefined {
  const info = sageMakerTypeInfo(instanceType);
  if (!info) return undefined;
  const listed = SAGEMAKER_REGIONAL_USD_PER_HOUR[region]?.[instanceType];
  if (listed !== undefined) return { usdPerHour: listed, estimated: false };
  const estimate = Math.round(info.onDemandUsdPerHour * SAGEMAKER_OTHER_REGION_FACTOR * 1e4) / 1e4;
  return { usdPerHour: estimate, estimated: true };
}

/**
 * What a job has cost: its billable seconds (DescribeTrainingJob.BillableTimeInSeconds, per
 * instance) x InstanceCount at the training price. Managed spot included: SageMaker shows the spot
 * discount as fewer billable seconds, not a lower price.
 */
export function sageMakerJobCostUsd(
  instanceType: string,
  region: string,
  billableSeconds: number,
  instanceCount: number,
): number | undefined {
  const price = sageMakerTrainingPrice(instanceType, region);
  if (!price) return undefined;
  return (billableSeconds / 3600) * instanceCount * price.usdPerHour;
}
