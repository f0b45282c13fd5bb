import type { Relay } from '../context.ts';
import { withLock } from '../db/pipeline.ts';
import { toTaskRow } from '../db/rows.ts';
import { lockById } from '../db/task-sql.ts';
import { providerCancelStatements } from '../providers/provider-cancel.ts';
import { finishStatements } from './finish-task.ts';

/**
 * The `task.deadline` job: `maxWaitTime` has passed since the task started waiting. If no
 * callback, signal or poll finished it meanwhile, it times out; otherwise this changes nothing.
 */
export async function expireTask(relay: Relay, taskId: string): Promise<void> {
  await withLock(relay.sql, lockById(taskId), async (rows) => {
    const task = rows[0] ? toTaskRow(rows[0]) : undefined;
    if (!task || (task.status !== 'waiting' && task.status !== 'polling')) return { statements: [], done: () => undefined };
    const message = task.status === 'polling'
      ? 'The provider did not finish within the polling deadline (pollConfig.maxDuration, else maxWaitTime)'
      : `No callback or signal arrived within maxWaitTime (${task.maxWaitTime} s)`;
    return {
      statements: [
        ...(await finishStatements(relay, task, { to: 'timeout', error: { code: 'timeout', message } })),
        ...(await providerCancelStatements(relay, task, 'timeout')),
      ],
      done: () => undefined,
    };
  });
}
