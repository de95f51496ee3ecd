/**
 * The Deep Learning AMI the GPU instances boot (lib/compute.ts), resolved at deploy time from a
 * public SSM parameter. Its own module, free of aws-cdk-lib, because the command line checks the
 * same parameter (`tuning-lab doctor`).
 */

/** The Deep Learning AMI the GPU instances boot, resolved at deploy time from SSM. */
export interface AmiChoice {
  readonly description: string;
  /** Public SSM parameter holding the latest AMI id of that DLAMI. */
  readonly parameterName: string;
  readonly rootDeviceName: string;
}

/**
 * Every allowed GPU family (Turing and newer: g4dn, g5, g6, g6e) boots the Base OSS NVIDIA
 * Driver GPU DLAMI on Ubuntu 22.04, whose 580-series driver runs the trainer image's CUDA 13.0
 * build. P3 (Volta) is refused in lib/config.ts: no current DLAMI supports it and CUDA 13 does
 * not run on it (docs/external-names.md).
 */
export const GPU_AMI: AmiChoice = {
  description: 'Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04)',
  parameterName:
    '/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id',
  rootDeviceName: '/dev/sda1',
};
