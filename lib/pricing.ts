/**
 * On-demand prices of the GPU instance types tuning-lab allows, in USD per hour (Linux).
 *
 * Written from memory of the AWS EC2 On-Demand pricing page (Linux, shared tenancy, us-east-1),
 * dated 2025-06-15, NOT fetched from AWS: the machine this was written on had no internet access.
 * Treat the figures as estimates and check current ones (docs/costs.md says how). us-east-2 and
 * us-west-2 are taken to list the same prices for these types. Other regions are estimated as
 * us-east-1 times OTHER_REGION_FACTOR, an upper-end regional markup, so a cost cap errs on the
 * early side; synth warns when that estimate is used. Refresh this table (and its date) when AWS
 * publishes new prices.
 *
 * Only single-GPU sizes are listed, and so only they are accepted: the trainer runs one process
 * on one GPU, and on a 4- or 8-GPU size the others would be paid for and idle (multi-GPU
 * training is future work, docs/design.md section 7).
 *
 * Imported by the stack (run settings) and the safety Lambda (cost caps), so it must not import
 * aws-cdk-lib or an AWS SDK.
 */

export const PRICE_TABLE_DATE = '2025-06-15';
export const PRICE_TABLE_SOURCE =
  'AWS EC2 On-Demand pricing page, Linux, us-east-1, from memory (not fetched)';

/** Regions whose on-demand prices equal the table's. */
export const TABLE_REGIONS: readonly string[] = ['us-east-1', 'us-east-2', 'us-west-2'];

/** Markup applied to the table for regions not in TABLE_REGIONS (an upper-end estimate). */
export const OTHER_REGION_FACTOR = 1.6;

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
  // p3: NVIDIA V100 (Volta, 16 GB): no bf16, needs the proprietary-driver AMI
  'p3.2xlarge': 3.06,
};

/** The instance types the stack accepts: exactly the priced (single-GPU) ones. */
export const SUPPORTED_INSTANCE_TYPES: readonly string[] = Object.keys(ON_DEMAND_USD_PER_HOUR);

export interface OnDemandPrice {
  readonly usdPerHour: number;
  /** true when the region is not in the table and the price is the markup estimate. */
  readonly estimated: boolean;
}

/** The on-demand price of `instanceType` in `region`, or undefined for an unknown type. */
export function onDemandPrice(instanceType: string, region: string): OnDemandPrice | undefined {
  const base = ON_DEMAND_USD_PER_HOUR[instanceType];
  if (base === undefined) return undefined;
  if (TABLE_REGIONS.includes(region)) return { usdPerHour: base, estimated: false };
  return { usdPerHour: round4(base * OTHER_REGION_FACTOR), estimated: true };
}

function round4(value: number): number {
  return Math.round(value * 10_000) / 10_000;
}
