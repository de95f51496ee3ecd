/**
 * On-demand prices of the GPU instance types tuning-lab allows, in USD per hour (Linux).
 *
 * Source: the AWS EC2 On-Demand pricing page (Linux, shared tenancy), us-east-1, as published
 * after the June 2025 P4d/P5 price reduction; table compiled 2025-06-15. us-east-2 and us-west-2
 * list the same prices for these types. Other regions are estimated as us-east-1 times
 * OTHER_REGION_FACTOR, an upper-end regional markup, so a cost cap errs on the early side; synth
 * warns when that estimate is used. Prices change: refresh this table (and its date) when AWS
 * publishes new ones. Imported by the stack (run settings) and the safety Lambda (cost caps), so
 * it must not import aws-cdk-lib or an AWS SDK.
 */

export const PRICE_TABLE_DATE = '2025-06-15';
export const PRICE_TABLE_SOURCE =
  'AWS EC2 On-Demand pricing page, Linux, us-east-1 (same in us-east-2 and us-west-2)';

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
  'g4dn.12xlarge': 3.912,
  'g4dn.16xlarge': 4.352,
  // g5: NVIDIA A10G (Ampere, 24 GB)
  'g5.xlarge': 1.006,
  'g5.2xlarge': 1.212,
  'g5.4xlarge': 1.624,
  'g5.8xlarge': 2.448,
  'g5.12xlarge': 5.672,
  'g5.16xlarge': 4.096,
  'g5.24xlarge': 8.144,
  'g5.48xlarge': 16.288,
  // g6: NVIDIA L4 (Ada, 24 GB)
  'g6.xlarge': 0.8048,
  'g6.2xlarge': 0.9776,
  'g6.4xlarge': 1.3232,
  'g6.8xlarge': 2.0144,
  'g6.12xlarge': 4.6016,
  'g6.16xlarge': 3.3968,
  'g6.24xlarge': 6.6752,
  'g6.48xlarge': 13.3504,
  // g6e: NVIDIA L40S (Ada, 48 GB)
  'g6e.xlarge': 1.861,
  'g6e.2xlarge': 2.24208,
  'g6e.4xlarge': 3.00424,
  'g6e.8xlarge': 4.52856,
  'g6e.12xlarge': 10.49264,
  'g6e.16xlarge': 7.57719,
  'g6e.24xlarge': 15.06559,
  'g6e.48xlarge': 30.13118,
  // p3: NVIDIA V100 (Volta, 16 GB): no bf16, needs the proprietary-driver AMI
  'p3.2xlarge': 3.06,
  'p3.8xlarge': 12.24,
  'p3.16xlarge': 24.48,
  // p4d: 8x NVIDIA A100 40 GB; p5: 8x NVIDIA H100 80 GB (prices after the June 2025 reduction)
  'p4d.24xlarge': 21.96,
  'p5.48xlarge': 55.04,
};

/** The instance types the stack accepts: exactly the priced ones. */
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
