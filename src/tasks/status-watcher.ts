import type postgres from 'postgres';

/** The channel the `tasks_status_notify` trigger (migrations/0001) sends task ids on. */
const CHANNEL = 'relay_task_status';

export interface StatusWatcher {
  /** Resolves when the task's status changes (on any replica) or after `timeoutMs`. */
  waitForChange(taskId: string, timeoutMs: number): { changed: Promise<boolean>; cancel(): void };
  close(): Promise<void>;
}

/**
 * One LISTEN connection per process fans status changes out to in-memory long-polls
 * (GET /v1/tasks/:id?wait=N). A waiter registers before the caller reads the row, so a change
 * between the read and the wait is not missed.
 */
export async function createStatusWatcher(sql: postgres.Sql): Promise<StatusWatcher> {
  const waiters = new Map<string, Set<() => void>>();
  const listener = await sql.listen(CHANNEL, (taskId) => {
    const set = waiters.get(taskId);
    if (!set) return;
    waiters.delete(taskId);
    for (const wake of set) wake();
  });

  return {
    waitForChange(taskId, timeoutMs) {
      let wake!: () => void;
      let timer: NodeJS.Timeout | undefined;
      const changed = new Promise<boolean>((resolve) => {
        wake = () => {
          clearTimeout(timer);
          resolve(true);
        };
        timer = setTimeout(() => {
          waiters.get(taskId)?.delete(wake);
          resolve(false);
        }, timeoutMs);
      });
      const set = waiters.get(taskId) ?? new Set();
      set.add(wake);
      waiters.set(taskId, set);
      return {
        changed,
        cancel() {
          clearTimeout(timer);
          waiters.get(taskId)?.delete(wake);
        },
      };
    },
    async close() {
      await listener.unlisten();
      for (const set of waiters.values()) for (const wake of set) wake();
      waiters.clear();
    },
  };
}
