import { eq, sql } from 'drizzle-orm';
import { type StoredResult, type TaskRow, tasks } from '../../drizzle/schema.ts';
import type { Relay } from '../context.ts';
import { recordEvents } from '../tasks/events.ts';
import { CALLBACK_STATUSES, finishTask } from '../tasks/finish-task.ts';
import { isCallbackTokenShape, sha256Hex } from './token.ts';

export interface IncomingCallback {
  token: string;
  body: Uint8Array;
  contentType?: string;
}

/** Expected branches are data: the route maps each outcome to a status code. */
export type CallbackOutcome =
  | { outcome: 'accepted'; task: TaskRow }
  | { outcome: 'duplicate'; task: TaskRow }
  | { outcome: 'conflict'; task: TaskRow }
  | { outcome: 'late'; task: TaskRow }
  | { outcome: 'unknown' };

/** How much of a late payload the timeline keeps. */
const LATE_PAYLOAD_LIMIT = 64 * 1024;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A callback body as stored in `result.body`: text as is, binary as base64. */
export function storedBody(bytes: Uint8Array): Pick<StoredResult, 'body' | 'bodyEncoding'> {
  try {
    return { body: utf8.decode(bytes) };
  } catch {
    return { body: Buffer.from(bytes).toString('base64'), bodyEncoding: 'base64' };
  }
}

/**
 * A provider POSTs its result to /v1/callbacks/:token. The task row is locked while deciding, so
 * two deliveries of the same callback cannot both be accepted. The first accepted callback
 * completes the task, consumes the token and enqueues onComplete in one transaction; a repeat
 * of the same body is answered idempotently (providers retry on 4xx), anything else is a conflict.
 */
export async function consumeCallback(relay: Relay, callback: IncomingCallback): Promise<CallbackOutcome> {
  if (!isCallbackTokenShape(callback.token)) return { outcome: 'unknown' };
  const tokenHash = sha256Hex(callback.token);
  const bodyHash = sha256Hex(callback.body);
  return relay.db.transaction(async (tx): Promise<CallbackOutcome> => {
    const [task] = await tx.select().from(tasks).where(eq(tasks.callbackHash, tokenHash)).for('update');
    if (!task) return { outcome: 'unknown' };
    const size = callback.body.byteLength;

    if (task.callbackBodyHash === null && CALLBACK_STATUSES.includes(task.status)) {
      const since = task.dispatchedAt ?? task.createdAt;
      const result: StoredResult = {
        statusCode: 200,
        headers: callback.contentType ? { 'content-type': callback.contentType } : {},
        ...storedBody(callback.body),
        duration: Math.max(0, Date.now() - since.getTime()),
      };
      const row = await finishTask(relay.boss, tx, {
        taskId: task.id,
        from: CALLBACK_STATUSES,
        to: 'completed',
        result,
        error: null,
        set: { callbackBodyHash: bodyHash },
        events: [{ type: 'callback.accepted', data: { from: task.status, size } }],
      });
      if (row) return { outcome: 'accepted', task: row };
    }
    if (task.callbackBodyHash === bodyHash) {
      await recordEvents(tx, task.id, [{ type: 'callback.duplicate', data: { size } }]);
      return { outcome: 'duplicate', task };
    }
    if (task.status === 'timeout' || task.status === 'cancelled') {
      // Too late to change the outcome, but the result may still matter to the client.
      const late = storedBody(callback.body.subarray(0, LATE_PAYLOAD_LIMIT));
      await recordEvents(tx, task.id, [
        { type: 'callback.late', data: { status: task.status, size, ...late, truncated: size > LATE_PAYLOAD_LIMIT } },
      ]);
      await tx.update(tasks).set({ updatedAt: sql`now()` }).where(eq(tasks.id, task.id));
      return { outcome: 'late', task };
    }
    await recordEvents(tx, task.id, [{ type: 'callback.rejected', data: { status: task.status, size } }]);
    return { outcome: 'conflict', task };
  });
}
