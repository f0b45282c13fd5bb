import type { TaskRow } from '../../drizzle/schema.ts';
import type { Relay } from '../context.ts';
import { withLock } from '../db/pipeline.ts';
import { toTaskRow } from '../db/rows.ts';
import { startDeliveryRound } from '../db/sql/deliveries.ts';
import { insertEvents } from '../db/sql/events.ts';
import { lockById } from '../db/sql/tasks.ts';
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
      run: {
        restarted: startDeliveryRound(relay.db, taskId, generation),
        event: insertEvents(taskId, [{ type: 'delivery.redeliver_requested', data: { previous: task.deliveryStatus, generation } }]),
        job: await relay.jobs.send(Queues.notify, { taskId, generation, attempt: 1 }),
      },
      done: ({ restarted }) => toTaskRow(restarted[0]),
    };
  });
}
