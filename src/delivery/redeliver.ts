import { and, eq, sql } from 'drizzle-orm';
import { type TaskRow, tasks } from '../../drizzle/schema.ts';
import type { Relay } from '../context.ts';
import { conflict, invalid, notFound } from '../errors.ts';
import { enqueue, Queues } from '../jobs/queues.ts';
import { recordEvents } from '../tasks/events.ts';
import { isTerminal } from '../tasks/finish-task.ts';

/**
 * POST /v1/tasks/:id/redeliver — starts a new delivery round of the onComplete webhook (same
 * `webhook-id`, so a receiver that did process it can still deduplicate). Bumping the generation
 * retires any retry still scheduled from the previous round.
 */
export async function redeliverTask(relay: Relay, projectId: string, taskId: string): Promise<TaskRow> {
  return relay.db.transaction(async (tx) => {
    const [task] = await tx
      .select()
      .from(tasks)
      .where(and(eq(tasks.id, taskId), eq(tasks.projectId, projectId)))
      .for('update');
    if (!task) throw notFound();
    if (!task.onCompleteUrl) throw invalid('Task has no onCompleteUrl');
    if (!isTerminal(task.status)) throw conflict(`Task is not finished yet (current: ${task.status})`);
    const [row] = await tx
      .update(tasks)
      .set({
        deliveryStatus: 'pending',
        deliveryAttempts: 0,
        deliveryNextAt: null,
        deliveryGeneration: sql`${tasks.deliveryGeneration} + 1`,
        updatedAt: sql`now()`,
      })
      .where(eq(tasks.id, taskId))
      .returning();
    await recordEvents(tx, taskId, [
      { type: 'delivery.redeliver_requested', data: { previous: task.deliveryStatus, generation: row.deliveryGeneration } },
    ]);
    await enqueue(relay.boss, tx, Queues.notify, { taskId, generation: row.deliveryGeneration, attempt: 1 });
    return row;
  });
}
