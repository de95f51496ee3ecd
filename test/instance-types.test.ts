import {
  gpuMemoryGiB,
  INSTANCE_TYPES,
  instanceTypeInfo,
  SUPPORTED_INSTANCE_TYPES,
} from '../lib/instance-types';

describe('the instance type table (lib/instance-types.ts)', () => {
  test('lists the single-GPU sizes and the multi-GPU sizes of issue 12', () => {
    const multi = SUPPORTED_INSTANCE_TYPES.filter((t) => INSTANCE_TYPES[t].gpus > 1);
    expect(multi).toEqual([
      'g5.12xlarge',
      'g5.24xlarge',
      'g5.48xlarge',
      'g6.12xlarge',
      'g6.24xlarge',
      'g6.48xlarge',
      'g6e.12xlarge',
      'g6e.24xlarge',
      'g6e.48xlarge',
      'p4d.24xlarge',
      'p5.48xlarge',
    ]);
    expect(SUPPORTED_INSTANCE_TYPES).toHaveLength(31);
  });

  test('every size has 1, 4 or 8 GPUs and 4 vCPUs per xlarge unit (what the quotas count)', () => {
    for (const [type, info] of Object.entries(INSTANCE_TYPES)) {
      expect([1, 4, 8]).toContain(info.gpus);
      const units = /\.(\d*)xlarge$/.exec(type)?.[1];
      expect(info.vcpus).toBe(4 * (units ? Number(units) : 1));
    }
  });

  test('one GPU model and memory per family', () => {
    const byFamily = new Map<string, string>();
    for (const [type, info] of Object.entries(INSTANCE_TYPES)) {
      const family = type.split('.')[0];
      const gpu = `${info.gpuModel} ${info.gpuMemoryMiB}`;
      expect(byFamily.get(family) ?? gpu).toBe(gpu);
      byFamily.set(family, gpu);
    }
    expect(Object.fromEntries(byFamily)).toEqual({
      g4dn: 'T4 16384',
      g5: 'A10G 22888',
      g6: 'L4 22888',
      g6e: 'L40S 45776',
      p4d: 'A100 40960',
      p5: 'H100 81920',
    });
  });

  test("memory per GPU in GiB is EC2's MiB / 1024 to two decimals", () => {
    expect(gpuMemoryGiB(INSTANCE_TYPES['g5.12xlarge'])).toBe(22.35);
    expect(gpuMemoryGiB(INSTANCE_TYPES['g6e.xlarge'])).toBe(44.7);
    expect(gpuMemoryGiB(INSTANCE_TYPES['p5.48xlarge'])).toBe(80);
  });

  test('an unknown type, or an Object prototype key, has no entry', () => {
    expect(instanceTypeInfo('p3.8xlarge')).toBeUndefined();
    expect(instanceTypeInfo('toString')).toBeUndefined();
    expect(instanceTypeInfo('p4d.24xlarge')).toMatchObject({ gpus: 8, gpuModel: 'A100' });
  });
});
