import type { StoredResult, TaskRow } from '../../drizzle/schema.ts';
import type { Relay } from '../context.ts';
import { type Statement, withLock } from '../db/pipeline.ts';
import { toTaskRow } from '../db/rows.ts';
import { insertEvents, lockByCallbackHash } from '../db/task-sql.ts';
import { CALLBACK_STATUSES, finishStatements } from '../tasks/finish-task.ts';
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

type Decision = { statements: Statement[]; done: (results: Record<string, unknown>[][]) => CallbackOutcome };
const only = (outcome: CallbackOutcome, statements: Statement[] = []): Decision => ({ statements, done: () => outcome });

/**
 * A provider POSTs its result to /v1/callbacks/:token. The task row is locked while deciding, so
 * two deliveries of the same callback cannot both be accepted. The first accepted callback
 * completes the task, consumes the token and enqueues onComplete in one transaction; a repeat
 * of the same body is answered idempotently (providers retry on 4xx), anything else is a conflict.
 */
export async function consumeCallback(relay: Relay, callback: IncomingCallback): Promise<CallbackOutcome> {
  if (!isCallbackTokenShape(callback.token)) return { outcome: 'unknown' };
  const bodyHash = sha256Hex(callback.body);
  const size = callback.body.byteLength;
  return withLock(relay.sql, lockByCallbackHash(sha256Hex(callback.token)), async (rows): Promise<Decision> => {
    if (!rows[0]) return only({ outcome: 'unknown' });
    const task = toTaskRow(rows[0]);

    if (task.callbackBodyHash === null && CALLBACK_STATUSES.includes(task.status)) {
      const since = task.dispatchedAt ?? task.createdAt;
      const result: StoredResult = {
        statusCode: 200,
        headers: callback.contentType ? { 'content-type': callback.contentType } : {},
        ...storedBody(callback.body),
        duration: Math.max(0, Date.now() - since.getTime()),
      };
      const statements = await finishStatements(relay, task, {
        to: 'completed',
        result,
        error: null,
        callbackBodyHash: bodyHash,
        events: [{ type: 'callback.accepted', data: { from: task.status, size } }],
      });
      return { statements, done: (results) => ({ outcome: 'accepted', task: toTaskRow(results[0][0]) }) };
    }
    if (task.callbackBodyHash === bodyHash) {
      return only({ outcome: 'duplicate', task }, [insertEvents(task.id, [{ type: 'callback.duplicate', data: { size } }])]);
    }
    if (task.status === 'timeout' || task.status === 'cancelled') {
      // Too late to change the outcome, but the result may still matter to the client.
      const late = storedBody(callback.body.subarray(0, LATE_PAYLOAD_LIMIT));
      return only({ outcome: 'late', task }, [
        insertEvents(task.id, [{ type: 'callback.late', data: { status: task.status, size, ...late, truncated: size > LATE_PAYLOAD_LIMIT } }]),
      ]);
    }
    return only({ outcome: 'conflict', task }, [insertEvents(task.id, [{ type: 'callback.rejected', data: { status: task.status, size } }])]);
  });
}
