/**
 * docs/backends.md's table of the same GPUs on the two backends: the EC2 type and its SageMaker
 * training twin, their us-east-1 on-demand prices, the EC2 spot snapshot and each backend's
 * quota, rendered from lib/instance-types.ts, lib/sagemaker-types.ts, lib/pricing.ts and the
 * doctor's quota tables, so the page shows the figures the stack validates and caps with.
 */
import { vcpuQuota } from '../../cli/doctor/quotas';
import { trainingQuota } from '../../cli/doctor/sagemaker-quotas';
import { INSTANCE_TYPES } from '../../lib/instance-types';
import {
  SPOT_SNAPSHOT_DATE,
  SPOT_SNAPSHOT_US_EAST_1,
  US_EAST_1_PRICE_DATE,
} from '../../lib/pricing';
import { SAGEMAKER_INSTANCE_TYPES, SAGEMAKER_PRICE_DATE } from '../../lib/sagemaker-types';
import { table } from './markdown';

export function renderBackendTable(): string {
  const rows = Object.entries(SAGEMAKER_INSTANCE_TYPES).map(([mlType, ml]) => {
    const ec2 = INSTANCE_TYPES[ml.ec2Type];
    const spot = SPOT_SNAPSHOT_US_EAST_1[ml.ec2Type];
    const code = (market: 'on-demand' | 'spot') => trainingQuota(mlType, market)?.code ?? '?';
    return [
      `\`${ml.ec2Type}\``,
      String(ec2.gpus),
      String(ec2.onDemandUsdPerHour),
      String(spot.meanUsdPerHour),
      `${vcpuQuota(ml.ec2Type, 'on-demand')?.code} / ${vcpuQuota(ml.ec2Type, 'spot')?.code}`,
      String(ml.onDemandUsdPerHour) + (ml.trainingPriceConfirmed ? '' : ' *'),
      `${(ml.onDemandUsdPerHour / ec2.onDemandUsdPerHour).toFixed(2)} x`,
      `${code('on-demand')} / ${code('spot')}`,
    ];
  });
  return (
    `us-east-1, USD per instance-hour. EC2 on-demand of ${US_EAST_1_PRICE_DATE}, EC2 spot the ` +
    `mean across AZs of one moment (${SPOT_SNAPSHOT_DATE}); SageMaker training of ` +
    `${SAGEMAKER_PRICE_DATE}, \`*\` where the source gives the type's SageMaker list price, not ` +
    'the Training component (docs/external-names.md). EC2 quotas count vCPUs of a class, ' +
    "SageMaker's instances of one type; `?` is a code no source confirmed.\n\n" +
    table(
      [
        'EC2 type',
        'GPUs',
        'EC2 on-demand',
        'EC2 spot (mean)',
        'EC2 vCPU quota (on-demand / spot)',
        `\`ml.\` training on-demand`,
        'ml / EC2',
        'SageMaker quota (training / spot training)',
      ],
      rows,
    )
  );
}
