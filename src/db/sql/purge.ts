import { sql } from 'drizzle-orm';
import type { DbOrTx } from '../client.ts';

/*
 * The daily purge of `tasks` (DESIGN §8): finished tasks past their retention are deleted, and
 * their `task_events` go with them (on delete cascade). The stale `rate_limits` counters the same
 * job deletes are with their table (rate-limits.ts).
 */

/** Tasks deleted by one statement at most: one run of the purge never holds a long lock. */
export const PURGE_BATCH = 1000;

/**
 * Deletes up to PURGE_BATCH tasks that finished before `cutoff` (an ISO timestamp) and whose
 * webhook is not still pending; returns how many. A task finishes after it is created, so every
 * candidate was also created before the cutoff: `below`, the smallest UUID v7 of the cutoff, lets
 * the primary key (time-ordered ids) narrow the scan without an index on completed_at, which
 * would cost every completion an index write.
 */
export async function deleteFinishedTasks(db: DbOrTx, below: string, cutoff: string): Promise<number> {
  const deleted = await db.execute(sql`
    delete from tasks where id in (
      select id from tasks
      where id < ${below}::uuid
        and completed_at < ${cutoff}::timestamptz
        and status in ('completed', 'failed', 'timeout', 'cancelled')
        and delivery_status is distinct from 'pending'
      limit ${sql.raw(String(PURGE_BATCH))})
    returning id`);
  return deleted.length;
}
