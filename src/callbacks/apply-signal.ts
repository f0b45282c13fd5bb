import type { StoredError, StoredResult, TaskRow } from '../../drizzle/schema.ts';
import type { Relay } from '../context.ts';
import { nothing, withLock } from '../db/pipeline.ts';
import { toTaskRow } from '../db/rows.ts';
import { lockByCallbackHash } from '../db/sql/tasks.ts';
import type { SignalInput } from './schemas.ts';
import { CALLBACK_STATUSES, finishStatements } from '../tasks/finish-task.ts';
import type { CallbackRules } from '../providers/callback-rules.ts';
import { recordCapped } from './capped-events.ts';
import { isCallbackTokenShape, sha256Hex } from './token.ts';

export type SignalOutcome =
  | { outcome: 'accepted'; task: TaskRow }
  | { outcome: 'conflict'; task: TaskRow }
  /** The task requires signed callbacks: an unsigned signal on the same token must not bypass that. */
  | { outcome: 'unauthorized'; task: TaskRow }
  | { outcome: 'unknown' };

function signalResult(input: SignalInput, since: Date): StoredResult | null {
  if (input.result === undefined) return null;
  const body = typeof input.result === 'string' ? input.result : JSON.stringify(input.result);
  const headers: Record<string, string> = typeof input.result === 'string' ? {} : { 'content-type': 'application/json' };
  return { statusCode: 200, headers, body, duration: Math.max(0, Date.now() - since.getTime()) };
}

function signalError(input: SignalInput): StoredError {
  if (typeof input.error === 'string') return { code: 'signal_failed', message: input.error };
  return { code: input.error?.code ?? 'signal_failed', message: input.error?.message ?? 'Failed by signal' };
}

/**
 * POST /v1/signals/:token — the client (or its own worker) says how the task ended. Same token
 * as the callback, same single-use rule: the first terminal writer wins.
 */
export async function applySignal(relay: Relay, token: string, input: SignalInput): Promise<SignalOutcome> {
  if (!isCallbackTokenShape(token)) return { outcome: 'unknown' };
  return withLock(relay.sql, lockByCallbackHash(sha256Hex(token)), async (rows) => {
    if (!rows[0]) return nothing<SignalOutcome>({ outcome: 'unknown' });
    const task = toTaskRow(rows[0]);
    if ((task.callbackRules as CallbackRules | null)?.signature) {
      return {
        // Rejections are the token holder's to repeat: recorded within the caps (callbacks/capped-events.ts).
        run: { rejected: recordCapped(task.id, { type: 'signal.rejected', data: { reason: 'signed_callbacks_required', status: task.status, requested: input.status } }) },
        done: (): SignalOutcome => ({ outcome: 'unauthorized', task }),
      };
    }
    if (!CALLBACK_STATUSES.includes(task.status)) {
      return {
        run: { rejected: recordCapped(task.id, { type: 'signal.rejected', data: { status: task.status, requested: input.status } }) },
        done: (): SignalOutcome => ({ outcome: 'conflict', task }),
      };
    }
    const finished = await finishStatements(relay, task, {
      to: input.status,
      result: signalResult(input, task.dispatchedAt ?? task.createdAt),
      error: input.status === 'failed' ? signalError(input) : null,
      events: [{ type: 'signal.accepted', data: { from: task.status, status: input.status } }],
    });
    return {
      run: { finished },
      done: ({ finished }): SignalOutcome => {
        relay.changes.publish([task.id]);
        return { outcome: 'accepted', task: toTaskRow(finished[0]) };
      },
    };
  });
}
