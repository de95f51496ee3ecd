/**
 * Every instance type tuning-lab accepts, with what a run needs to know about it: its GPUs (how
 * many, which, how much memory each), its vCPUs (what the EC2 service quotas count) and its
 * on-demand price in us-east-1. The one table behind the config validation (lib/config.ts), the
 * cost caps (lib/pricing.ts), the docs (scripts/docs/price-table.ts) and the trainer's copy
 * (trainer-image/src/tuning_trainer/instance_prices.json, scripts/docs/instance-prices.ts).
 *
 * Sources (docs/external-names.md, "Instance types"; checked 2026-12-01, no live AWS page read):
 * - GPU count, GPU name, memory per GPU and vCPUs: EC2 DescribeInstanceTypes as rendered by
 *   aws/karpenter-provider-aws (website/content/en/preview/reference/instance-types.md, generated
 *   2026-07-11; labels instance-gpu-count, instance-gpu-name, instance-gpu-memory in MiB per GPU,
 *   instance-cpu), equal on every type to instances.vantage.sh's data (2026-01-21);
 * - the price: the AWS Pricing API as vendored by aws/karpenter-provider-aws
 *   (pkg/providers/pricing/zz_generated.pricing_aws.go, generated 2026-07-20).
 *
 * Not listed, so refused: P3 (no current Deep Learning AMI boots it and the trainer's CUDA 13.0
 * needs Turing or newer; lib/config.ts says so), and GPU types nobody has checked here (g4dn
 * 4-GPU sizes, p4de, p5e, p5en, p6, ...): add a row with its sources to accept one.
 *
 * Imported by the safety Lambda through lib/pricing.ts: no aws-cdk-lib, no AWS SDK.
 */

/** The GPU as EC2 names it (DescribeInstanceTypes `GpuInfo.Gpus[].Name`). */
export type GpuModel = 'T4' | 'A10G' | 'L4' | 'L40S' | 'A100' | 'H100';

export interface InstanceTypeInfo {
  /** GPUs on one instance: the trainer starts one process per GPU. */
  readonly gpus: number;
  readonly gpuModel: GpuModel;
  /** Memory of ONE GPU in MiB, as EC2 reports it (DescribeInstanceTypes). */
  readonly gpuMemoryMiB: number;
  /** vCPUs, what the EC2 vCPU quotas count (DescribeInstanceTypes `DefaultVCpus`). */
  readonly vcpus: number;
  /** On-demand USD per hour in us-east-1 (Linux, shared tenancy). */
  readonly onDemandUsdPerHour: number;
}

/** The date of the GPU and vCPU figures (karpenter's generated instance-type reference). */
export const INSTANCE_SPEC_DATE = '2026-07-11';
export const INSTANCE_SPEC_SOURCE =
  'EC2 DescribeInstanceTypes via aws/karpenter-provider-aws (instance-types reference, 2026-07-11)';

const T4 = { gpuModel: 'T4', gpuMemoryMiB: 16384 } as const;
const A10G = { gpuModel: 'A10G', gpuMemoryMiB: 22888 } as const;
const L4 = { gpuModel: 'L4', gpuMemoryMiB: 22888 } as const;
const L40S = { gpuModel: 'L40S', gpuMemoryMiB: 45776 } as const;
const A100_40GB = { gpuModel: 'A100', gpuMemoryMiB: 40960 } as const;
const H100_80GB = { gpuModel: 'H100', gpuMemoryMiB: 81920 } as const;

/** Keys are the only instance types the stack accepts, single-GPU sizes first. */
export const INSTANCE_TYPES: Readonly<Record<string, InstanceTypeInfo>> = {
  // g4dn: NVIDIA T4 (Turing, 16 GB)
  'g4dn.xlarge': { ...T4, gpus: 1, vcpus: 4, onDemandUsdPerHour: 0.526 },
  'g4dn.2xlarge': { ...T4, gpus: 1, vcpus: 8, onDemandUsdPerHour: 0.752 },
  'g4dn.4xlarge': { ...T4, gpus: 1, vcpus: 16, onDemandUsdPerHour: 1.204 },
  'g4dn.8xlarge': { ...T4, gpus: 1, vcpus: 32, onDemandUsdPerHour: 2.176 },
  'g4dn.16xlarge': { ...T4, gpus: 1, vcpus: 64, onDemandUsdPerHour: 4.352 },
  // g5: NVIDIA A10G (Ampere, 24 GB)
  'g5.xlarge': { ...A10G, gpus: 1, vcpus: 4, onDemandUsdPerHour: 1.006 },
  'g5.2xlarge': { ...A10G, gpus: 1, vcpus: 8, onDemandUsdPerHour: 1.212 },
  'g5.4xlarge': { ...A10G, gpus: 1, vcpus: 16, onDemandUsdPerHour: 1.624 },
  'g5.8xlarge': { ...A10G, gpus: 1, vcpus: 32, onDemandUsdPerHour: 2.448 },
  'g5.16xlarge': { ...A10G, gpus: 1, vcpus: 64, onDemandUsdPerHour: 4.096 },
  // g6: NVIDIA L4 (Ada, 24 GB)
  'g6.xlarge': { ...L4, gpus: 1, vcpus: 4, onDemandUsdPerHour: 0.8048 },
  'g6.2xlarge': { ...L4, gpus: 1, vcpus: 8, onDemandUsdPerHour: 0.9776 },
  'g6.4xlarge': { ...L4, gpus: 1, vcpus: 16, onDemandUsdPerHour: 1.3232 },
  'g6.8xlarge': { ...L4, gpus: 1, vcpus: 32, onDemandUsdPerHour: 2.0144 },
  'g6.16xlarge': { ...L4, gpus: 1, vcpus: 64, onDemandUsdPerHour: 3.3968 },
  // g6e: NVIDIA L40S (Ada, 48 GB)
  'g6e.xlarge': { ...L40S, gpus: 1, vcpus: 4, onDemandUsdPerHour: 1.861 },
  'g6e.2xlarge': { ...L40S, gpus: 1, vcpus: 8, onDemandUsdPerHour: 2.24208 },
  'g6e.4xlarge': { ...L40S, gpus: 1, vcpus: 16, onDemandUsdPerHour: 3.00424 },
  'g6e.8xlarge': { ...L40S, gpus: 1, vcpus: 32, onDemandUsdPerHour: 4.52856 },
  'g6e.16xlarge': { ...L40S, gpus: 1, vcpus: 64, onDemandUsdPerHour: 7.57719 },
  // Several GPUs: one trainer process per GPU (torchrun)
  'g5.12xlarge': { ...A10G, gpus: 4, vcpus: 48, onDemandUsdPerHour: 5.672 },
  'g5.24xlarge': { ...A10G, gpus: 4, vcpus: 96, onDemandUsdPerHour: 8.144 },
  'g5.48xlarge': { ...A10G, gpus: 8, vcpus: 192, onDemandUsdPerHour: 16.288 },
  'g6.12xlarge': { ...L4, gpus: 4, vcpus: 48, onDemandUsdPerHour: 4.6016 },
  'g6.24xlarge': { ...L4, gpus: 4, vcpus: 96, onDemandUsdPerHour: 6.6752 },
  'g6.48xlarge': { ...L4, gpus: 8, vcpus: 192, onDemandUsdPerHour: 13.3504 },
  'g6e.12xlarge': { ...L40S, gpus: 4, vcpus: 48, onDemandUsdPerHour: 10.49264 },
  'g6e.24xlarge': { ...L40S, gpus: 4, vcpus: 96, onDemandUsdPerHour: 15.06559 },
  'g6e.48xlarge': { ...L40S, gpus: 8, vcpus: 192, onDemandUsdPerHour: 30.13118 },
  // p4d: NVIDIA A100 40 GB (Ampere); p5: NVIDIA H100 80 GB (Hopper)
  'p4d.24xlarge': { ...A100_40GB, gpus: 8, vcpus: 96, onDemandUsdPerHour: 21.957642 },
  'p5.48xlarge': { ...H100_80GB, gpus: 8, vcpus: 192, onDemandUsdPerHour: 55.04 },
};

/** The instance types the stack accepts, in the table's order. */
export const SUPPORTED_INSTANCE_TYPES: readonly string[] = Object.keys(INSTANCE_TYPES);

/** The figures of `instanceType`, or undefined for a type the stack does not accept. */
export function instanceTypeInfo(instanceType: string): InstanceTypeInfo | undefined {
  return Object.hasOwn(INSTANCE_TYPES, instanceType) ? INSTANCE_TYPES[instanceType] : undefined;
}

/** Memory of one GPU in GiB (EC2's MiB / 1024), to two decimals: 22888 MiB -> 22.35. */
export function gpuMemoryGiB(info: InstanceTypeInfo): number {
  return Math.round((info.gpuMemoryMiB / 1024) * 100) / 100;
}
