import { and, eq } from 'drizzle-orm';
import { type TaskRow, tasks } from '../../drizzle/schema.ts';
import type { Relay } from '../context.ts';
import { withLock } from '../db/pipeline.ts';
import { toTaskRow } from '../db/rows.ts';
import { conflict, notFound } from '../errors.ts';
import { finishStatements, isTerminal, NON_TERMINAL_STATUSES } from './finish-task.ts';
import { lockTask } from './lock-task.ts';

/**
 * Cancels a task in any non-terminal status. A dispatch or callback racing with it waits for
 * the row lock and then finds the task cancelled; a task already terminal answers 409.
 */
export async function cancelTask(relay: Relay, projectId: string, taskId: string): Promise<TaskRow> {
  return withLock(relay.sql, lockTask(relay, and(eq(tasks.id, taskId), eq(tasks.projectId, projectId))), async (rows) => {
    if (!rows[0]) throw notFound();
    const task = toTaskRow(rows[0]);
    if (isTerminal(task.status)) throw conflict(`Task is already ${task.status}`);
    return {
      statements: await finishStatements(relay, task, {
        from: NON_TERMINAL_STATUSES,
        to: 'cancelled',
        error: { code: 'cancelled', message: 'Cancelled by request' },
        events: [{ type: 'task.cancel_requested', data: { from: task.status } }],
      }),
      done: (results) => toTaskRow(results[0][0]),
    };
  });
}
