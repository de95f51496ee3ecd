/**
 * docs/costs.md's table of the supported instance types with their on-demand prices, rendered
 * from lib/pricing.ts (the table the stack and the safety Lambda estimate costs with), so the
 * docs show exactly the prices the cost caps use.
 */
import { settingsSchema } from '../../lib/config';
import {
  ON_DEMAND_USD_PER_HOUR,
  PRICE_TABLE_DATE,
  SUPPORTED_INSTANCE_TYPES,
  US_EAST_1_PRICE_DATE,
} from '../../lib/pricing';
import { table } from './markdown';

/** The GPU of each family and the vCPU quota it counts against (AWS's instance type pages). */
const FAMILIES: Record<string, { gpu: string; quota: 'G and VT' }> = {
  g4dn: { gpu: 'NVIDIA T4 16 GB', quota: 'G and VT' },
  g5: { gpu: 'NVIDIA A10G 24 GB', quota: 'G and VT' },
  g6: { gpu: 'NVIDIA L4 24 GB', quota: 'G and VT' },
  g6e: { gpu: 'NVIDIA L40S 48 GB', quota: 'G and VT' },
};

/** vCPUs of a size, what the quotas count: xlarge = 4, Nxlarge = 4 N. */
export function vcpus(instanceType: string): number {
  const size = instanceType.split('.')[1];
  const match = /^(\d*)xlarge$/.exec(size);
  if (!match) throw new Error(`no vCPU count for ${instanceType}`);
  return 4 * (match[1] === '' ? 1 : Number(match[1]));
}

export function renderPriceTable(): string {
  const hours = settingsSchema.shape.maxRuntimeHours.def.defaultValue;
  const rows = SUPPORTED_INSTANCE_TYPES.map((type) => {
    const family = FAMILIES[type.split('.')[0]];
    if (!family) throw new Error(`no GPU described for ${type} in scripts/docs/price-table.ts`);
    return [
      `\`${type}\``,
      family.gpu,
      String(vcpus(type)),
      family.quota,
      String(ON_DEMAND_USD_PER_HOUR[type]),
      (ON_DEMAND_USD_PER_HOUR[type] * hours).toFixed(2),
    ];
  });
  return (
    `us-east-1 on-demand prices of lib/pricing.ts (Linux, data of ${US_EAST_1_PRICE_DATE}; the ` +
    `other regions' tables date from ${PRICE_TABLE_DATE}, see above):\n\n` +
    table(
      [
        'type',
        'GPU (one per instance)',
        'vCPUs',
        'quota',
        'on-demand USD/hour',
        `USD for ${hours} h (default maxRuntimeHours)`,
      ],
      rows,
    )
  );
}
