import { sql } from 'drizzle-orm';
import type { Relay } from '../context.ts';

/** Terminal tasks are kept this long after they finish (DESIGN §8). */
export const RETENTION_DAYS = 30;

/**
 * The scheduled `task.purge` job: deletes finished tasks past retention (their timeline goes with
 * them), in bounded batches so one run never holds a long lock. Returns the number deleted.
 */
export async function purgeTasks(relay: Relay, retentionDays = RETENTION_DAYS): Promise<number> {
  let total = 0;
  for (let round = 0; round < 100; round++) {
    const deleted = await relay.db.execute(sql`
      delete from tasks where id in (
        select id from tasks
        where completed_at < now() - make_interval(days => ${retentionDays})
          and status in ('completed', 'failed', 'timeout', 'cancelled')
          and (delivery_status is distinct from 'pending')
        limit 1000)
      returning id`);
    total += deleted.length;
    if (deleted.length < 1000) break;
  }
  return total;
}
