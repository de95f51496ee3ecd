/**
 * The SageMaker training quotas a `backend=sagemaker` run counts against (Service Quotas, service
 * code `sagemaker`): one per instance type and market, counted in instances, not vCPUs.
 *
 * "ml.X for training job usage" limits the instances of type X across the account's running
 * on-demand training jobs, "ml.X for spot training job usage" those of managed spot jobs. They are
 * separate from EC2's vCPU quotas (cli/doctor/quotas.ts) and from each other: a job fails at
 * CreateTrainingJob with ResourceLimitExceeded ("The account-level service limit 'ml.g5.2xlarge
 * for spot training job usage' is 0 Instances ...") when its InstanceCount does not fit.
 *
 * Codes from a public snapshot of `aws service-quotas list-service-quotas --service-code sagemaker`
 * (docs/external-names.md, "SageMaker training quotas"); two other public sources give the same
 * codes for ml.g5.2xlarge, ml.g6e.2xlarge and ml.g4dn.xlarge. ml.p5.48xlarge's spot quota code was
 * not found: doctor says so and prints the command that finds it, rather than guess.
 */
import type { Market } from '../../lib/contract';
import { SUPPORTED_SAGEMAKER_INSTANCE_TYPES } from '../../lib/sagemaker-types';

export const SAGEMAKER_SERVICE_CODE = 'sagemaker';

export interface TrainingQuota {
  /** Undefined where no source confirmed the code. */
  readonly code?: string;
  readonly name: string;
}

/** [on-demand, spot] quota codes of each type; undefined = not confirmed at a source. */
const CODES: Readonly<Record<string, readonly [string, string | undefined]>> = {
  'ml.g4dn.xlarge': ['L-3F53BF0F', 'L-944F78BB'],
  'ml.g4dn.2xlarge': ['L-C2495BC4', 'L-0496610F'],
  'ml.g4dn.4xlarge': ['L-2908B1E9', 'L-246C5638'],
  'ml.g4dn.8xlarge': ['L-3118B7E1', 'L-15F329FB'],
  'ml.g4dn.16xlarge': ['L-57998C77', 'L-AD4C1352'],
  'ml.g5.xlarge': ['L-B6D80D9C', 'L-DE07CBDF'],
  'ml.g5.2xlarge': ['L-2D6DEB3C', 'L-CAEE7DB7'],
  'ml.g5.4xlarge': ['L-FE869B40', 'L-DB4D51CF'],
  'ml.g5.8xlarge': ['L-43F5FC95', 'L-DD18D5D6'],
  'ml.g5.16xlarge': ['L-9FAC65F7', 'L-E3DCB664'],
  'ml.g6.xlarge': ['L-56AE9D73', 'L-A886A53A'],
  'ml.g6.2xlarge': ['L-A1025C0C', 'L-BC684567'],
  'ml.g6.4xlarge': ['L-07B51BA0', 'L-03304C28'],
  'ml.g6.8xlarge': ['L-FB830EC3', 'L-CDC3B509'],
  'ml.g6.16xlarge': ['L-C8B8462D', 'L-8D196E75'],
  'ml.g6e.xlarge': ['L-1E3225F6', 'L-1DE24427'],
  'ml.g6e.2xlarge': ['L-D1AFBF6F', 'L-29512C0F'],
  'ml.g6e.4xlarge': ['L-945D83D8', 'L-5E2EB366'],
  'ml.g6e.8xlarge': ['L-812CA1D8', 'L-2E243138'],
  'ml.g6e.16xlarge': ['L-68515813', 'L-5E942007'],
  'ml.g5.12xlarge': ['L-C6383286', 'L-03E19172'],
  'ml.g5.24xlarge': ['L-ED7BD217', 'L-8345B953'],
  'ml.g5.48xlarge': ['L-6BC98A55', 'L-C87FF004'],
  'ml.g6.12xlarge': ['L-50B5B169', 'L-2C06E55A'],
  'ml.g6.24xlarge': ['L-B0E221DE', 'L-148FBB89'],
  'ml.g6.48xlarge': ['L-8CCF67BD', 'L-9C33052B'],
  'ml.g6e.12xlarge': ['L-F70A2467', 'L-C1031CE4'],
  'ml.g6e.24xlarge': ['L-3AE4911A', 'L-CE130130'],
  'ml.g6e.48xlarge': ['L-0DA2E7B0', 'L-8497E1A4'],
  'ml.p4d.24xlarge': ['L-09B4A649', 'L-09D56C4F'],
  // On-demand code from a public P5 capacity script; the spot code is in no source found.
  'ml.p5.48xlarge': ['L-82E1C851', undefined],
};

for (const type of SUPPORTED_SAGEMAKER_INSTANCE_TYPES) {
  if (!CODES[type]) throw new Error(`no SageMaker training quota codes for ${type}`);
}

/** The quota `instanceType` (`ml.g5.2xlarge`) trains against in `market`. */
export function trainingQuota(instanceType: string, market: Market): TrainingQuota | undefined {
  const codes = Object.hasOwn(CODES, instanceType) ? CODES[instanceType] : undefined;
  if (!codes) return undefined;
  const spot = market === 'spot';
  return {
    code: spot ? codes[1] : codes[0],
    name: `${instanceType} for ${spot ? 'spot ' : ''}training job usage`,
  };
}

/** The exact AWS CLI command that asks for `instances` of a confirmed `quota` in `region`. */
export function trainingIncreaseCommand(
  quota: TrainingQuota & { code: string },
  instances: number,
  region: string,
): string {
  return (
    `aws service-quotas request-service-quota-increase --service-code ${SAGEMAKER_SERVICE_CODE} ` +
    `--quota-code ${quota.code} --desired-value ${instances} --region ${region}`
  );
}

/** The command that finds a quota's code by its name (where no source confirmed it). */
export function findQuotaCommand(quota: TrainingQuota, region: string): string {
  return (
    `aws service-quotas list-service-quotas --service-code ${SAGEMAKER_SERVICE_CODE} ` +
    `--region ${region} --query "Quotas[?QuotaName=='${quota.name}'].[QuotaCode,Value]"`
  );
}
