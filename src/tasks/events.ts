import type { DbOrTx } from '../db/client.ts';
import { listTaskEvents } from '../db/sql/task-reads.ts';

/** Up to `limit` events of the task after the event `afterId`, oldest first (keyset on the id). */
export async function listEvents(db: DbOrTx, taskId: string, afterId = 0, limit = 1000) {
  return listTaskEvents(db, taskId, afterId, limit);
}
