import type { TaskRow } from '../../drizzle/schema.ts';
import { callbackUrlFor } from '../callbacks/token.ts';
import type { Relay } from '../context.ts';
import { foldJob, jobStatement, type Statement, transact } from '../db/pipeline.ts';
import { toTaskRow } from '../db/rows.ts';
import { claimForDispatch as claimStatement, transition } from '../db/task-sql.ts';
import { Queues } from '../jobs/queues.ts';
import type { OutboundResult } from '../outbound/http.ts';
import { startPollingStatements } from '../providers/poll-start.ts';
import { cancelOrphanedJob } from '../providers/provider-cancel.ts';
import { classifyTargetAnswer, retryDelayMs, type TargetVerdict } from './classify.ts';
import type { NewEvent } from './events.ts';
import { notifyJob } from './finish-task.ts';
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
 * Moves the task to `processing` (from `delayed`/`pending`, or again for a retry) and records the
 * change, in one statement. Returns null when there is nothing to do: the task was cancelled,
 * already answered, or is gone (a duplicate or stale job).
 */
async function claimForDispatch(relay: Relay, taskId: string): Promise<TaskRow | null> {
  const [[row]] = await transact(relay.sql, [claimStatement(taskId)]);
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

/**
 * What to write once the attempt's answer is in. Each outcome is one compare-and-set on
 * (status processing, this attempt's retry count): if a callback, a cancel or a duplicate job
 * moved the task on meanwhile, the guard fails, only the late answer is recorded, and the job
 * enqueued beside it finds nothing to do (a deadline or delivery job checks the task first).
 */
async function outcomeStatements(relay: Relay, task: TaskRow, answer: OutboundResult, verdict: TargetVerdict): Promise<Statement[]> {
  const attempt = attemptEvent(task, answer);
  const guard = {
    taskId: task.id,
    from: ['processing' as const],
    retryCount: task.retryCount,
    eventsIfMissed: [attempt, { type: 'dispatch.late_response' as const, data: {} }],
  };
  const withNotify = async (change: Statement): Promise<Statement[]> =>
    task.onCompleteUrl ? foldJob(change, await notifyJob(relay, task.id, task.deliveryGeneration)) : [change];

  if (verdict.kind === 'success' && task.pollConfig) return startPollingStatements(relay, task, verdict.response, guard, attempt);
  if (verdict.kind === 'success' && task.callbackHash) {
    return foldJob(
      // A successful submit after retries: the earlier attempt's error is history (timeline), not the task's.
      transition({ ...guard, to: 'waiting', error: null, events: [attempt] }),
      await jobStatement(relay.boss, Queues.deadline, { taskId: task.id }, { startAfter: task.maxWaitTime }),
    );
  }
  if (verdict.kind === 'success') {
    return withNotify(transition({ ...guard, to: 'completed', result: verdict.response, error: null, events: [attempt] }));
  }
  if (verdict.kind === 'retryable' && task.retryCount < task.maxRetries) {
    const retry = task.retryCount + 1;
    const delayMs = retryDelayMs(task.retryBackoff, retry, verdict.retryAfterMs, relay.timings.backoffScale);
    return foldJob(
      transition({
        ...guard,
        to: 'processing',
        setRetryCount: retry,
        error: verdict.error,
        events: [attempt, { type: 'dispatch.retry_scheduled', data: { retry, delayMs } }],
      }),
      await jobStatement(relay.boss, Queues.dispatch, { taskId: task.id }, {
        priority: task.priority,
        startAfter: new Date(Date.now() + delayMs),
        expireInSeconds: task.timeout + 60,
      }),
    );
  }
  return withNotify(transition({ ...guard, to: 'failed', result: verdict.response ?? null, error: verdict.error, events: [attempt] }));
}

async function recordOutcome(relay: Relay, task: TaskRow, answer: OutboundResult, verdict: TargetVerdict): Promise<void> {
  const [changed] = await transact(relay.sql, await outcomeStatements(relay, task, answer, verdict));
  // The guard missed (a cancel won the race): the provider's new job may need cancelling too.
  if (changed.length === 0 && verdict.kind === 'success' && task.pollConfig) await cancelOrphanedJob(relay, task, verdict.response);
}
