import { setTimeout as sleep } from 'node:timers/promises';
import { and, eq, ne } from 'drizzle-orm';
import { type TaskStatus, tasks } from '../../drizzle/schema.ts';
import type { DbOrTx } from '../db/client.ts';

/** How often a long-poll re-reads the task. */
export const LONG_POLL_INTERVAL_MS = 100;

/**
 * Waits until the task's status is no longer `seen`, or `timeoutMs` passes, or the client goes
 * away. It re-reads one indexed row every 100 ms rather than LISTENing: a NOTIFY on every
 * status change would serialise every commit of every task behind PostgreSQL's notification
 * lock (measured 2.5× fewer commits/s), while long-polls are few and cost only while they wait.
 */
export async function waitForStatusChange(
  db: DbOrTx,
  projectId: string,
  taskId: string,
  seen: TaskStatus,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !signal?.aborted) {
    try {
      await sleep(Math.min(LONG_POLL_INTERVAL_MS, deadline - Date.now()), undefined, { signal });
    } catch {
      return; // client gone
    }
    const [changed] = await db
      .select({ status: tasks.status })
      .from(tasks)
      .where(and(eq(tasks.id, taskId), eq(tasks.projectId, projectId), ne(tasks.status, seen)));
    if (changed) return;
  }
}
