import { eq, sql } from 'drizzle-orm';
import { type TaskRow, tasks } from '../../drizzle/schema.ts';
import type { Relay } from '../context.ts';
import { statementOf, withLock } from '../db/pipeline.ts';
import { toTaskRow } from '../db/rows.ts';
import { insertEvents, lockById } from '../db/task-sql.ts';
import { conflict, invalid, notFound } from '../errors.ts';
import { Queues } from '../jobs/queues.ts';
import { isTerminal } from '../tasks/finish-task.ts';

/**
 * POST /v1/tasks/:id/redeliver — starts a new delivery round of the onComplete webhook (same
 * `webhook-id`, so a receiver that did process it can still deduplicate). Bumping the generation
 * retires any retry still scheduled from the previous round.
 */
export async function redeliverTask(relay: Relay, projectId: string, taskId: string): Promise<TaskRow> {
  return withLock(relay.sql, lockById(taskId), async (rows) => {
    const task = rows[0] ? toTaskRow(rows[0]) : undefined;
    if (!task || task.projectId !== projectId) throw notFound();
    if (!task.onCompleteUrl) throw invalid('Task has no onCompleteUrl');
    if (!isTerminal(task.status)) throw conflict(`Task is not finished yet (current: ${task.status})`);
    const generation = task.deliveryGeneration + 1;
    return {
      statements: [
        statementOf(
          relay.db
            .update(tasks)
            .set({ deliveryStatus: 'pending', deliveryAttempts: 0, deliveryNextAt: null, deliveryGeneration: generation, updatedAt: sql`now()` })
            .where(eq(tasks.id, taskId))
            .returning(),
        ),
        insertEvents(taskId, [{ type: 'delivery.redeliver_requested', data: { previous: task.deliveryStatus, generation } }]),
        await relay.jobs.send(Queues.notify, { taskId, generation, attempt: 1 }),
      ],
      done: (results) => toTaskRow(results[0][0]),
    };
  });
}
