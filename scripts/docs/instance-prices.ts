/**
 * Writes the trainer's copy of the instance type table and the price tables, or checks that it
 * is current:
 *
 *     make docs                                                         # rewrite it
 *     npx ts-node --transpile-only scripts/docs/instance-prices.ts --check
 *
 * `tuning-trainer validate --instance-type` (Python, in the trainer image) estimates a run's
 * cost with the prices the stack's cost caps use, and which types a run fits with the GPUs the
 * stack knows. lib/instance-types.ts and lib/pricing.ts stay their only source: this renders them
 * as JSON into the trainer package (trainer-image/src/tuning_trainer/instance_prices.json,
 * shipped as package data), and `make test-docs` fails when the file differs from what they
 * render now.
 *
 * The document: `on_demand_usd_per_hour` {region: {type: USD}} (the cost caps' tables), and
 * `instance_types` {type: {gpus, gpu_model, gpu_memory_mib, gpu_memory_gib (per GPU), vcpus,
 * on_demand_usd_per_hour (us-east-1), spot (the dated us-east-1 snapshot, docs only)}}.
 * SageMaker's training types (lib/sagemaker-types.ts) under their own keys, so the EC2 ones keep
 * their meaning: `sagemaker_training_usd_per_hour` {region: {ml type: USD}} and
 * `sagemaker_instance_types` {ml type: {ec2_type, gpus, gpu_model, gpu_memory_mib,
 * gpu_memory_gib, vcpus, on_demand_usd_per_hour (us-east-1), training_price_confirmed}}.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  gpuMemoryGiB,
  INSTANCE_SPEC_DATE,
  INSTANCE_SPEC_SOURCE,
  INSTANCE_TYPES,
} from '../../lib/instance-types';
import {
  OTHER_REGION_FACTOR,
  PRICE_TABLE_DATE,
  PRICE_TABLE_SOURCE,
  REGIONAL_USD_PER_HOUR,
  SPOT_SNAPSHOT_DATE,
  SPOT_SNAPSHOT_REGION,
  SPOT_SNAPSHOT_SOURCE,
  SPOT_SNAPSHOT_US_EAST_1,
  US_EAST_1_PRICE_DATE,
} from '../../lib/pricing';
import {
  MANAGED_SPOT,
  SAGEMAKER_INSTANCE_TYPES,
  SAGEMAKER_OTHER_REGION_FACTOR,
  SAGEMAKER_PRICE_DATE,
  SAGEMAKER_PRICE_SOURCE,
  SAGEMAKER_REGIONAL_USD_PER_HOUR,
} from '../../lib/sagemaker-types';

const ROOT = join(__dirname, '..', '..');
/** Repository-relative path of the generated file. */
export const INSTANCE_PRICES_JSON = 'trainer-image/src/tuning_trainer/instance_prices.json';

/** What an EC2 type and its SageMaker twin share: the hardware and the on-demand price. */
function hardware(
  info: (typeof INSTANCE_TYPES)[string] | (typeof SAGEMAKER_INSTANCE_TYPES)[string],
) {
  return {
    gpus: info.gpus,
    gpu_model: info.gpuModel,
    gpu_memory_mib: info.gpuMemoryMiB,
    gpu_memory_gib: gpuMemoryGiB(info),
    vcpus: info.vcpus,
    on_demand_usd_per_hour: info.onDemandUsdPerHour,
  };
}

/** The JSON text the trainer reads (types in lib/instance-types.ts's order). */
export function renderInstancePrices(): string {
  const instanceTypes = Object.fromEntries(
    Object.entries(INSTANCE_TYPES).map(([type, info]) => {
      const spot = SPOT_SNAPSHOT_US_EAST_1[type];
      return [
        type,
        {
          ...hardware(info),
          spot: {
            min_usd_per_hour: spot.minUsdPerHour,
            mean_usd_per_hour: spot.meanUsdPerHour,
            max_usd_per_hour: spot.maxUsdPerHour,
            savings_percent: spot.savingsPercent,
            interruption_frequency: spot.interruptionFrequency,
          },
        },
      ];
    }),
  );
  const sageMakerTypes = Object.fromEntries(
    Object.entries(SAGEMAKER_INSTANCE_TYPES).map(([type, info]) => [
      type,
      {
        ec2_type: info.ec2Type,
        ...hardware(info),
        training_price_confirmed: info.trainingPriceConfirmed,
      },
    ]),
  );
  const document = {
    generated_from:
      'lib/instance-types.ts and lib/pricing.ts by scripts/docs/instance-prices.ts (make docs); ' +
      'do not edit',
    source: PRICE_TABLE_SOURCE,
    us_east_1_date: US_EAST_1_PRICE_DATE,
    price_table_date: PRICE_TABLE_DATE,
    other_region_factor: OTHER_REGION_FACTOR,
    on_demand_usd_per_hour: REGIONAL_USD_PER_HOUR,
    instance_types_source: INSTANCE_SPEC_SOURCE,
    instance_types_date: INSTANCE_SPEC_DATE,
    spot_snapshot: {
      region: SPOT_SNAPSHOT_REGION,
      date: SPOT_SNAPSHOT_DATE,
      source: SPOT_SNAPSHOT_SOURCE,
      note: 'prices of one moment, for the docs; the cost caps use the live spot price',
    },
    instance_types: instanceTypes,
    sagemaker_source: SAGEMAKER_PRICE_SOURCE,
    sagemaker_price_date: SAGEMAKER_PRICE_DATE,
    sagemaker_other_region_factor: SAGEMAKER_OTHER_REGION_FACTOR,
    sagemaker_managed_spot: MANAGED_SPOT.billing,
    sagemaker_training_usd_per_hour: SAGEMAKER_REGIONAL_USD_PER_HOUR,
    sagemaker_instance_types: sageMakerTypes,
  };
  return `${JSON.stringify(document, null, 2)}\n`;
}

/** True when the file in the repository equals what lib/pricing.ts renders now. */
export function instancePricesCurrent(): boolean {
  try {
    return readFileSync(join(ROOT, INSTANCE_PRICES_JSON), 'utf8') === renderInstancePrices();
  } catch {
    return false;
  }
}

function main(args: readonly string[]): number {
  if (args.includes('--check')) {
    if (instancePricesCurrent()) return 0;
    console.error(`${INSTANCE_PRICES_JSON} is out of date: run \`make docs\` and commit it.`);
    return 1;
  }
  if (!instancePricesCurrent()) {
    writeFileSync(join(ROOT, INSTANCE_PRICES_JSON), renderInstancePrices());
    console.log(`${INSTANCE_PRICES_JSON} rewritten`);
  }
  return 0;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
