import { randomUUID } from 'node:crypto';
import type { PgBoss } from 'pg-boss';
import type postgres from 'postgres';
import type { TaskRow } from '../../drizzle/schema.ts';
import type { Relay, Timings } from '../context.ts';
import { createBatcher } from '../db/batcher.ts';
import { runPlan, transact } from '../db/pipeline.ts';
import { foldJobsWhere } from '../jobs/job-sql.ts';
import { toTaskRow } from '../db/rows.ts';
import { ACCEPTED_CALLBACK_JOBS, type CallbackConsume, consumeCallbacks } from '../db/task-sql.ts';
import { Queues } from '../jobs/queues.ts';
import type { CallbackNotifyJob } from '../delivery/prompt-delivery.ts';
import { storableBody } from '../outbound/http.ts';
import type { ChangeFeed } from '../tasks/change-feed.ts';
import { type CappedEventType, keptPayload, lockTask, recordCapped } from './capped-events.ts';
import { consumeClassifiedCallback } from './classified-callback.ts';
import { isCallbackTokenShape, sha256Hex } from './token.ts';

export interface IncomingCallback {
  token: string;
  body: Uint8Array;
  contentType?: string;
  /** Lower-case request headers, read (lazily: not on the hot path) only for tasks that require signed callbacks. */
  headers?: () => Record<string, string>;
}

/** Expected branches are data: the route maps each outcome to a status code. */
export type CallbackOutcome =
  | { outcome: 'accepted'; task: TaskRow }
  | { outcome: 'duplicate'; task: TaskRow }
  | { outcome: 'conflict'; task: TaskRow }
  | { outcome: 'late'; task: TaskRow }
  /** A provider's progress event (classified tasks): recorded, token kept. */
  | { outcome: 'progress'; task: TaskRow }
  /** A terminal callback after a poll or signal finished the task: recorded, answered 200. */
  | { outcome: 'superseded'; task: TaskRow }
  /** The task requires signed callbacks and this one is not (validly) signed, or not for this task. */
  | { outcome: 'unauthorized'; task: TaskRow }
  /** Signed, but not decidable yet (fal's request id is unknown until the submit answers): retry. */
  | { outcome: 'not_ready'; task: TaskRow }
  | { outcome: 'unknown' };

/**
 * A provider POSTs its result to /v1/callbacks/:token. One statement locks the task, decides and
 * writes (see `consumeCallbacks` in db/task-sql.ts): the first accepted callback completes the
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
  const row = await relay.consumeCallback(consume);
  if (!row) return { outcome: 'unknown' };
  // Tasks with callback rules (presets, callbackConfig, signatures): the statement changed nothing.
  if (row.outcome === 'classify') return consumeClassifiedCallback(relay, callback, row.task, bodyHash, stored);
  const outcome = { outcome: row.outcome, task: row.task };
  if (outcome.outcome === 'accepted') {
    if (outcome.task.onCompleteUrl) relay.deliverPromptly(notifyJobOf(consume), outcome.task);
    return outcome;
  }
  // Not accepted: recorded within the task's caps, under its row lock (callbacks/capped-events.ts).
  const { status } = row.task;
  const size = consume.size;
  const event: { type: CappedEventType; data: Record<string, unknown> } =
    outcome.outcome === 'duplicate' ? { type: 'callback.duplicate', data: { size } }
      : outcome.outcome === 'late' ? { type: 'callback.late', data: { status, size, ...keptPayload(stored) } }
        : { type: 'callback.rejected', data: { status, size } };
  await transact(relay.sql, [lockTask(row.task.id), recordCapped(row.task.id, event)]);
  return outcome;
}

/** The onComplete job of an accepted callback: it names the request, so only that one acts on it. */
const notifyJobOf = (c: CallbackConsume): CallbackNotifyJob => ({ callbackHash: c.tokenHash, ref: c.ref, generation: 0, attempt: 1 });

export interface ConsumedRow {
  outcome: 'accepted' | 'duplicate' | 'conflict' | 'late' | 'classify';
  task: TaskRow;
}

/**
 * Consumes callbacks; those arriving together share one statement (db/batcher.ts), and the
 * onComplete jobs of the accepted ones ride in it. Resolves with undefined for an unknown token.
 * The job is delayed: the first attempt is made at once by `deliverPromptly`; the job only backs
 * it up should this process die first.
 */
export function createCallbackConsumer(deps: { sql: postgres.Sql; boss: PgBoss; timings: Timings; changes: Pick<ChangeFeed, 'publish'> }) {
  const write = async (callbacks: CallbackConsume[]): Promise<Array<ConsumedRow | undefined>> => {
    const plan = await foldJobsWhere(consumeCallbacks(callbacks), {
      boss: deps.boss,
      queue: Queues.notify,
      // The job's id is the request's ref: prompt delivery can bring a job forward by it (spill).
      jobs: callbacks.map((c) => ({ id: c.ref, data: notifyJobOf(c), startAfter: deps.timings.promptFallbackSeconds })),
      keep: ACCEPTED_CALLBACK_JOBS,
    });
    const [rows] = await runPlan(deps.sql, plan);
    deps.changes.publish(rows.filter((row) => row.outcome === 'accepted').map((row) => row.id as string));
    const byToken = new Map(rows.map((row) => [row.callback_hash as string, row]));
    return callbacks.map((c) => {
      const row = byToken.get(c.tokenHash);
      return row ? { outcome: row.outcome as ConsumedRow['outcome'], task: toTaskRow(row) } : undefined;
    });
  };
  return createBatcher({ many: write });
}
