import { TAG_KEYS } from '../lib/contract';
import { decideTerminations, type InstanceView } from '../lambda/safety/decide';

const NOW = new Date('2026-01-10T12:00:00Z');
const hoursAgo = (h: number) => new Date(NOW.getTime() - h * 3600_000);
const LIMITS = { stackName: 'TrainingStack', defaultMaxRuntimeHours: 12 };

function instance(
  overrides: Partial<InstanceView> & { tags?: Record<string, string> } = {},
): InstanceView {
  return {
    instanceId: 'i-1',
    state: 'running',
    instanceType: 'g5.xlarge',
    availabilityZone: 'us-east-1a',
    launchTime: hoursAgo(1),
    market: 'spot',
    usdPerHour: 0.5,
    ...overrides,
    tags: {
      [TAG_KEYS.stack]: 'TrainingStack',
      [TAG_KEYS.runId]: 'run-1',
      [TAG_KEYS.maxRuntimeHours]: '12',
      ...overrides.tags,
    },
  };
}

describe('decideTerminations', () => {
  test.each([
    ['within runtime and cost', instance(), 'keep', undefined],
    ['past max runtime', instance({ launchTime: hoursAgo(12.1) }), 'stop', 'max-runtime'],
    ['exactly at max runtime', instance({ launchTime: hoursAgo(12) }), 'stop', 'max-runtime'],
    [
      'a fractional runtime limit',
      instance({ launchTime: hoursAgo(0.6), tags: { [TAG_KEYS.maxRuntimeHours]: '0.5' } }),
      'stop',
      'max-runtime',
    ],
    [
      'over the run cost cap',
      instance({ launchTime: hoursAgo(5), tags: { [TAG_KEYS.maxRunCostUsd]: '2' } }),
      'stop',
      'max-cost',
    ],
    [
      'under the run cost cap',
      instance({ launchTime: hoursAgo(3), tags: { [TAG_KEYS.maxRunCostUsd]: '2' } }),
      'keep',
      undefined,
    ],
    [
      'over the cap counting earlier instances of the run',
      instance({
        launchTime: hoursAgo(1),
        priorRunCostUsd: 1.8,
        tags: { [TAG_KEYS.maxRunCostUsd]: '2' },
      }),
      'stop',
      'max-cost',
    ],
    [
      'both limits: runtime wins',
      instance({ launchTime: hoursAgo(13), tags: { [TAG_KEYS.maxRunCostUsd]: '1' } }),
      'stop',
      'max-runtime',
    ],
    [
      'no price: the cost cap cannot fire',
      instance({
        launchTime: hoursAgo(5),
        usdPerHour: undefined,
        tags: { [TAG_KEYS.maxRunCostUsd]: '1' },
      }),
      'keep',
      undefined,
    ],
    [
      'shutting down',
      instance({ state: 'shutting-down', launchTime: hoursAgo(20) }),
      'skip',
      undefined,
    ],
    ['terminated', instance({ state: 'terminated', launchTime: hoursAgo(20) }), 'skip', undefined],
    ['stopped', instance({ state: 'stopped', launchTime: hoursAgo(20) }), 'skip', undefined],
    [
      'pending past its limit',
      instance({ state: 'pending', launchTime: hoursAgo(13) }),
      'stop',
      'max-runtime',
    ],
    [
      'another stack',
      instance({ launchTime: hoursAgo(20), tags: { [TAG_KEYS.stack]: 'OtherStack' } }),
      'skip',
      undefined,
    ],
    [
      'max-runtime tag missing: the stack default applies',
      instance({ launchTime: hoursAgo(12.5), tags: { [TAG_KEYS.maxRuntimeHours]: '' } }),
      'stop',
      'max-runtime',
    ],
    [
      'max-runtime tag unreadable: the stack default applies',
      instance({ launchTime: hoursAgo(11), tags: { [TAG_KEYS.maxRuntimeHours]: 'abc' } }),
      'keep',
      undefined,
    ],
    [
      'run-id tag missing: still enforced',
      instance({ launchTime: hoursAgo(13), tags: { [TAG_KEYS.runId]: '' } }),
      'stop',
      'max-runtime',
    ],
    [
      'cost cap tag unreadable: ignored',
      instance({ launchTime: hoursAgo(5), tags: { [TAG_KEYS.maxRunCostUsd]: 'lots' } }),
      'keep',
      undefined,
    ],
  ])('%s', (_name, view, action, reason) => {
    const [decision] = decideTerminations([view], LIMITS, NOW);
    expect(decision.action).toBe(action);
    expect(decision.reason).toBe(reason);
  });

  test('a missing run-id tag leaves runId undefined', () => {
    const view = instance();
    const untagged = { ...view, tags: { [TAG_KEYS.stack]: 'TrainingStack' } };
    expect(decideTerminations([untagged], LIMITS, NOW)[0].runId).toBeUndefined();
  });

  test('a stop reports runtime, instance cost and run cost', () => {
    const [decision] = decideTerminations(
      [
        instance({
          launchTime: hoursAgo(4),
          usdPerHour: 1.006,
          priorRunCostUsd: 3,
          tags: { [TAG_KEYS.maxRunCostUsd]: '5' },
        }),
      ],
      LIMITS,
      NOW,
    );
    expect(decision).toMatchObject({
      action: 'stop',
      reason: 'max-cost',
      runId: 'run-1',
      runtimeSeconds: 4 * 3600,
      instanceCostUsd: 4.02,
      runCostUsd: 7.02,
    });
    expect(decision.detail).toBe('run cost ~7.02 USD, cap 5 USD');
  });

  test('the default limit is named in the detail when the tag is missing', () => {
    const [decision] = decideTerminations(
      [instance({ launchTime: hoursAgo(13), tags: { [TAG_KEYS.maxRuntimeHours]: '' } })],
      LIMITS,
      NOW,
    );
    expect(decision.detail).toBe('ran 13.00 h, limit 12 h (stack default: limit tag missing)');
  });

  test('one decision per instance, in order', () => {
    const decisions = decideTerminations(
      [instance({ instanceId: 'i-a' }), instance({ instanceId: 'i-b', launchTime: hoursAgo(30) })],
      LIMITS,
      NOW,
    );
    expect(decisions.map((d) => [d.instanceId, d.action])).toEqual([
      ['i-a', 'keep'],
      ['i-b', 'stop'],
    ]);
  });
});
