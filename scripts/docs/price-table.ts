/**
 * docs/costs.md's table of the supported instance types with their GPUs and on-demand prices,
 * rendered from lib/instance-types.ts (the table the config validation, the stack and the safety
 * Lambda use), so the docs show exactly the types and prices the stack accepts and caps with.
 */
import { quotaClass } from '../../cli/doctor/quotas';
import { settingsSchema } from '../../lib/config';
import { gpuMemoryGiB, INSTANCE_TYPES } from '../../lib/instance-types';
import { PRICE_TABLE_DATE, US_EAST_1_PRICE_DATE } from '../../lib/pricing';
import { table } from './markdown';

/** The GPU of each model as the docs name it (NVIDIA's name and nominal memory). */
const GPU_NAMES: Record<string, string> = {
  T4: 'NVIDIA T4 16 GB',
  A10G: 'NVIDIA A10G 24 GB',
  L4: 'NVIDIA L4 24 GB',
  L40S: 'NVIDIA L40S 48 GB',
  A100: 'NVIDIA A100 40 GB',
  H100: 'NVIDIA H100 80 GB',
};

export function renderPriceTable(): string {
  const hours = settingsSchema.shape.maxRuntimeHours.def.defaultValue;
  const rows = Object.entries(INSTANCE_TYPES).map(([type, info]) => {
    const quota = quotaClass(type);
    if (!quota) throw new Error(`no vCPU quota class for ${type} (cli/doctor/quotas.ts)`);
    return [
      `\`${type}\``,
      String(info.gpus),
      GPU_NAMES[info.gpuModel],
      String(gpuMemoryGiB(info)),
      String(info.vcpus),
      quota,
      String(info.onDemandUsdPerHour),
      (info.onDemandUsdPerHour * hours).toFixed(2),
    ];
  });
  return (
    `us-east-1 on-demand prices of lib/instance-types.ts (Linux, data of ${US_EAST_1_PRICE_DATE}; ` +
    `the other regions' tables in lib/pricing.ts date from ${PRICE_TABLE_DATE}, see above):\n\n` +
    table(
      [
        'type',
        'GPUs',
        'GPU',
        'GiB per GPU (EC2)',
        'vCPUs',
        'quota',
        'on-demand USD/hour',
        `USD for ${hours} h (default maxRuntimeHours)`,
      ],
      rows,
    )
  );
}
