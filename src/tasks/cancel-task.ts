import { and, eq } from 'drizzle-orm';
import { type TaskRow, tasks } from '../../drizzle/schema.ts';
import type { Relay } from '../context.ts';
import { conflict, notFound } from '../errors.ts';
import { finishTask, NON_TERMINAL_STATUSES } from './finish-task.ts';

/**
 * Cancels a task in any non-terminal status. A dispatch or callback racing with it loses the
 * compare-and-set; a task already terminal answers 409 with its status.
 */
export async function cancelTask(relay: Relay, projectId: string, taskId: string): Promise<TaskRow> {
  return relay.db.transaction(async (tx) => {
    const [task] = await tx
      .select({ status: tasks.status })
      .from(tasks)
      .where(and(eq(tasks.id, taskId), eq(tasks.projectId, projectId)))
      .for('update');
    if (!task) throw notFound();
    const row = await finishTask(relay.boss, tx, {
      taskId,
      from: NON_TERMINAL_STATUSES,
      to: 'cancelled',
      error: { code: 'cancelled', message: 'Cancelled by request' },
      events: [{ type: 'task.cancel_requested', data: { from: task.status } }],
    });
    if (!row) throw conflict(`Task is already ${task.status}`);
    return row;
  });
}
