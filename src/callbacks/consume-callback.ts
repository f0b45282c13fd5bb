import { randomUUID } from 'node:crypto';
import type { Relay } from '../context.ts';
import { transact } from '../db/pipeline.ts';
import type { CallbackConsume } from '../db/sql/callbacks.ts';
import { storableBody } from '../outbound/http.ts';
import { notifyJobOf } from '../writers/callbacks.ts';
import type { CallbackOutcome, IncomingCallback } from './callback-outcome.ts';
import { type CappedEventType, keptPayload, recordCapped } from './capped-events.ts';
import { lockTask } from '../db/sql/tasks.ts';
import { consumeClassifiedCallback } from './classified-callback.ts';
import { isCallbackTokenShape, sha256Hex } from './token.ts';

/**
 * A provider POSTs its result to /v1/callbacks/:token. One statement locks the task, decides and
 * writes (see `consumeCallbacks` in db/sql/callbacks.ts): the first accepted callback completes the
 * task and consumes the token; a repeat of the same body is answered idempotently (providers
 * retry on 4xx); a late one is kept on the timeline; anything else is a conflict.
 *
 * The onComplete job rides in the same statement, so a completion is never without its webhook;
 * the first attempt is then made at once by this process (delivery/prompt-delivery.ts), and the
 * job, delayed, stands behind it in case this process dies first.
 * The job names the request (token hash and a random ref that only an accepting statement
 * stores), and the statement keeps it only if it accepted that request (`foldJobsWhere`): unknown,
 * duplicate, rejected and classified callbacks write no job. The delivery handler still checks
 * the ref, so a job can never act for another request.
 */
export async function consumeCallback(relay: Relay, callback: IncomingCallback): Promise<CallbackOutcome> {
  if (!isCallbackTokenShape(callback.token)) return { outcome: 'unknown' };
  const tokenHash = sha256Hex(callback.token);
  const bodyHash = sha256Hex(callback.body);
  const stored = storableBody(callback.body);
  const consume: CallbackConsume = {
    tokenHash,
    bodyHash,
    contentType: callback.contentType,
    body: stored.body,
    bodyEncoding: stored.bodyEncoding,
    size: callback.body.byteLength,
    ref: randomUUID(),
  };
  const row = await relay.writers.callback(consume);
  if (!row) return { outcome: 'unknown' };
  // Tasks with callback rules (presets, callbackConfig, signatures): the statement changed nothing.
  if (row.outcome === 'classify') return consumeClassifiedCallback(relay, callback, row.task, bodyHash, stored);
  const outcome = { outcome: row.outcome, task: row.task };
  if (outcome.outcome === 'accepted') {
    if (outcome.task.onCompleteUrl) relay.prompt.deliver(notifyJobOf(consume), outcome.task);
    return outcome;
  }
  // Not accepted: recorded within the task's caps, under its row lock (callbacks/capped-events.ts).
  const { status } = row.task;
  const size = consume.size;
  const event: { type: CappedEventType; data: Record<string, unknown> } =
    outcome.outcome === 'duplicate' ? { type: 'callback.duplicate', data: { size } }
      : outcome.outcome === 'late' ? { type: 'callback.late', data: { status, size, ...keptPayload(stored) } }
        : { type: 'callback.rejected', data: { status, size } };
  await transact(relay.sql, { lock: lockTask(row.task.id), event: recordCapped(row.task.id, event) });
  return outcome;
}
