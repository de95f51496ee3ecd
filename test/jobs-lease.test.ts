/**
 * Who may train a run (lambda/jobs/lease.ts, `otherHolder`): the lease rules of contract
 * section 7 as the job controller reads them.
 */
import { otherHolder, type LeaseDocument } from '../lambda/jobs/lease';

const NOW = new Date('2026-12-01T12:00:00Z');
const ours = (holder: string) => holder.startsWith('tl-');

function lease(fields: Partial<LeaseDocument>): LeaseDocument {
  return {
    schemaVersion: 1,
    runId: 'run-1',
    holder: 'i-0abc1234',
    renewedAt: '2026-12-01T11:59:00.000Z',
    expiresAt: '2026-12-01T12:04:00.000Z',
    released: false,
    ...fields,
  };
}

test.each<[string, LeaseDocument | undefined, boolean]>([
  ['no lease: free', undefined, false],
  ["an instance's live lease: held", lease({}), true],
  ['released: free', lease({ released: true }), false],
  ['expired: free', lease({ expiresAt: '2026-12-01T11:59:59.000Z' }), false],
  ['expiring now: free', lease({ expiresAt: NOW.toISOString() }), false],
  ['an unreadable expiry: free (nobody can rely on it)', lease({ expiresAt: 'soon' }), false],
  ["one of the run's own jobs: free for the run", lease({ holder: 'tl-1-2-run-1-a3' }), false],
])('%s', (_name, doc, held) => {
  expect(otherHolder(doc, ours, NOW) !== undefined).toBe(held);
});
