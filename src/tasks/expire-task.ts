import type { TaskRow } from '../../drizzle/schema.ts';
import type { Relay } from '../context.ts';
import { nothing, withLock } from '../db/pipeline.ts';
import { toTaskRow } from '../db/rows.ts';
import { lockById } from '../db/sql/tasks.ts';
import type { PollConfig } from '../providers/poll-config.ts';
import { providerCancelStatements } from '../providers/provider-cancel.ts';
import { finishStatements } from './finish-task.ts';

/**
 * The `task.deadline` job: `maxWaitTime` has passed since the task started waiting. If no
 * callback, signal or poll finished it meanwhile, it times out; otherwise this changes nothing.
 */
export async function expireTask(relay: Relay, taskId: string): Promise<void> {
  await withLock(relay.sql, lockById(taskId), async (rows) => {
    const task = rows[0] ? toTaskRow(rows[0]) : undefined;
    if (!task || (task.status !== 'waiting' && task.status !== 'polling')) return nothing(undefined);
    return {
      run: {
        timedOut: await finishStatements(relay, task, { to: 'timeout', error: { code: 'timeout', message: timeoutMessage(task) } }),
        providerCancel: await providerCancelStatements(relay, task, 'timeout'),
      },
      done: () => relay.changes.publish([task.id]),
    };
  });
}

/** Which limit ran out: a waiting task that is also polled has the polling deadline (maxDuration). */
function timeoutMessage(task: TaskRow): string {
  if (task.status === 'polling') return 'The provider did not finish within the polling deadline (pollConfig.maxDuration, else maxWaitTime)';
  const maxDuration = task.providerJob ? (task.pollConfig as PollConfig | null)?.maxDuration : undefined;
  return maxDuration === undefined
    ? `No callback or signal arrived within maxWaitTime (${task.maxWaitTime} s)`
    : `No callback or signal arrived, and the fallback poll did not see the end, within pollConfig.maxDuration (${maxDuration} s)`;
}
