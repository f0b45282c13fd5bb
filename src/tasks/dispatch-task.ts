import { eq, sql } from 'drizzle-orm';
import { type TaskRow, tasks } from '../../drizzle/schema.ts';
import { callbackUrlFor } from '../callbacks/token.ts';
import type { Relay } from '../context.ts';
import { jobStatement, type Statement, statementOf, withLock } from '../db/pipeline.ts';
import { toTaskRow } from '../db/rows.ts';
import { Queues } from '../jobs/queues.ts';
import type { OutboundResult } from '../outbound/http.ts';
import { classifyTargetAnswer, retryDelayMs, type TargetVerdict } from './classify.ts';
import { eventsStatement, type NewEvent } from './events.ts';
import { finishStatements } from './finish-task.ts';
import { lockTask } from './lock-task.ts';
import { openRequest } from './sealed-request.ts';
import { substituteText, substituteUrl } from './template.ts';

/** Up to this many redirects of a target call are followed (DESIGN §7). */
const MAX_TARGET_REDIRECTS = 5;

/**
 * One attempt at calling a task's target: the handler of a `task.dispatch` job. No transaction
 * is held during the HTTP call; the outcome is written afterwards under the row lock, so a
 * callback that completed the task while we were still waiting for the submit answer wins and
 * the late answer is only recorded.
 */
export async function dispatchTask(relay: Relay, taskId: string): Promise<void> {
  const task = await claimForDispatch(relay, taskId);
  if (!task) return;

  const request = openRequest(relay.keyring, task.requestSealed);
  const callbackUrl = request.token ? callbackUrlFor(relay.publicUrl, request.token) : undefined;
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) headers[name] = substituteText(value, callbackUrl);

  const answer = await relay.outbound.send({
    url: substituteUrl(task.targetUrl, callbackUrl),
    method: task.method,
    headers,
    body: request.body === undefined ? undefined : substituteText(request.body, callbackUrl),
    timeoutMs: task.timeout * 1000,
    maxRedirects: MAX_TARGET_REDIRECTS,
  });
  await recordOutcome(relay, task, answer, classifyTargetAnswer(answer));
}

/**
 * Moves the task to `processing` (from `delayed`/`pending`, or again for a retry) and records the
 * change, in one statement. Returns null when there is nothing to do: the task was cancelled,
 * already answered, or is gone (a duplicate or stale job).
 */
async function claimForDispatch(relay: Relay, taskId: string): Promise<TaskRow | null> {
  const [row] = await relay.sql`
    with current as (
      select id, status from tasks
      where id = ${taskId} and status in ('delayed', 'pending', 'processing')
      for update
    ), claimed as (
      update tasks t
      set status = 'processing', started_at = coalesce(t.started_at, now()), dispatched_at = now(), updated_at = now()
      from current where t.id = current.id
      returning t.*, current.status as previous_status
    ), changed as (
      insert into task_events (task_id, type, data)
      select id, 'status.changed', jsonb_build_object('from', previous_status, 'to', 'processing')
      from claimed where previous_status <> 'processing'
    )
    select * from claimed`;
  return row ? toTaskRow(row) : null;
}

function attemptEvent(task: TaskRow, answer: OutboundResult): NewEvent {
  return {
    type: 'dispatch.attempt',
    data: {
      attempt: task.retryCount + 1,
      ...(answer.ok
        ? { statusCode: answer.response.statusCode, duration: answer.response.duration }
        : { error: answer.error, duration: answer.duration }),
    },
  };
}

/** What to write once the attempt's answer is in, given the task as it is now (locked). */
async function outcomeStatements(relay: Relay, claimed: TaskRow, current: TaskRow, answer: OutboundResult, verdict: TargetVerdict): Promise<Statement[]> {
  const attempt = attemptEvent(claimed, answer);
  // Someone else moved the task on while we were calling (a callback, a cancel, a duplicate job).
  if (current.status !== 'processing' || current.retryCount !== claimed.retryCount) {
    return [eventsStatement(relay.db, current.id, [attempt, { type: 'dispatch.late_response', data: { status: current.status } }])];
  }
  if (verdict.kind === 'success' && current.callbackHash) {
    return [
      // A successful submit after retries: the earlier attempt's error is history (timeline), not the task's.
      statementOf(relay.db.update(tasks).set({ status: 'waiting', error: null, updatedAt: sql`now()` }).where(eq(tasks.id, current.id))),
      eventsStatement(relay.db, current.id, [attempt, { type: 'status.changed', data: { from: 'processing', to: 'waiting' } }]),
      await jobStatement(relay.boss, Queues.deadline, { taskId: current.id }, { startAfter: current.maxWaitTime }),
    ];
  }
  if (verdict.kind === 'success') {
    return finishStatements(relay, current, { from: ['processing'], to: 'completed', result: verdict.response, error: null, events: [attempt] });
  }
  if (verdict.kind === 'retryable' && current.retryCount < current.maxRetries) {
    const delayMs = retryDelayMs(current.retryBackoff, current.retryCount + 1, verdict.retryAfterMs, relay.timings.backoffScale);
    return [
      statementOf(relay.db.update(tasks).set({ retryCount: current.retryCount + 1, error: verdict.error, updatedAt: sql`now()` }).where(eq(tasks.id, current.id))),
      eventsStatement(relay.db, current.id, [attempt, { type: 'dispatch.retry_scheduled', data: { retry: current.retryCount + 1, delayMs } }]),
      await jobStatement(relay.boss, Queues.dispatch, { taskId: current.id }, {
        priority: current.priority,
        startAfter: new Date(Date.now() + delayMs),
        expireInSeconds: current.timeout + 60,
      }),
    ];
  }
  return finishStatements(relay, current, {
    from: ['processing'],
    to: 'failed',
    result: verdict.response ?? null,
    error: verdict.error,
    events: [attempt],
  });
}

async function recordOutcome(relay: Relay, claimed: TaskRow, answer: OutboundResult, verdict: TargetVerdict): Promise<void> {
  await withLock(relay.sql, lockTask(relay, eq(tasks.id, claimed.id)), async (rows) => ({
    statements: rows[0] ? await outcomeStatements(relay, claimed, toTaskRow(rows[0]), answer, verdict) : [],
    done: () => undefined,
  }));
}
