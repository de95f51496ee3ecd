/**
 * On-demand prices of the GPU instance types tuning-lab allows, in USD per hour (Linux, shared
 * tenancy), per region.
 *
 * Sources (docs/external-names.md, checked 2026-12-01; no live AWS page was reachable):
 * - us-east-1: the AWS Pricing API as vendored by aws/karpenter-provider-aws
 *   (pkg/providers/pricing/zz_generated.pricing_aws.go, generated 2026-07-20), equal on every
 *   type to the instances.vantage.sh data below;
 * - the other regions of REGIONAL_USD_PER_HOUR: instances.vantage.sh's instances.json (Linux
 *   on-demand), as of 2026-01-21; a type a region did not offer then is absent there.
 *
 * A region or type without a price is estimated as the us-east-1 price times
 * OTHER_REGION_FACTOR, above the highest regional ratio found (sa-east-1, 1.70 for g4dn, g5 and
 * g6), so a cost cap errs on the early side; synth warns when it is used. Refresh the tables and
 * their dates together (docs/costs.md says how).
 *
 * Only single-GPU sizes are listed, and so only they are accepted: the trainer runs one process
 * on one GPU, and on a 4- or 8-GPU size the others would be paid for and idle (multi-GPU
 * training is future work, docs/design.md section 7). P3 is not: no current Deep Learning AMI
 * supports it (lib/config.ts says so at synth).
 *
 * Imported by the stack (run settings) and the safety Lambda (cost caps), so it must not import
 * aws-cdk-lib or an AWS SDK.
 */

/** The date of the oldest figure in the tables (the regional prices). */
export const PRICE_TABLE_DATE = '2026-01-21';
/** The date of the us-east-1 figures (ON_DEMAND_USD_PER_HOUR). */
export const US_EAST_1_PRICE_DATE = '2026-07-20';
export const PRICE_TABLE_SOURCE =
  'AWS Pricing API via aws/karpenter-provider-aws (us-east-1, 2026-07-20) and ' +
  'instances.vantage.sh (other regions, 2026-01-21)';

/** Markup on the us-east-1 price for a region or type the tables lack (an upper-end estimate). */
export const OTHER_REGION_FACTOR = 1.75;

/** USD per hour, us-east-1. Keys are the only instance types the stack accepts. */
export const ON_DEMAND_USD_PER_HOUR: Readonly<Record<string, number>> = {
  // g4dn: NVIDIA T4 (Turing, 16 GB)
  'g4dn.xlarge': 0.526,
  'g4dn.2xlarge': 0.752,
  'g4dn.4xlarge': 1.204,
  'g4dn.8xlarge': 2.176,
  'g4dn.16xlarge': 4.352,
  // g5: NVIDIA A10G (Ampere, 24 GB)
  'g5.xlarge': 1.006,
  'g5.2xlarge': 1.212,
  'g5.4xlarge': 1.624,
  'g5.8xlarge': 2.448,
  'g5.16xlarge': 4.096,
  // g6: NVIDIA L4 (Ada, 24 GB)
  'g6.xlarge': 0.8048,
  'g6.2xlarge': 0.9776,
  'g6.4xlarge': 1.3232,
  'g6.8xlarge': 2.0144,
  'g6.16xlarge': 3.3968,
  // g6e: NVIDIA L40S (Ada, 48 GB)
  'g6e.xlarge': 1.861,
  'g6e.2xlarge': 2.24208,
  'g6e.4xlarge': 3.00424,
  'g6e.8xlarge': 4.52856,
  'g6e.16xlarge': 7.57719,
};

/** USD per hour in the other regions with a table (types a region did not offer are absent). */
export const REGIONAL_USD_PER_HOUR: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  'us-east-1': ON_DEMAND_USD_PER_HOUR,
  'us-east-2': ON_DEMAND_USD_PER_HOUR, // the same prices as us-east-1 in the source
  'us-west-2': ON_DEMAND_USD_PER_HOUR, // the same prices as us-east-1 in the source
  'eu-west-1': {
    'g4dn.xlarge': 0.587,
    'g4dn.2xlarge': 0.838,
    'g4dn.4xlarge': 1.342,
    'g4dn.8xlarge': 2.426,
    'g4dn.16xlarge': 4.853,
    'g5.xlarge': 1.123,
    'g5.2xlarge': 1.35296,
    'g5.4xlarge': 1.81287,
    'g5.8xlarge': 2.73271,
    'g5.16xlarge': 4.57237,
  },
  'eu-central-1': {
    'g4dn.xlarge': 0.658,
    'g4dn.2xlarge': 0.94,
    'g4dn.4xlarge': 1.505,
    'g4dn.8xlarge': 2.72,
    'g4dn.16xlarge': 5.44,
    'g5.xlarge': 1.258,
    'g5.2xlarge': 1.5156,
    'g5.4xlarge': 2.03081,
    'g5.8xlarge': 3.06122,
    'g5.16xlarge': 5.12204,
    'g6.xlarge': 1.0064,
    'g6.2xlarge': 1.22249,
    'g6.4xlarge': 1.65466,
    'g6.8xlarge': 2.519,
    'g6.16xlarge': 4.24769,
    'g6e.xlarge': 2.327,
    'g6e.2xlarge': 2.8035,
    'g6e.4xlarge': 3.75651,
    'g6e.8xlarge': 5.66252,
    'g6e.16xlarge': 9.47454,
  },
  'ap-northeast-1': {
    'g4dn.xlarge': 0.71,
    'g4dn.2xlarge': 1.015,
    'g4dn.4xlarge': 1.625,
    'g4dn.8xlarge': 2.938,
    'g4dn.16xlarge': 5.875,
    'g5.xlarge': 1.459,
    'g5.2xlarge': 1.75776,
    'g5.4xlarge': 2.35528,
    'g5.8xlarge': 3.55033,
    'g5.16xlarge': 5.94042,
    'g6.xlarge': 1.1672,
    'g6.2xlarge': 1.41781,
    'g6.4xlarge': 1.91903,
    'g6.8xlarge': 2.92148,
    'g6.16xlarge': 4.92637,
    'g6e.xlarge': 2.699,
    'g6e.2xlarge': 3.25168,
    'g6e.4xlarge': 4.35703,
    'g6e.8xlarge': 6.56775,
    'g6e.16xlarge': 10.98917,
  },
  'ap-southeast-1': {
    'g4dn.xlarge': 0.736,
    'g4dn.2xlarge': 1.052,
    'g4dn.4xlarge': 1.685,
    'g4dn.8xlarge': 3.045,
    'g4dn.16xlarge': 6.089,
  },
  'ap-south-1': {
    'g4dn.xlarge': 0.579,
    'g4dn.2xlarge': 0.828,
    'g4dn.4xlarge': 1.325,
    'g4dn.8xlarge': 2.395,
    'g4dn.16xlarge': 4.791,
    'g5.xlarge': 1.208,
    'g5.2xlarge': 1.45536,
    'g5.4xlarge': 1.95009,
    'g5.8xlarge': 2.93955,
    'g5.16xlarge': 4.91846,
    'g6.xlarge': 0.9664,
    'g6.2xlarge': 1.1739,
    'g6.4xlarge': 1.58889,
    'g6.8xlarge': 2.41888,
    'g6.16xlarge': 4.07886,
  },
  'sa-east-1': {
    'g4dn.xlarge': 0.894,
    'g4dn.2xlarge': 1.278,
    'g4dn.4xlarge': 2.046,
    'g4dn.8xlarge': 3.698,
    'g4dn.16xlarge': 7.397,
    'g5.xlarge': 1.71,
    'g5.2xlarge': 2.06016,
    'g5.4xlarge': 2.76048,
    'g5.8xlarge': 4.16111,
    'g5.16xlarge': 6.96239,
    'g6.xlarge': 1.368,
    'g6.2xlarge': 1.66173,
    'g6.4xlarge': 2.24918,
    'g6.8xlarge': 3.42408,
    'g6.16xlarge': 5.77388,
  },
};

/** Regions with a price table. */
export const TABLE_REGIONS: readonly string[] = Object.keys(REGIONAL_USD_PER_HOUR);

/** The instance types the stack accepts: exactly the priced (single-GPU) ones. */
export const SUPPORTED_INSTANCE_TYPES: readonly string[] = Object.keys(ON_DEMAND_USD_PER_HOUR);

export interface OnDemandPrice {
  readonly usdPerHour: number;
  /** true when the region's table lacks the type and the price is the markup estimate. */
  readonly estimated: boolean;
}

/** The on-demand price of `instanceType` in `region`, or undefined for an unknown type. */
export function onDemandPrice(instanceType: string, region: string): OnDemandPrice | undefined {
  const base = ON_DEMAND_USD_PER_HOUR[instanceType];
  if (base === undefined) return undefined;
  const listed = REGIONAL_USD_PER_HOUR[region]?.[instanceType];
  if (listed !== undefined) return { usdPerHour: listed, estimated: false };
  return { usdPerHour: round4(base * OTHER_REGION_FACTOR), estimated: true };
}

function round4(value: number): number {
  return Math.round(value * 10_000) / 10_000;
}
