/**
 * Writes the trainer's copy of the price tables, or checks that it is current:
 *
 *     make docs                                                         # rewrite it
 *     npx ts-node --transpile-only scripts/docs/instance-prices.ts --check
 *
 * `tuning-trainer validate --instance-type` (Python, in the trainer image) estimates a run's
 * cost with the prices the stack's cost caps use. lib/pricing.ts stays their only source: this
 * renders them as JSON into the trainer package (trainer-image/src/tuning_trainer/
 * instance_prices.json, shipped as package data), and `make test-docs` fails when the file
 * differs from what lib/pricing.ts renders now.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  OTHER_REGION_FACTOR,
  PRICE_TABLE_DATE,
  PRICE_TABLE_SOURCE,
  REGIONAL_USD_PER_HOUR,
  US_EAST_1_PRICE_DATE,
} from '../../lib/pricing';

const ROOT = join(__dirname, '..', '..');
/** Repository-relative path of the generated file. */
export const INSTANCE_PRICES_JSON = 'trainer-image/src/tuning_trainer/instance_prices.json';

/** The JSON text the trainer reads (keys in lib/pricing.ts's order). */
export function renderInstancePrices(): string {
  const document = {
    generated_from: 'lib/pricing.ts by scripts/docs/instance-prices.ts (make docs); do not edit',
    source: PRICE_TABLE_SOURCE,
    us_east_1_date: US_EAST_1_PRICE_DATE,
    price_table_date: PRICE_TABLE_DATE,
    other_region_factor: OTHER_REGION_FACTOR,
    on_demand_usd_per_hour: REGIONAL_USD_PER_HOUR,
  };
  return `${JSON.stringify(document, null, 2)}\n`;
}

/** True when the file in the repository equals what lib/pricing.ts renders now. */
export function instancePricesCurrent(): boolean {
  try {
    return readFileSync(join(ROOT, INSTANCE_PRICES_JSON), 'utf8') === renderInstancePrices();
  } catch {
    return false;
  }
}

function main(args: readonly string[]): number {
  if (args.includes('--check')) {
    if (instancePricesCurrent()) return 0;
    console.error(`${INSTANCE_PRICES_JSON} is out of date: run \`make docs\` and commit it.`);
    return 1;
  }
  if (!instancePricesCurrent()) {
    writeFileSync(join(ROOT, INSTANCE_PRICES_JSON), renderInstancePrices());
    console.log(`${INSTANCE_PRICES_JSON} rewritten`);
  }
  return 0;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
