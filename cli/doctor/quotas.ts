/**
 * The EC2 vCPU quotas a GPU type counts against (Service Quotas, service code `ec2`).
 *
 * EC2 limits running instances by vCPUs per instance class and market: on-demand G and VT types
 * share one quota, spot requests for them another, and P types have their own pair. A new account
 * has 0 vCPUs in all four (docs/runbook.md, "Quotas"), so a first run fails to launch until an
 * increase is approved. Codes from the Service Quotas console (docs/external-names.md).
 */
import type { Market } from '../../lib/contract';

export interface VcpuQuota {
  readonly code: string;
  readonly name: string;
}

const QUOTAS: Readonly<Record<string, Readonly<Record<Market, VcpuQuota>>>> = {
  'G and VT': {
    'on-demand': { code: 'L-DB2E81BA', name: 'Running On-Demand G and VT instances' },
    spot: { code: 'L-3819A6DF', name: 'All G and VT Spot Instance Requests' },
  },
  P: {
    'on-demand': { code: 'L-417A185B', name: 'Running On-Demand P instances' },
    spot: { code: 'L-7212CCBC', name: 'All P4, P3 and P2 Spot Instance Requests' },
  },
};

/** The quota class of an instance type (`G and VT`, `P`), or undefined for other classes. */
export function quotaClass(instanceType: string): string | undefined {
  const family = instanceType.split('.')[0];
  if (/^(g|vt)\d/.test(family)) return 'G and VT';
  if (/^p\d/.test(family)) return 'P';
  return undefined;
}

/** The vCPU quota `instanceType` launches against in `market`. */
export function vcpuQuota(instanceType: string, market: Market): VcpuQuota | undefined {
  const found = quotaClass(instanceType);
  return found === undefined ? undefined : QUOTAS[found][market];
}

/** The exact AWS CLI command that asks for `vcpus` of `quota` in `region`. */
export function increaseCommand(quota: VcpuQuota, vcpus: number, region: string): string {
  return (
    `aws service-quotas request-service-quota-increase --service-code ec2 ` +
    `--quota-code ${quota.code} --desired-value ${vcpus} --region ${region}`
  );
}
