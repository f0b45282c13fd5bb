import type { TaskRow } from '../../drizzle/schema.ts';
import type { Relay } from '../context.ts';
import { withLock } from '../db/pipeline.ts';
import { toTaskRow } from '../db/rows.ts';
import { lockById } from '../db/sql/tasks.ts';
import { conflict, notFound } from '../errors.ts';
import { providerCancelStatements } from '../providers/provider-cancel.ts';
import { finishStatements, isTerminal } from './finish-task.ts';

/**
 * Cancels a task in any non-terminal status. A dispatch or callback racing with it waits for
 * the row lock and then finds the task cancelled; a task already terminal answers 409.
 */
export async function cancelTask(relay: Relay, projectId: string, taskId: string): Promise<TaskRow> {
  return withLock(relay.sql, lockById(taskId), async (rows) => {
    const task = rows[0] ? toTaskRow(rows[0]) : undefined;
    if (!task || task.projectId !== projectId) throw notFound();
    if (isTerminal(task.status)) throw conflict(`Task is already ${task.status}`);
    return {
      run: {
        cancelled: await finishStatements(relay, task, {
          to: 'cancelled',
          error: { code: 'cancelled', message: 'Cancelled by request' },
          events: [{ type: 'task.cancel_requested', data: { from: task.status } }],
        }),
        providerCancel: await providerCancelStatements(relay, task, 'cancelled'),
      },
      done: ({ cancelled }) => {
        relay.changes.publish([task.id]);
        return toTaskRow(cancelled[0]);
      },
    };
  });
}
