import { randomUUID } from 'node:crypto';
import type { TaskRow } from '../../drizzle/schema.ts';
import type { Relay } from '../context.ts';
import { foldJob, jobStatement, transact } from '../db/pipeline.ts';
import { toTaskRow } from '../db/rows.ts';
import { consumeCallback as consumeStatement } from '../db/task-sql.ts';
import { type NotifyJob, Queues } from '../jobs/queues.ts';
import { storableBody } from '../outbound/http.ts';
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
  /** The task requires signed callbacks and this one is not (validly) signed. */
  | { outcome: 'unauthorized'; task: TaskRow }
  | { outcome: 'unknown' };

/** How much of a late payload the timeline keeps (characters of the stored body). */
const LATE_PAYLOAD_LIMIT = 64 * 1024;

/**
 * A provider POSTs its result to /v1/callbacks/:token. One statement locks the task, decides and
 * writes (see `consumeCallback` in db/task-sql.ts): the first accepted callback completes the
 * task and consumes the token; a repeat of the same body is answered idempotently (providers
 * retry on 4xx); a late one is kept on the timeline; anything else is a conflict.
 *
 * The onComplete job rides in the same statement, so a completion is never without its webhook;
 * the first attempt is then made at once by this process (delivery/prompt-delivery.ts), and the
 * job, delayed, stands behind it in case this process dies first.
 * The statement cannot know beforehand whether it will accept, so the job is written every time
 * and names the request (token hash and a random ref that only an accepting statement stores):
 * the delivery handler does nothing unless this very request completed the task. A duplicate or
 * rejected callback's job thus finds another ref, or none, and ends without sending.
 */
export async function consumeCallback(relay: Relay, callback: IncomingCallback): Promise<CallbackOutcome> {
  if (!isCallbackTokenShape(callback.token)) return { outcome: 'unknown' };
  const tokenHash = sha256Hex(callback.token);
  const bodyHash = sha256Hex(callback.body);
  const ref = randomUUID();
  const stored = storableBody(callback.body);
  const statement = consumeStatement({
    tokenHash,
    bodyHash,
    contentType: callback.contentType,
    body: stored.body,
    bodyEncoding: stored.bodyEncoding,
    size: callback.body.byteLength,
    lateLimit: LATE_PAYLOAD_LIMIT,
    ref,
  });
  const notify: NotifyJob = { callbackHash: tokenHash, ref, generation: 0, attempt: 1 };
  // Delayed: the attempt is made at once by deliverPromptly below; the job only backs it up.
  const job = await jobStatement(relay.boss, Queues.notify, notify, { startAfter: relay.timings.promptFallbackSeconds });
  const [rows] = await transact(relay.sql, foldJob(statement, job));
  const row = rows[0];
  if (!row) return { outcome: 'unknown' };
  // Tasks with callback rules (presets, callbackConfig, signatures): the statement changed nothing.
  if (row.outcome === 'classify') return consumeClassifiedCallback(relay, callback, toTaskRow(row), bodyHash, stored);
  const outcome = { outcome: row.outcome as 'accepted' | 'duplicate' | 'conflict' | 'late', task: toTaskRow(row) };
  if (outcome.outcome === 'accepted' && outcome.task.onCompleteUrl) relay.deliverPromptly(notify, outcome.task);
  return outcome;
}
