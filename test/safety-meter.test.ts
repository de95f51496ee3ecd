/** A run's meter (lambda/safety/meter.ts): what each pass adds, from EC2's records alone. */
import {
  meterBillableSeconds,
  meterCostUsd,
  needsMetering,
  stateTransitionTime,
  updateMeter,
  type Meter,
  type MeteredInstance,
  type Observation,
} from '../lambda/safety/meter';

const NOW = new Date('2026-03-01T12:00:00Z');
const minutesAgo = (m: number) => new Date(NOW.getTime() - m * 60_000);
const iso = (date: Date) => date.toISOString();

function observed(overrides: Partial<Observation> = {}): Observation {
  return {
    instanceId: 'i-1',
    instanceType: 'g5.xlarge',
    market: 'on-demand',
    launchTime: minutesAgo(120),
    live: true,
    usdPerHour: 1,
    ...overrides,
  };
}

function counted(overrides: Partial<MeteredInstance> = {}): MeteredInstance {
  return {
    instanceType: 'g5.xlarge',
    market: 'on-demand',
    launchTime: iso(minutesAgo(120)),
    accountedUntil: iso(minutesAgo(5)),
    costUsd: 1,
    usdPerHour: 1,
    ...overrides,
  };
}

function meterOf(instances: Record<string, MeteredInstance>): Meter {
  return { schemaVersion: 1, runId: 'run-1', updatedAt: iso(minutesAgo(5)), instances };
}

/** The meter's entry for i-1 after one pass at NOW. */
function afterPass(before: MeteredInstance | undefined, observations: Observation[]) {
  const meter = before ? meterOf({ 'i-1': before }) : undefined;
  return updateMeter(meter, 'run-1', observations, NOW).instances['i-1'];
}

describe('updateMeter', () => {
  test.each<[string, MeteredInstance | undefined, Observation[], Partial<MeteredInstance>]>([
    [
      'first sight: counted from launch to now at the observed price',
      undefined,
      [observed({ usdPerHour: 0.75 })],
      {
        costUsd: 1.5,
        accountedUntil: iso(NOW),
        usdPerHour: 0.75,
        launchTime: iso(minutesAgo(120)),
      },
    ],
    [
      'a later pass adds only the time since accountedUntil',
      counted({ costUsd: 1, usdPerHour: 0.6 }),
      [observed({ usdPerHour: 0.6 })],
      { costUsd: 1.05, accountedUntil: iso(NOW), usdPerHour: 0.6 },
    ],
    [
      'a price that rose: the interval is counted at the new, higher price',
      counted({ costUsd: 1, usdPerHour: 0.6 }),
      [observed({ usdPerHour: 1.2 })],
      { costUsd: 1.1, usdPerHour: 1.2 },
    ],
    [
      'a price that fell: the interval is counted at the previous, higher price, then the new one',
      counted({ costUsd: 1, usdPerHour: 1.2 }),
      [observed({ usdPerHour: 0.6 })],
      { costUsd: 1.1, usdPerHour: 0.6 },
    ],
    [
      'ended with a time EC2 gives: counted to that time and marked ended',
      counted({ accountedUntil: iso(minutesAgo(20)), costUsd: 1, usdPerHour: 0.6 }),
      [observed({ live: false, endedAt: minutesAgo(10), usdPerHour: 0.6 })],
      { costUsd: 1.1, accountedUntil: iso(minutesAgo(10)), endedAt: iso(minutesAgo(10)) },
    ],
    [
      "ended spot: its last interval at the spot price last seen, not the adapter's on-demand bound",
      counted({ market: 'spot', accountedUntil: iso(minutesAgo(20)), costUsd: 1, usdPerHour: 0.3 }),
      [observed({ market: 'spot', live: false, endedAt: minutesAgo(10), usdPerHour: 1.006 })],
      { costUsd: 1.05, endedAt: iso(minutesAgo(10)), usdPerHour: 0.3 },
    ],
    [
      'ended without a time: counted to now (early rather than late)',
      counted({ accountedUntil: iso(minutesAgo(20)), costUsd: 1, usdPerHour: 0.6 }),
      [observed({ live: false, usdPerHour: 0.6 })],
      { costUsd: 1.2, accountedUntil: iso(NOW), endedAt: iso(NOW) },
    ],
    [
      'gone from EC2 (not closed by any pass: the Lambda failed an hour): counted to now, ended',
      counted({ accountedUntil: iso(minutesAgo(60)), costUsd: 1, usdPerHour: 1.2 }),
      [],
      { costUsd: 2.2, accountedUntil: iso(NOW), endedAt: iso(NOW) },
    ],
    [
      'gone from EC2 just after its last count: counted to now, ended',
      counted({ accountedUntil: iso(minutesAgo(2)), costUsd: 1, usdPerHour: 1.2 }),
      [],
      { costUsd: 1.04, accountedUntil: iso(NOW), endedAt: iso(NOW) },
    ],
    [
      'no price yet: nothing counted, the time waits for a price',
      undefined,
      [observed({ usdPerHour: undefined })],
      { costUsd: 0, accountedUntil: iso(minutesAgo(120)), usdPerHour: undefined },
    ],
    [
      'a price at last: the waiting time is counted from launch at that price',
      counted({ accountedUntil: iso(minutesAgo(120)), costUsd: 0, usdPerHour: undefined }),
      [observed({ usdPerHour: 0.5 })],
      { costUsd: 1, accountedUntil: iso(NOW), usdPerHour: 0.5 },
    ],
  ])('%s', (_name, before, observations, expected) => {
    const after = afterPass(before, observations);
    const { costUsd, ...fields } = expected;
    for (const [field, value] of Object.entries(fields)) {
      expect([field, after[field as keyof MeteredInstance]]).toEqual([field, value]);
    }
    if (costUsd !== undefined) expect(after.costUsd).toBeCloseTo(costUsd, 4);
    if (!('endedAt' in expected)) expect(after.endedAt).toBeUndefined();
  });

  test('an ended instance is frozen: later passes add nothing', () => {
    const ended = counted({
      accountedUntil: iso(minutesAgo(10)),
      endedAt: iso(minutesAgo(10)),
      costUsd: 1.1,
    });
    expect(afterPass(ended, [observed({ live: false, endedAt: minutesAgo(10) })])).toEqual(ended);
    expect(afterPass(ended, [observed({ live: true, usdPerHour: 5 })])).toEqual(ended);
    expect(afterPass(ended, [])).toEqual(ended);
  });

  test('a first sight of an ended instance counts launch to its end', () => {
    const after = afterPass(undefined, [
      observed({ live: false, launchTime: minutesAgo(90), endedAt: minutesAgo(30), usdPerHour: 2 }),
    ]);
    expect(after).toMatchObject({
      accountedUntil: iso(minutesAgo(30)),
      endedAt: iso(minutesAgo(30)),
    });
    expect(after.costUsd).toBeCloseTo(2, 4);
  });

  test('a new instance of the run is added beside the counted ones', () => {
    const meter = meterOf({ 'i-1': counted({ endedAt: iso(minutesAgo(5)) }) });
    const after = updateMeter(
      meter,
      'run-1',
      [
        observed({
          instanceId: 'i-2',
          launchTime: minutesAgo(30),
          market: 'spot',
          usdPerHour: 0.4,
        }),
      ],
      NOW,
    );
    expect(Object.keys(after.instances).sort()).toEqual(['i-1', 'i-2']);
    expect(after.instances['i-1']).toEqual(meter.instances['i-1']);
    expect(after.instances['i-2']).toMatchObject({ market: 'spot', usdPerHour: 0.4 });
    expect(after.instances['i-2'].costUsd).toBeCloseTo(0.2, 4);
  });

  test('the meter names its run, schema version and the time of the pass', () => {
    const after = updateMeter(undefined, 'run-1', [observed()], NOW);
    expect(after).toMatchObject({ schemaVersion: 1, runId: 'run-1', updatedAt: iso(NOW) });
  });

  test('the meter passed in is not changed', () => {
    const meter = meterOf({ 'i-1': counted() });
    const copy = JSON.parse(JSON.stringify(meter));
    updateMeter(meter, 'run-1', [observed({ usdPerHour: 3 })], NOW);
    expect(meter).toEqual(copy);
  });
});

describe('meter totals', () => {
  const meter = meterOf({
    'i-1': counted({
      launchTime: iso(minutesAgo(120)),
      accountedUntil: iso(minutesAgo(60)),
      costUsd: 1.2345,
    }),
    'i-2': counted({ launchTime: iso(minutesAgo(30)), accountedUntil: iso(NOW), costUsd: 0.1 }),
  });

  test('meterCostUsd sums every instance of the run', () => {
    expect(meterCostUsd(meter)).toBe(1.3345);
  });

  test('meterBillableSeconds sums the counted time of every instance', () => {
    expect(meterBillableSeconds(meter)).toBe(60 * 60 + 30 * 60);
  });

  test('an empty meter cost nothing', () => {
    expect(meterCostUsd(meterOf({}))).toBe(0);
    expect(meterBillableSeconds(meterOf({}))).toBe(0);
  });
});

describe('stateTransitionTime', () => {
  test.each([
    ['User initiated (2026-03-01 10:00:00 GMT)', '2026-03-01T10:00:00.000Z'],
    ['User initiated (2026-03-01 10:00:00 UTC)', '2026-03-01T10:00:00.000Z'],
    ['Service initiated (2026-02-28 23:59:59 GMT)', '2026-02-28T23:59:59.000Z'],
  ])('%s is %s', (reason, expected) => {
    expect(stateTransitionTime(reason)?.toISOString()).toBe(expected);
  });

  test.each([['Server.SpotInstanceTermination: Spot instance termination'], [''], [undefined]])(
    '%p has no time',
    (reason) => {
      expect(stateTransitionTime(reason)).toBeUndefined();
    },
  );
});

describe('needsMetering', () => {
  const closed = counted({ endedAt: iso(minutesAgo(10)) });
  test.each<[string, MeteredInstance | undefined, Observation[], boolean]>([
    ['a live instance', counted(), [observed()], true],
    ['an ended instance the meter has not closed', counted(), [observed({ live: false })], true],
    ['an ended instance never counted', undefined, [observed({ live: false })], true],
    ['only instances the meter closed', closed, [observed({ live: false })], false],
  ])('%s: %s', (_name, before, observations, expected) => {
    const meter = before ? meterOf({ 'i-1': before }) : undefined;
    expect(needsMetering(meter, observations)).toBe(expected);
  });
});
