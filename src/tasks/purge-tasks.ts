import { sql } from 'drizzle-orm';
import type { Relay } from '../context.ts';

/** Terminal tasks are kept this long after they finish (DESIGN §8). */
export const RETENTION_DAYS = 30;

/** The smallest UUID v7 minted at `ms`: every task created before then sorts below it. */
export function uuidv7Floor(ms: number): string {
  const hex = Math.max(0, Math.floor(ms)).toString(16).padStart(12, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-7000-8000-000000000000`;
}

/**
 * The scheduled `task.purge` job: deletes tasks that finished more than `retentionDays` ago
 * (their timeline goes with them), in bounded batches so one run never holds a long lock.
 * A task finishes after it is created, so every candidate was also created before the cutoff:
 * the primary key (time-ordered ids) narrows the scan without an index on completed_at, which
 * would cost every completion an index write. Returns the number deleted.
 */
export async function purgeTasks(relay: Relay, retentionDays = RETENTION_DAYS, now = Date.now()): Promise<number> {
  const cutoffMs = now - retentionDays * 24 * 60 * 60 * 1000;
  const below = uuidv7Floor(cutoffMs);
  const cutoff = new Date(cutoffMs).toISOString();
  let total = 0;
  for (let round = 0; round < 100; round++) {
    const deleted = await relay.db.execute(sql`
      delete from tasks where id in (
        select id from tasks
        where id < ${below}::uuid
          and completed_at < ${cutoff}::timestamptz
          and status in ('completed', 'failed', 'timeout', 'cancelled')
          and delivery_status is distinct from 'pending'
        limit 1000)
      returning id`);
    total += deleted.length;
    if (deleted.length < 1000) break;
  }
  return total;
}
