import type { TaskStatus } from '../../drizzle/schema.ts';
import type { ChangeFeed } from './change-feed.ts';

/**
 * Waits until the task's status is no longer `seen`, or `timeoutMs` passes, or the client goes
 * away. The waiter costs no query while it waits: the change feed (tasks/change-feed.ts) hears of
 * the task's changes from whichever process commits them and reads its status once then; before
 * it, every waiter re-read its row every 100 ms, and 2,000 long-polls on one key slowed every
 * tenant's creates and signals twentyfold (issue 15). The caller has checked that the task is
 * the caller's project's and reads it again (scoped) once this resolves.
 */
export function waitForStatusChange(changes: ChangeFeed, taskId: string, seen: TaskStatus, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
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
