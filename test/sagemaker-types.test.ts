import { INSTANCE_TYPES, SUPPORTED_INSTANCE_TYPES } from '../lib/instance-types';
import {
  SAGEMAKER_INSTANCE_TYPES,
  sageMakerJobCostUsd,
  sageMakerTrainingPrice,
  sageMakerTypeInfo,
  SUPPORTED_SAGEMAKER_INSTANCE_TYPES,
} from '../lib/sagemaker-types';
import { trainingQuota } from '../cli/doctor/sagemaker-quotas';

describe('the SageMaker training type table (lib/sagemaker-types.ts)', () => {
  test('is the ml. twin of every EC2 type, in the same order', () => {
    expect(SUPPORTED_SAGEMAKER_INSTANCE_TYPES).toEqual(
      SUPPORTED_INSTANCE_TYPES.map((type) => `ml.${type}`),
    );
  });

  test("each type has its EC2 twin's GPUs and vCPUs, and its own price", () => {
    for (const [type, info] of Object.entries(SAGEMAKER_INSTANCE_TYPES)) {
      const twin = INSTANCE_TYPES[info.ec2Type];
      expect(`ml.${info.ec2Type}`).toBe(type);
      expect([info.gpus, info.gpuModel, info.gpuMemoryMiB, info.vcpus]).toEqual([
        twin.gpus,
        twin.gpuModel,
        twin.gpuMemoryMiB,
        twin.vcpus,
      ]);
      // SageMaker charges more than EC2 for the same hardware on every type of the sources.
      expect(info.onDemandUsdPerHour).toBeGreaterThan(twin.onDemandUsdPerHour);
    }
  });

  test('every type has an on-demand training quota code; spot is unconfirmed only for p5', () => {
    const unconfirmed = SUPPORTED_SAGEMAKER_INSTANCE_TYPES.filter(
      (type) => trainingQuota(type, 'spot')?.code === undefined,
    );
    for (const type of SUPPORTED_SAGEMAKER_INSTANCE_TYPES) {
      expect(trainingQuota(type, 'on-demand')?.code).toMatch(/^L-[0-9A-F]{8}$/);
    }
    expect(unconfirmed).toEqual(['ml.p5.48xlarge']);
  });

  test('an EC2 name, or an Object prototype key, is not a SageMaker type', () => {
    expect(sageMakerTypeInfo('g5.2xlarge')).toBeUndefined();
    expect(sageMakerTypeInfo('constructor')).toBeUndefined();
    expect(sageMakerTrainingPrice('ml.p3.2xlarge', 'us-east-1')).toBeUndefined();
  });

  test('a region without a listed price gets the marked-up us-east-1 price, flagged', () => {
    expect(sageMakerTrainingPrice('ml.g5.2xlarge', 'us-west-2')).toEqual({
      usdPerHour: 1.515,
      estimated: false,
    });
    expect(sageMakerTrainingPrice('ml.g5.xlarge', 'eu-west-1')).toEqual({
      usdPerHour: 2.464,
      estimated: true,
    });
  });

  test("a job's cost is billable seconds x instance count at the training price", () => {
    expect(sageMakerJobCostUsd('ml.g5.2xlarge', 'us-east-1', 7200, 2)).toBeCloseTo(6.06, 10);
    expect(sageMakerJobCostUsd('ml.x.large', 'us-east-1', 3600, 1)).toBeUndefined();
  });
});
