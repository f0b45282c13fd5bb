import type { Relay } from '../context.ts';
import { deleteFinishedTasks, PURGE_BATCH } from '../db/sql/purge.ts';

/** Terminal tasks are kept this long after they finish (DESIGN §8). */
export const RETENTION_DAYS = 30;

/** The smallest UUID v7 minted at `ms`: every task created before then sorts below it. */
export function uuidv7Floor(ms: number): string {
  const hex = Math.max(0, Math.floor(ms)).toString(16).padStart(12, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-7000-8000-000000000000`;
}

/**
 * The scheduled `task.purge` job: deletes tasks that finished more than `retentionDays` ago
 * (their timeline goes with them), in bounded batches so one run never holds a long lock (see
 * deleteFinishedTasks for how the scan is narrowed). Returns the number deleted.
 */
export async function purgeTasks(relay: Relay, retentionDays = RETENTION_DAYS, now = Date.now()): Promise<number> {
  const cutoffMs = now - retentionDays * 24 * 60 * 60 * 1000;
  const below = uuidv7Floor(cutoffMs);
  const cutoff = new Date(cutoffMs).toISOString();
  let total = 0;
  for (let round = 0; round < 100; round++) {
    const deleted = await deleteFinishedTasks(relay.db, below, cutoff);
    total += deleted;
    if (deleted < PURGE_BATCH) break;
  }
  return total;
}
