import {
  OTHER_REGION_FACTOR,
  ON_DEMAND_USD_PER_HOUR,
  onDemandPrice,
  PRICE_TABLE_DATE,
  SUPPORTED_INSTANCE_TYPES,
} from '../lib/pricing';

describe('on-demand price table', () => {
  test('is dated', () => {
    expect(PRICE_TABLE_DATE).toMatch(/^\d{4}-\d{2}-\d{2}$/);
  });

  test('covers every family the stack accepts, each price positive', () => {
    const families = new Set(SUPPORTED_INSTANCE_TYPES.map((t) => t.split('.')[0]));
    expect([...families].sort()).toEqual(['g4dn', 'g5', 'g6', 'g6e', 'p3']);
    for (const price of Object.values(ON_DEMAND_USD_PER_HOUR)) expect(price).toBeGreaterThan(0);
  });

  test('a table region gets the table price, not estimated', () => {
    expect(onDemandPrice('g5.xlarge', 'us-west-2')).toEqual({
      usdPerHour: ON_DEMAND_USD_PER_HOUR['g5.xlarge'],
      estimated: false,
    });
  });

  test('another region gets the marked-up estimate', () => {
    const price = onDemandPrice('g5.xlarge', 'eu-central-1');
    expect(price?.estimated).toBe(true);
    expect(price?.usdPerHour).toBeCloseTo(
      ON_DEMAND_USD_PER_HOUR['g5.xlarge'] * OTHER_REGION_FACTOR,
      4,
    );
  });

  test('an unknown type has no price', () => {
    expect(onDemandPrice('m5.large', 'us-east-1')).toBeUndefined();
  });
});
