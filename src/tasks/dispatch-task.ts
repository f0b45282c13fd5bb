import { and, eq, inArray, sql } from 'drizzle-orm';
import { type TaskRow, tasks } from '../../drizzle/schema.ts';
import { callbackUrlFor } from '../callbacks/token.ts';
import type { Relay } from '../context.ts';
import { enqueue, Queues } from '../jobs/queues.ts';
import type { OutboundResult } from '../outbound/http.ts';
import { classifyTargetAnswer, retryDelayMs, type TargetVerdict } from './classify.ts';
import { recordEvents } from './events.ts';
import { finishTask } from './finish-task.ts';
import { openRequest } from './sealed-request.ts';
import { substituteText, substituteUrl } from './template.ts';

/** Up to this many redirects of a target call are followed (DESIGN §7). */
const MAX_TARGET_REDIRECTS = 5;

/**
 * One attempt at calling a task's target: the handler of a `task.dispatch` job. No transaction
 * is held during the HTTP call; the outcome is written afterwards with compare-and-set, so a
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
 * Moves the task to `processing` (from `delayed`/`pending`, or again for a retry). Returns null
 * when there is nothing to do: the task was cancelled, already answered, or is gone.
 */
async function claimForDispatch(relay: Relay, taskId: string): Promise<TaskRow | null> {
  return relay.db.transaction(async (tx) => {
    const [current] = await tx.select({ status: tasks.status }).from(tasks).where(eq(tasks.id, taskId)).for('update');
    if (!current || !['delayed', 'pending', 'processing'].includes(current.status)) return null;
    const [task] = await tx
      .update(tasks)
      .set({ status: 'processing', startedAt: sql`coalesce(${tasks.startedAt}, now())`, dispatchedAt: sql`now()`, updatedAt: sql`now()` })
      .where(and(eq(tasks.id, taskId), inArray(tasks.status, ['delayed', 'pending', 'processing'])))
      .returning();
    if (current.status !== 'processing') {
      await recordEvents(tx, taskId, [{ type: 'status.changed', data: { from: current.status, to: 'processing' } }]);
    }
    return task ?? null;
  });
}

function attemptEvent(task: TaskRow, answer: OutboundResult) {
  return {
    type: 'dispatch.attempt' as const,
    data: {
      attempt: task.retryCount + 1,
      ...(answer.ok
        ? { statusCode: answer.response.statusCode, duration: answer.response.duration }
        : { error: answer.error, duration: answer.duration }),
    },
  };
}

async function recordOutcome(relay: Relay, task: TaskRow, answer: OutboundResult, verdict: TargetVerdict): Promise<void> {
  const attempt = attemptEvent(task, answer);
  await relay.db.transaction(async (tx) => {
    if (verdict.kind === 'success' && task.callbackHash) {
      const [waiting] = await tx
        .update(tasks)
        // A successful submit after retries: the earlier attempt's error is history (timeline), not the task's.
        .set({ status: 'waiting', error: null, updatedAt: sql`now()` })
        .where(and(eq(tasks.id, task.id), eq(tasks.status, 'processing')))
        .returning({ id: tasks.id });
      if (!waiting) {
        // The provider called back before its submit answer reached us: the callback won.
        await recordEvents(tx, task.id, [attempt, { type: 'dispatch.late_response', data: {} }]);
        return;
      }
      await recordEvents(tx, task.id, [attempt, { type: 'status.changed', data: { from: 'processing', to: 'waiting' } }]);
      await enqueue(relay.boss, tx, Queues.deadline, { taskId: task.id }, { startAfter: task.maxWaitTime });
      return;
    }
    if (verdict.kind === 'success') {
      const finished = await finishTask(relay.boss, tx, {
        taskId: task.id,
        from: ['processing'],
        to: 'completed',
        result: verdict.response,
        error: null,
        events: [attempt],
      });
      if (!finished) await recordEvents(tx, task.id, [attempt, { type: 'dispatch.late_response', data: {} }]);
      return;
    }
    if (verdict.kind === 'retryable' && task.retryCount < task.maxRetries) {
      const delayMs = retryDelayMs(task.retryBackoff, task.retryCount + 1, verdict.retryAfterMs, relay.timings.backoffScale);
      const [retrying] = await tx
        .update(tasks)
        .set({ retryCount: sql`${tasks.retryCount} + 1`, error: verdict.error, updatedAt: sql`now()` })
        .where(and(eq(tasks.id, task.id), eq(tasks.status, 'processing'), eq(tasks.retryCount, task.retryCount)))
        .returning({ id: tasks.id });
      if (!retrying) {
        await recordEvents(tx, task.id, [attempt, { type: 'dispatch.late_response', data: {} }]);
        return;
      }
      await recordEvents(tx, task.id, [attempt, { type: 'dispatch.retry_scheduled', data: { retry: task.retryCount + 1, delayMs } }]);
      await enqueue(relay.boss, tx, Queues.dispatch, { taskId: task.id }, {
        priority: task.priority,
        startAfter: new Date(Date.now() + delayMs),
        expireInSeconds: task.timeout + 60,
      });
      return;
    }
    const finished = await finishTask(relay.boss, tx, {
      taskId: task.id,
      from: ['processing'],
      to: 'failed',
      result: verdict.response ?? null,
      error: verdict.error,
      events: [attempt],
    });
    if (!finished) await recordEvents(tx, task.id, [attempt, { type: 'dispatch.late_response', data: {} }]);
  });
}
