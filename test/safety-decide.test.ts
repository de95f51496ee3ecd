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
    inGroup: true,
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
      instance({
        launchTime: hoursAgo(5),
        runCostUsd: 2.5,
        tags: { [TAG_KEYS.maxRunCostUsd]: '2' },
      }),
      'stop',
      'max-cost',
    ],
    [
      'exactly at the run cost cap',
      instance({ runCostUsd: 2, tags: { [TAG_KEYS.maxRunCostUsd]: '2' } }),
      'stop',
      'max-cost',
    ],
    [
      'under the run cost cap',
      instance({
        launchTime: hoursAgo(3),
        runCostUsd: 1.5,
        tags: { [TAG_KEYS.maxRunCostUsd]: '2' },
      }),
      'keep',
      undefined,
    ],
    [
      "over the cap counting the run's earlier instances (the meter's total)",
      instance({
        launchTime: hoursAgo(1),
        runCostUsd: 2.3,
        tags: { [TAG_KEYS.maxRunCostUsd]: '2' },
      }),
      'stop',
      'max-cost',
    ],
    [
      "the run's meter, not this instance's runtime, is the run's cost",
      instance({ launchTime: hoursAgo(5), runCostUsd: 1, tags: { [TAG_KEYS.maxRunCostUsd]: '2' } }),
      'keep',
      undefined,
    ],
    [
      'no run-id tag: the instance is its own run, priced by its runtime',
      instance({
        launchTime: hoursAgo(5),
        tags: { [TAG_KEYS.runId]: '', [TAG_KEYS.maxRunCostUsd]: '2' },
      }),
      'stop',
      'max-cost',
    ],
    [
      'both limits: runtime wins',
      instance({
        launchTime: hoursAgo(13),
        runCostUsd: 7,
        tags: { [TAG_KEYS.maxRunCostUsd]: '1' },
      }),
      'stop',
      'max-runtime',
    ],
    [
      'no run cost (no meter): the cost cap cannot fire',
      instance({ launchTime: hoursAgo(5), tags: { [TAG_KEYS.maxRunCostUsd]: '1' } }),
      'keep',
      undefined,
    ],
    [
      'no price and no run cost: the cost cap cannot fire',
      instance({
        launchTime: hoursAgo(5),
        usdPerHour: undefined,
        tags: { [TAG_KEYS.maxRunCostUsd]: '1' },
      }),
      'keep',
      undefined,
    ],
    [
      "no price for this instance, but the meter's lower bound already passes the cap",
      instance({
        launchTime: hoursAgo(1),
        usdPerHour: undefined,
        runCostUsd: 2.5,
        tags: { [TAG_KEYS.maxRunCostUsd]: '2' },
      }),
      'stop',
      'max-cost',
    ],
    [
      'group membership unknown: the one-instance rule does not hold a place for it',
      instance({ inGroup: undefined }),
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
      instance({
        launchTime: hoursAgo(5),
        runCostUsd: 50,
        tags: { [TAG_KEYS.maxRunCostUsd]: 'lots' },
      }),
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
          runCostUsd: 7.0213,
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

  test('an unpriced run under a cap says the cap was not checked', () => {
    const [decision] = decideTerminations(
      [instance({ usdPerHour: undefined, tags: { [TAG_KEYS.maxRunCostUsd]: '5' } })],
      LIMITS,
      NOW,
    );
    expect(decision.detail).toBe(
      'within limits (1.00 of 12 h); cost cap not checked: no price for g5.xlarge',
    );
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

describe('at most one billing instance in the group and one outside it', () => {
  const live = (id: string, launchedHoursAgo: number, overrides: Partial<InstanceView> = {}) =>
    instance({ instanceId: id, launchTime: hoursAgo(launchedHoursAgo), ...overrides });
  const outcome = (instances: InstanceView[]) =>
    decideTerminations(instances, LIMITS, NOW).map((d) => [d.instanceId, d.action, d.reason]);

  test('of two live group members the newer is stopped, naming the older as kept', () => {
    const decisions = decideTerminations([live('i-old', 2), live('i-new', 1)], LIMITS, NOW);
    expect(decisions[0]).toMatchObject({ instanceId: 'i-old', action: 'keep' });
    expect(decisions[1]).toMatchObject({
      instanceId: 'i-new',
      action: 'stop',
      reason: 'extra-instance',
      keptInstanceId: 'i-old',
      runId: 'run-1',
    });
    expect(decisions[1].detail).toBe(
      'a second billing instance of stack TrainingStack in its Auto Scaling group; i-old ' +
        '(launched earlier) keeps the run',
    );
  });

  test('the newer is stopped whatever order the instances are listed in', () => {
    expect(outcome([live('i-new', 1), live('i-old', 2)])).toEqual([
      ['i-new', 'stop', 'extra-instance'],
      ['i-old', 'keep', undefined],
    ]);
  });

  test('one in the group and one detached (a debug hold) are both kept', () => {
    expect(outcome([live('i-group', 1), live('i-held', 2, { inGroup: false })])).toEqual([
      ['i-group', 'keep', undefined],
      ['i-held', 'keep', undefined],
    ]);
  });

  test('of two detached instances the newer is stopped', () => {
    const decisions = decideTerminations(
      [live('i-held', 3, { inGroup: false }), live('i-stray', 1, { inGroup: false })],
      LIMITS,
      NOW,
    );
    expect(decisions.map((d) => [d.instanceId, d.action, d.reason])).toEqual([
      ['i-held', 'keep', undefined],
      ['i-stray', 'stop', 'extra-instance'],
    ]);
    expect(decisions[1].keptInstanceId).toBe('i-held');
    expect(decisions[1].detail).toBe(
      'a second billing instance of stack TrainingStack outside its group; i-held ' +
        '(launched earlier) keeps the run',
    );
  });

  test('an instance stopped for max-runtime does not hold a place', () => {
    expect(outcome([live('i-overdue', 13), live('i-new', 1)])).toEqual([
      ['i-overdue', 'stop', 'max-runtime'],
      ['i-new', 'keep', undefined],
    ]);
  });

  test('an instance that no longer bills does not hold a place', () => {
    expect(outcome([live('i-gone', 2, { state: 'terminated' }), live('i-new', 1)])).toEqual([
      ['i-gone', 'skip', undefined],
      ['i-new', 'keep', undefined],
    ]);
  });

  test("another stack's instance neither holds a place nor is stopped", () => {
    const other = live('i-other', 2, { tags: { [TAG_KEYS.stack]: 'OtherStack' } });
    expect(outcome([other, live('i-mine', 1)])).toEqual([
      ['i-other', 'skip', undefined],
      ['i-mine', 'keep', undefined],
    ]);
  });

  test('a third live instance in the group is stopped too, naming the oldest', () => {
    const decisions = decideTerminations(
      [live('i-1', 3), live('i-2', 2), live('i-3', 1)],
      LIMITS,
      NOW,
    );
    expect(decisions.map((d) => [d.action, d.keptInstanceId])).toEqual([
      ['keep', undefined],
      ['stop', 'i-1'],
      ['stop', 'i-1'],
    ]);
  });
});
