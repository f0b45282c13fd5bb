import type { TaskRow } from '../../drizzle/schema.ts';
import type { Relay } from '../context.ts';
import { nothing, withLock } from '../db/pipeline.ts';
import { foldJob } from '../jobs/job-sql.ts';
import { toTaskRow } from '../db/rows.ts';
import { type DeliveryRecord, recordDelivery } from '../db/sql/deliveries.ts';
import { findTaskForDelivery } from '../db/sql/task-reads.ts';
import { lockById } from '../db/sql/tasks.ts';
import { type NotifyJob, Queues } from '../jobs/queues.ts';
import { parseRetryAfter } from '../outbound/http.ts';
import type { NewEvent } from '../db/sql/events.ts';
import { toTaskView } from '../tasks/task-view.ts';
import type { KnownDelivery } from './prompt-delivery.ts';
import { signWebhook } from './sign.ts';

/** A receiver's Retry-After is honoured up to this (the longest step of the schedule). */
const MAX_RETRY_AFTER_MS = 10 * 60 * 60 * 1000;

/** How much of a receiver's answer the timeline keeps. */
const ANSWER_PREVIEW_BYTES = 1024;

/** `webhook-id`: one per task, since a task ends once; stable across retries and redeliveries. */
export function webhookIdFor(taskId: string): string {
  return `msg_${taskId.replaceAll('-', '')}`;
}

/** The onComplete body (DESIGN §6). */
export function webhookPayload(relay: Relay, task: TaskRow): string {
  return JSON.stringify({ event: `task.${task.status}`, task: toTaskView(task, relay.keyring) });
}

/**
 * Delay before the next attempt: the schedule's step with ±10 % jitter (so a receiver that came
 * back up is not hit by every waiting delivery at once), or the receiver's Retry-After if longer.
 */
export function nextDelayMs(schedule: number[], attempt: number, retryAfterMs?: number): number | null {
  const step = schedule[attempt - 1];
  if (step === undefined) return null;
  const jittered = step * 1000 * (0.9 + Math.random() * 0.2);
  return Math.max(jittered, Math.min(retryAfterMs ?? 0, MAX_RETRY_AFTER_MS));
}

/**
 * Starts the HTTP attempt if the job is still the one expected, and returns what recording it
 * needs. Not async on purpose: the row and the signed body (a result may be 1 MiB) live only in
 * this frame, so nothing holds them while the receiver takes its time — V8 keeps every local of an
 * async function alive across its awaits.
 */
function startAttempt(relay: Relay, job: NotifyJob, { task, secretSealed }: KnownDelivery) {
  if (!task.onCompleteUrl || task.deliveryStatus !== 'pending') return undefined;
  if ('ref' in job && task.callbackRef !== job.ref) return undefined;
  if (task.deliveryGeneration !== job.generation || task.deliveryAttempts !== job.attempt - 1) return undefined;
  const body = webhookPayload(relay, task);
  const headers = {
    'content-type': 'application/json',
    ...signWebhook({ secret: relay.keyring.open(secretSealed), msgId: webhookIdFor(task.id), timestamp: Math.floor(Date.now() / 1000), body }),
  };
  const answer = relay.outbound.send({
    url: task.onCompleteUrl,
    method: 'POST',
    headers,
    body,
    timeoutMs: relay.timings.deliveryTimeoutMs,
    maxResponseBytes: ANSWER_PREVIEW_BYTES,
    maxRedirects: 0,
  });
  return { taskId: task.id, url: task.onCompleteUrl, answer };
}

/**
 * The `task.notify` job: one attempt at delivering the onComplete webhook. The attempt is recorded
 * under the row lock, checked against (generation, attempts), so a job replayed after a crash, or one of an
 * older round after a redelivery, cannot double-count or schedule a second chain.
 */
export async function deliverWebhook(relay: Relay, job: NotifyJob, known?: KnownDelivery, onAnswered?: () => void): Promise<void> {
  // `known`: the caller has just written the task (prompt delivery) and needs no second read.
  let found = known ?? (await findTaskForDelivery(relay.db, job));
  known = undefined;
  const started = found && startAttempt(relay, job, found);
  found = undefined;
  if (!started) return onAnswered?.();
  const { taskId, url } = started;
  const answer = await started.answer;
  // The receiver is done with us; what is left is our own (batched) write.
  onAnswered?.();
  const statusCode = answer.ok ? answer.response.statusCode : undefined;
  const delivered = statusCode !== undefined && statusCode >= 200 && statusCode < 300;
  // A destination the SSRF guard refuses stays refused: retrying would only repeat the refusal.
  const refused = !answer.ok && answer.error.code === 'refused';
  const gone = statusCode === 410 || refused;
  const retryAfter = answer.ok ? parseRetryAfter(answer.response.headers['retry-after']) : undefined;
  const delayMs = delivered || gone ? null : nextDelayMs(relay.timings.deliveryRetrySeconds, job.attempt, retryAfter);
  const status = delivered ? 'delivered' : delayMs === null ? 'failed' : 'pending';
  const nextAt = delayMs === null ? null : new Date(Date.now() + delayMs);

  const attemptEvents: NewEvent[] = [
    {
      type: 'delivery.attempt',
      data: {
        attempt: job.attempt,
        url,
        ...(answer.ok
          ? { statusCode, duration: answer.response.duration, answer: answer.response.body.slice(0, ANSWER_PREVIEW_BYTES) }
          : { error: answer.error, duration: answer.duration }),
      },
    },
    ...(delivered ? [{ type: 'delivery.succeeded' as const, data: { attempt: job.attempt } }] : []),
    ...(gone ? [{ type: 'delivery.stopped' as const, data: { reason: refused ? 'destination_refused' : 'receiver answered 410 Gone' } }] : []),
    ...(status === 'failed' && !gone ? [{ type: 'delivery.exhausted' as const, data: { attempts: job.attempt } }] : []),
  ];
  const record: DeliveryRecord = { taskId, status, attempt: job.attempt, nextAt, generation: job.generation, events: attemptEvents };
  if (!nextAt) {
    // Nothing follows this attempt: its compare-and-set on (generation, attempt) is the whole
    // write, and attempts recorded together share one statement.
    await relay.writers.delivery(record);
    return;
  }
  // A retry follows: lock first, so the next attempt's job exists only if this attempt was ours
  // (a replayed job after a crash, or one of an older round, must not start a second chain).
  await withLock(relay.sql, lockById(taskId), async (rows) => {
    const current = rows[0] ? toTaskRow(rows[0]) : undefined;
    // A replayed job (crash after the HTTP call) or one of an older round records nothing.
    const mine =
      current?.deliveryStatus === 'pending' && current.deliveryGeneration === job.generation && current.deliveryAttempts === job.attempt - 1;
    if (!mine) return nothing(undefined);
    const next = await relay.jobs.send(Queues.notify, { taskId, generation: job.generation, attempt: job.attempt + 1 }, { startAfter: nextAt });
    return { run: { recorded: foldJob(recordDelivery(record), next) }, done: () => undefined };
  });
}
