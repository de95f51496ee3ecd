/**
 * The trainer's copy of the price tables is the one lib/pricing.ts renders now (regenerate with
 * make docs), so `tuning-trainer validate --instance-type` shows the prices the cost caps use.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { INSTANCE_PRICES_JSON, renderInstancePrices } from '../../scripts/docs/instance-prices';
import { INSTANCE_TYPES } from '../../lib/instance-types';
import { SUPPORTED_INSTANCE_TYPES, onDemandPrice } from '../../lib/pricing';
import { SUPPORTED_SAGEMAKER_INSTANCE_TYPES } from '../../lib/sagemaker-types';

const ROOT = join(__dirname, '..', '..');

describe("the trainer's instance_prices.json (regenerate with make docs)", () => {
  test('equals what lib/pricing.ts renders', () => {
    expect(readFileSync(join(ROOT, INSTANCE_PRICES_JSON), 'utf8')).toBe(renderInstancePrices());
  });

  test('holds every supported type with its us-east-1 price', () => {
    const table = JSON.parse(renderInstancePrices()).on_demand_usd_per_hour['us-east-1'];
    expect(Object.keys(table)).toEqual([...SUPPORTED_INSTANCE_TYPES]);
    for (const type of SUPPORTED_INSTANCE_TYPES) {
      expect(table[type]).toBe(onDemandPrice(type, 'us-east-1')?.usdPerHour);
    }
  });

  test('describes every supported type: GPUs, GPU model, memory per GPU, vCPUs, prices', () => {
    const types = JSON.parse(renderInstancePrices()).instance_types;
    expect(Object.keys(types)).toEqual([...SUPPORTED_INSTANCE_TYPES]);
    expect(types['g5.12xlarge']).toEqual({
      gpus: 4,
      gpu_model: 'A10G',
      gpu_memory_mib: 22888,
      gpu_memory_gib: 22.35,
      vcpus: 48,
      on_demand_usd_per_hour: 5.672,
      spot: {
        min_usd_per_hour: 2.0121,
        mean_usd_per_hour: 2.137,
        max_usd_per_hour: 2.487,
        savings_percent: 65,
        interruption_frequency: '>20%',
      },
    });
    for (const type of SUPPORTED_INSTANCE_TYPES) {
      expect(types[type].gpus).toBe(INSTANCE_TYPES[type].gpus);
    }
  });

  test('adds the SageMaker training types under their own keys, the EC2 ones unchanged', () => {
    const document = JSON.parse(renderInstancePrices());
    expect(Object.keys(document.sagemaker_training_usd_per_hour['us-east-1'])).toEqual([
      ...SUPPORTED_SAGEMAKER_INSTANCE_TYPES,
    ]);
    expect(document.sagemaker_instance_types['ml.g5.12xlarge']).toEqual({
      ec2_type: 'g5.12xlarge',
      gpus: 4,
      gpu_model: 'A10G',
      gpu_memory_mib: 22888,
      gpu_memory_gib: 22.35,
      vcpus: 48,
      on_demand_usd_per_hour: 7.09,
      training_price_confirmed: true,
    });
    expect(Object.keys(document.instance_types)).toEqual([...SUPPORTED_INSTANCE_TYPES]);
  });
});
