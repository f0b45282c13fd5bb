import type { DbOrTx } from '../db/client.ts';
import { listTaskEvents } from '../db/sql/task-reads.ts';

/**
 * Timeline event types, dotted. Recorded in the same transaction as the change they describe,
 * so the timeline never shows a change that did not happen, nor misses one that did.
 */
export type TaskEventType =
  | 'task.created'
  | 'status.changed'
  | 'dispatch.attempt'
  | 'dispatch.retry_scheduled'
  | 'dispatch.late_response'
  | 'callback.accepted'
  | 'callback.duplicate'
  | 'callback.rejected'
  | 'callback.late'
  | 'signal.accepted'
  | 'signal.rejected'
  | 'delivery.attempt'
  | 'delivery.succeeded'
  | 'delivery.stopped'
  | 'delivery.exhausted'
  | 'delivery.redeliver_requested'
  | 'task.cancel_requested'
  | 'callback.progress'
  | 'callback.unauthorized'
  /** A signed callback that cannot be judged yet (fal's request id unknown): answered 503. */
  | 'callback.deferred'
  | 'callback.superseded'
  | 'poll.started'
  | 'poll.attempt'
  | 'poll.result_fetch'
  | 'poll.superseded'
  | 'poll.stopped'
  | 'provider.cancel_attempt'
  /** Events of one kind past its cap (callbacks/capped-events.ts), counted instead of recorded. */
  | 'timeline.suppressed';

export interface NewEvent {
  type: TaskEventType;
  data?: Record<string, unknown>;
}

/** Up to `limit` events of the task after the event `afterId`, oldest first (keyset on the id). */
export async function listEvents(db: DbOrTx, taskId: string, afterId = 0, limit = 1000) {
  return listTaskEvents(db, taskId, afterId, limit);
}
