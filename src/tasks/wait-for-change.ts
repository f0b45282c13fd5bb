import type { TaskRow, TaskStatus } from '../../drizzle/schema.ts';
import type { Relay } from '../context.ts';
import type { ChangeFeed } from '../db/change-feed.ts';
import { getTask } from './get-task.ts';

/**
 * Waits until the task's status is no longer `seen`, or `timeoutMs` passes, or the client goes
 * away. The waiter costs no query while it waits: the change feed (db/change-feed.ts) hears of
 * the task's changes from whichever process commits them and reads its status once then; before
 * it, every waiter re-read its row every 100 ms, and 2,000 long-polls on one key slowed every
 * tenant's creates and signals from ~10 ms to seconds (issue 15).
 */
export function waitForStatusChange(changes: ChangeFeed, taskId: string, seen: TaskStatus, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal?.aborted || timeoutMs <= 0) return resolve();
    const done = () => {
      clearTimeout(timer);
      stop();
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    const stop = changes.watch(taskId, seen, done);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * The long-poll of `GET /v1/tasks/:id?wait=`: the task (of this project, else a 404) once its
 * status is no longer `seen`, or as it is when the time is up. A wake-up whose read still finds
 * `seen` (a version read that raced a newer watch) waits again for the time left.
 */
export async function waitForTask(relay: Relay, projectId: string, taskId: string, seen: TaskStatus, timeoutMs: number, signal?: AbortSignal): Promise<TaskRow> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await waitForStatusChange(relay.changes, taskId, seen, deadline - Date.now(), signal);
    const task = await getTask(relay.db, projectId, taskId);
    if (task.status !== seen || Date.now() >= deadline || signal?.aborted || relay.changes.closed) return task;
  }
}
