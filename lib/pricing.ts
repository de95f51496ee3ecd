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
 * The types themselves, their GPUs and vCPUs and the us-east-1 price live in one table,
 * lib/instance-types.ts; this module adds the other regions, the estimate for the rest and a
 * dated spot snapshot for the docs. P3 is not priced: no current Deep Learning AMI supports it
 * (lib/config.ts says so at synth).
 *
 * Imported by the stack (run settings) and the safety Lambda (cost caps), so it must not import
 * aws-cdk-lib or an AWS SDK.
 */
import { INSTANCE_TYPES, SUPPORTED_INSTANCE_TYPES } from './instance-types';

/** The date of the oldest figure in the tables (the regional prices). */
export const PRICE_TABLE_DATE = '2026-01-21';
/** The date of the us-east-1 figures (ON_DEMAND_USD_PER_HOUR). */
export const US_EAST_1_PRICE_DATE = '2026-07-20';
export const PRICE_TABLE_SOURCE =
  'AWS Pricing API via aws/karpenter-provider-aws (us-east-1, 2026-07-20) and ' +
  'instances.vantage.sh (other regions, 2026-01-21)';

/** Markup on the us-east-1 price for a region or type the tables lack (an upper-end estimate). */
export const OTHER_REGION_FACTOR = 1.75;

/** USD per hour, us-east-1, from lib/instance-types.ts. Keys are the types the stack accepts. */
export const ON_DEMAND_USD_PER_HOUR: Readonly<Record<string, number>> = Object.fromEntries(
  Object.entries(INSTANCE_TYPES).map(([type, info]) => [type, info.onDemandUsdPerHour]),
);

/** USD per hour in the other regions with a table (types a region did not offer are absent). */
export const REGIONAL_USD_PER_HOUR: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  'us-east-1': ON_DEMAND_USD_PER_HOUR,
  // The same prices as us-east-1 in the source (p4d.24xlarge: 21.95764, equal to 5 decimals).
  'us-east-2': ON_DEMAND_USD_PER_HOUR,
  'us-west-2': ON_DEMAND_USD_PER_HOUR,
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
    'g5.12xlarge': 6.33167,
    'g5.24xlarge': 9.09117,
    'g5.48xlarge': 18.18233,
    'p4d.24xlarge': 23.71569,
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
    'g5.12xlarge': 7.09282,
    'g5.24xlarge': 10.18405,
    'g5.48xlarge': 20.3681,
    'g6.12xlarge': 5.75429,
    'g6.24xlarge': 8.34732,
    'g6.48xlarge': 16.69464,
    'g6e.12xlarge': 13.12002,
    'g6e.24xlarge': 18.83806,
    'g6e.48xlarge': 37.67612,
    'p4d.24xlarge': 27.43298,
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
    'g5.12xlarge': 8.22609,
    'g5.24xlarge': 11.81123,
    'g5.48xlarge': 23.62246,
    'g6.12xlarge': 6.67369,
    'g6.24xlarge': 9.68103,
    'g6.48xlarge': 19.36206,
    'g6e.12xlarge': 15.21742,
    'g6e.24xlarge': 21.84956,
    'g6e.48xlarge': 43.69912,
    'p4d.24xlarge': 30.09784,
    'p5.48xlarge': 68.8,
  },
  'ap-southeast-1': {
    'g4dn.xlarge': 0.736,
    'g4dn.2xlarge': 1.052,
    'g4dn.4xlarge': 1.685,
    'g4dn.8xlarge': 3.045,
    'g4dn.16xlarge': 6.089,
    'p4d.24xlarge': 26.34917,
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
    'g5.12xlarge': 6.81091,
    'g5.24xlarge': 9.77928,
    'g5.48xlarge': 19.55855,
    'g6.12xlarge': 5.52558,
    'g6.24xlarge': 8.01555,
    'g6.48xlarge': 16.0311,
    'p4d.24xlarge': 26.3444,
    'p5.48xlarge': 66.048,
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
    'g5.12xlarge': 9.64127,
    'g5.24xlarge': 13.84318,
    'g5.48xlarge': 27.68636,
    'g6.12xlarge': 7.82181,
    'g6.24xlarge': 11.34651,
    'g6.48xlarge': 22.69303,
    'p4d.24xlarge': 35.5569,
    'p5.48xlarge': 92.4672,
  },
};

/** Regions with a price table. */
export const TABLE_REGIONS: readonly string[] = Object.keys(REGIONAL_USD_PER_HOUR);

export { SUPPORTED_INSTANCE_TYPES };

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

/**
 * A spot price of one moment, for the docs ("choosing an instance"): what a spot hour cost then,
 * not what it costs now. The stack's cost caps never use it (they read the live spot price of the
 * instance's AZ, else the on-demand price).
 */
export interface SpotSnapshot {
  /** The lowest, mean and highest current spot price across us-east-1's AZs at the snapshot. */
  readonly minUsdPerHour: number;
  readonly meanUsdPerHour: number;
  readonly maxUsdPerHour: number;
  /** AWS Spot Instance Advisor: savings over on-demand, averaged over the preceding 30 days. */
  readonly savingsPercent: number;
  /** AWS Spot Instance Advisor: how often spot reclaimed the type in the preceding month. */
  readonly interruptionFrequency: '<5%' | '5-10%' | '10-15%' | '15-20%' | '>20%';
}

/** The date the spot snapshot was committed to its source (the scrape is at most that old). */
export const SPOT_SNAPSHOT_DATE = '2025-11-30';
export const SPOT_SNAPSHOT_REGION = 'us-east-1';
export const SPOT_SNAPSHOT_SOURCE =
  "instances.vantage.sh's instances.json (EC2 DescribeSpotPriceHistory across AZs and the " +
  'Spot Instance Advisor), as vendored by tsaol/aws-gpu on 2025-11-30';

/** Linux spot prices in us-east-1 for every type the stack accepts (docs/external-names.md). */
export const SPOT_SNAPSHOT_US_EAST_1: Readonly<Record<string, SpotSnapshot>> = {
  'g4dn.xlarge': {
    minUsdPerHour: 0.1733,
    meanUsdPerHour: 0.1766,
    maxUsdPerHour: 0.1812,
    savingsPercent: 62,
    interruptionFrequency: '>20%',
  },
  'g4dn.2xlarge': {
    minUsdPerHour: 0.247,
    meanUsdPerHour: 0.2554,
    maxUsdPerHour: 0.2696,
    savingsPercent: 63,
    interruptionFrequency: '>20%',
  },
  'g4dn.4xlarge': {
    minUsdPerHour: 0.3206,
    meanUsdPerHour: 0.3507,
    maxUsdPerHour: 0.3723,
    savingsPercent: 68,
    interruptionFrequency: '>20%',
  },
  'g4dn.8xlarge': {
    minUsdPerHour: 0.6395,
    meanUsdPerHour: 0.6775,
    maxUsdPerHour: 0.7119,
    savingsPercent: 65,
    interruptionFrequency: '>20%',
  },
  'g4dn.16xlarge': {
    minUsdPerHour: 0.7534,
    meanUsdPerHour: 0.8174,
    maxUsdPerHour: 0.8813,
    savingsPercent: 79,
    interruptionFrequency: '>20%',
  },
  'g5.xlarge': {
    minUsdPerHour: 0.3837,
    meanUsdPerHour: 0.3939,
    maxUsdPerHour: 0.4034,
    savingsPercent: 56,
    interruptionFrequency: '>20%',
  },
  'g5.2xlarge': {
    minUsdPerHour: 0.3744,
    meanUsdPerHour: 0.4368,
    maxUsdPerHour: 0.5283,
    savingsPercent: 58,
    interruptionFrequency: '15-20%',
  },
  'g5.4xlarge': {
    minUsdPerHour: 0.5675,
    meanUsdPerHour: 0.6325,
    maxUsdPerHour: 0.7586,
    savingsPercent: 61,
    interruptionFrequency: '10-15%',
  },
  'g5.8xlarge': {
    minUsdPerHour: 0.7031,
    meanUsdPerHour: 0.7276,
    maxUsdPerHour: 0.7607,
    savingsPercent: 65,
    interruptionFrequency: '>20%',
  },
  'g5.16xlarge': {
    minUsdPerHour: 0.952,
    meanUsdPerHour: 1.0079,
    maxUsdPerHour: 1.092,
    savingsPercent: 69,
    interruptionFrequency: '>20%',
  },
  'g6.xlarge': {
    minUsdPerHour: 0.3337,
    meanUsdPerHour: 0.3558,
    maxUsdPerHour: 0.3666,
    savingsPercent: 48,
    interruptionFrequency: '>20%',
  },
  'g6.2xlarge': {
    minUsdPerHour: 0.4007,
    meanUsdPerHour: 0.4282,
    maxUsdPerHour: 0.454,
    savingsPercent: 53,
    interruptionFrequency: '>20%',
  },
  'g6.4xlarge': {
    minUsdPerHour: 0.5107,
    meanUsdPerHour: 0.5206,
    maxUsdPerHour: 0.5334,
    savingsPercent: 61,
    interruptionFrequency: '>20%',
  },
  'g6.8xlarge': {
    minUsdPerHour: 0.6947,
    meanUsdPerHour: 0.7386,
    maxUsdPerHour: 0.791,
    savingsPercent: 60,
    interruptionFrequency: '>20%',
  },
  'g6.16xlarge': {
    minUsdPerHour: 0.8439,
    meanUsdPerHour: 0.9052,
    maxUsdPerHour: 0.9671,
    savingsPercent: 72,
    interruptionFrequency: '>20%',
  },
  'g6e.xlarge': {
    minUsdPerHour: 0.7113,
    meanUsdPerHour: 0.8761,
    maxUsdPerHour: 0.9527,
    savingsPercent: 57,
    interruptionFrequency: '>20%',
  },
  'g6e.2xlarge': {
    minUsdPerHour: 0.8821,
    meanUsdPerHour: 0.9798,
    maxUsdPerHour: 1.121,
    savingsPercent: 66,
    interruptionFrequency: '10-15%',
  },
  'g6e.4xlarge': {
    minUsdPerHour: 0.7761,
    meanUsdPerHour: 0.8131,
    maxUsdPerHour: 0.9102,
    savingsPercent: 70,
    interruptionFrequency: '>20%',
  },
  'g6e.8xlarge': {
    minUsdPerHour: 1.3324,
    meanUsdPerHour: 1.4459,
    maxUsdPerHour: 1.502,
    savingsPercent: 72,
    interruptionFrequency: '>20%',
  },
  'g6e.16xlarge': {
    minUsdPerHour: 1.7992,
    meanUsdPerHour: 1.9809,
    maxUsdPerHour: 2.1249,
    savingsPercent: 77,
    interruptionFrequency: '5-10%',
  },
  'g5.12xlarge': {
    minUsdPerHour: 2.0121,
    meanUsdPerHour: 2.137,
    maxUsdPerHour: 2.487,
    savingsPercent: 65,
    interruptionFrequency: '>20%',
  },
  'g5.24xlarge': {
    minUsdPerHour: 2.7315,
    meanUsdPerHour: 2.7567,
    maxUsdPerHour: 2.7789,
    savingsPercent: 63,
    interruptionFrequency: '>20%',
  },
  'g5.48xlarge': {
    minUsdPerHour: 5.2289,
    meanUsdPerHour: 5.647,
    maxUsdPerHour: 6.3087,
    savingsPercent: 69,
    interruptionFrequency: '>20%',
  },
  'g6.12xlarge': {
    minUsdPerHour: 1.6889,
    meanUsdPerHour: 1.8657,
    maxUsdPerHour: 2.0227,
    savingsPercent: 62,
    interruptionFrequency: '5-10%',
  },
  'g6.24xlarge': {
    minUsdPerHour: 1.7945,
    meanUsdPerHour: 2.2868,
    maxUsdPerHour: 2.5971,
    savingsPercent: 62,
    interruptionFrequency: '>20%',
  },
  'g6.48xlarge': {
    minUsdPerHour: 2.9455,
    meanUsdPerHour: 3.884,
    maxUsdPerHour: 5.3277,
    savingsPercent: 70,
    interruptionFrequency: '10-15%',
  },
  'g6e.12xlarge': {
    minUsdPerHour: 3.0021,
    meanUsdPerHour: 3.8199,
    maxUsdPerHour: 5.1394,
    savingsPercent: 62,
    interruptionFrequency: '>20%',
  },
  'g6e.24xlarge': {
    minUsdPerHour: 3.0879,
    meanUsdPerHour: 3.4896,
    maxUsdPerHour: 3.7682,
    savingsPercent: 76,
    interruptionFrequency: '>20%',
  },
  'g6e.48xlarge': {
    minUsdPerHour: 7.5,
    meanUsdPerHour: 12.5919,
    maxUsdPerHour: 20.3931,
    savingsPercent: 60,
    interruptionFrequency: '>20%',
  },
  'p4d.24xlarge': {
    minUsdPerHour: 8.0468,
    meanUsdPerHour: 8.5907,
    maxUsdPerHour: 9.1506,
    savingsPercent: 58,
    interruptionFrequency: '>20%',
  },
  'p5.48xlarge': {
    minUsdPerHour: 13.2182,
    meanUsdPerHour: 28.1065,
    maxUsdPerHour: 52.0766,
    savingsPercent: 49,
    interruptionFrequency: '5-10%',
  },
};
