import {
  OTHER_REGION_FACTOR,
  ON_DEMAND_USD_PER_HOUR,
  onDemandPrice,
  PRICE_TABLE_DATE,
  REGIONAL_USD_PER_HOUR,
  SPOT_SNAPSHOT_DATE,
  SPOT_SNAPSHOT_US_EAST_1,
  SUPPORTED_INSTANCE_TYPES,
  TABLE_REGIONS,
} from '../lib/pricing';

const regionalPrices = Object.entries(REGIONAL_USD_PER_HOUR).flatMap(([region, table]) =>
  Object.entries(table).map(([type, usdPerHour]) => ({ region, type, usdPerHour })),
);

describe('on-demand price tables', () => {
  test('are dated 2026-01-21, the date of the oldest figure', () => {
    expect(PRICE_TABLE_DATE).toBe('2026-01-21');
  });

  test('cover nine regions', () => {
    expect([...TABLE_REGIONS].sort()).toEqual(
      [
        'ap-northeast-1',
        'ap-south-1',
        'ap-southeast-1',
        'eu-central-1',
        'eu-west-1',
        'sa-east-1',
        'us-east-1',
        'us-east-2',
        'us-west-2',
      ].sort(),
    );
  });

  test('cover every family the stack accepts, each price positive', () => {
    const families = new Set(SUPPORTED_INSTANCE_TYPES.map((t) => t.split('.')[0]));
    expect([...families].sort()).toEqual(['g4dn', 'g5', 'g6', 'g6e', 'p4d', 'p5']);
    for (const price of Object.values(ON_DEMAND_USD_PER_HOUR)) expect(price).toBeGreaterThan(0);
  });

  test('price no P3 type (no AMI boots it)', () => {
    expect(SUPPORTED_INSTANCE_TYPES.filter((t) => t.startsWith('p3'))).toEqual([]);
    expect(onDemandPrice('p3.2xlarge', 'us-east-1')).toBeUndefined();
  });

  test('list in each region only types the stack accepts', () => {
    for (const { type } of regionalPrices) expect(SUPPORTED_INSTANCE_TYPES).toContain(type);
  });

  test('every regional price is 1.0 to 1.75 times the us-east-1 price, so the markup bounds it', () => {
    const outside = regionalPrices.filter(({ type, usdPerHour }) => {
      const base = ON_DEMAND_USD_PER_HOUR[type];
      return usdPerHour < base || usdPerHour > base * OTHER_REGION_FACTOR;
    });
    expect(regionalPrices.length).toBeGreaterThan(100);
    expect(outside).toEqual([]);
  });
});

describe('onDemandPrice', () => {
  test('a table region gets its table price, not estimated', () => {
    expect(onDemandPrice('g5.xlarge', 'us-west-2')).toEqual({
      usdPerHour: ON_DEMAND_USD_PER_HOUR['g5.xlarge'],
      estimated: false,
    });
  });

  test("sa-east-1 g5.xlarge is the region's own price, 1.71", () => {
    expect(onDemandPrice('g5.xlarge', 'sa-east-1')).toEqual({ usdPerHour: 1.71, estimated: false });
  });

  test('a region without a table gets the us-east-1 price times 1.75, estimated', () => {
    expect(OTHER_REGION_FACTOR).toBe(1.75);
    expect(onDemandPrice('g5.xlarge', 'ca-central-1')).toEqual({
      usdPerHour: Math.round(ON_DEMAND_USD_PER_HOUR['g5.xlarge'] * 1.75 * 10_000) / 10_000,
      estimated: true,
    });
  });

  test('a table region that lacks the type gets the estimate (g6e.xlarge in eu-west-1)', () => {
    expect(REGIONAL_USD_PER_HOUR['eu-west-1']['g6e.xlarge']).toBeUndefined();
    expect(onDemandPrice('g6e.xlarge', 'eu-west-1')).toEqual({
      usdPerHour: Math.round(ON_DEMAND_USD_PER_HOUR['g6e.xlarge'] * 1.75 * 10_000) / 10_000,
      estimated: true,
    });
  });

  test('an unknown type has no price', () => {
    expect(onDemandPrice('m5.large', 'us-east-1')).toBeUndefined();
  });
});

describe('the spot snapshot (docs only, never a cost cap)', () => {
  test('is dated 2025-11-30 and covers exactly the types the stack accepts', () => {
    expect(SPOT_SNAPSHOT_DATE).toBe('2025-11-30');
    expect(Object.keys(SPOT_SNAPSHOT_US_EAST_1)).toEqual([...SUPPORTED_INSTANCE_TYPES]);
  });

  test('orders min <= mean <= max, each below the on-demand price', () => {
    const wrong = Object.entries(SPOT_SNAPSHOT_US_EAST_1).filter(
      ([type, s]) =>
        !(
          s.minUsdPerHour > 0 &&
          s.minUsdPerHour <= s.meanUsdPerHour &&
          s.meanUsdPerHour <= s.maxUsdPerHour &&
          s.maxUsdPerHour < ON_DEMAND_USD_PER_HOUR[type]
        ),
    );
    expect(wrong).toEqual([]);
  });
});
