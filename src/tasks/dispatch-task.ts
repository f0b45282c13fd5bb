import type { TaskRow } from '../../drizzle/schema.ts';
import { callbackUrlFor } from '../callbacks/token.ts';
import type { Relay } from '../context.ts';
import { runPlan } from '../db/pipeline.ts';
import type { Transition } from '../db/sql/tasks.ts';
import { Queues } from '../jobs/queues.ts';
import type { DispatchOutcome } from '../writers/dispatch.ts';
import type { CapturedResponse, OutboundResult } from '../outbound/http.ts';
import { startPollingStatements } from '../providers/poll-start.ts';
import { cancelOrphanedJob } from '../providers/provider-cancel.ts';
import { classifyTargetAnswer, retryDelayMs, type TargetVerdict } from './classify.ts';
import type { NewEvent } from '../db/sql/events.ts';
import { openRequest, targetUrlOf } from './sealed-request.ts';
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
  const task = await relay.writers.claim(taskId);
  if (!task) return;

  const request = openRequest(relay.keyring, task.requestSealed);
  const callbackUrl = request.token ? callbackUrlFor(relay.publicUrl, request.token) : undefined;
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) headers[name] = substituteText(value, callbackUrl);

  const answer = await relay.outbound.send({
    url: substituteUrl(targetUrlOf(task, request), callbackUrl),
    method: task.method,
    headers,
    body: request.body === undefined ? undefined : substituteText(request.body, callbackUrl),
    timeoutMs: task.timeout * 1000,
    maxRedirects: MAX_TARGET_REDIRECTS,
  });
  const verdict = classifyTargetAnswer(answer);
  if (verdict.kind === 'success' && task.pollConfig) await startPolling(relay, task, answer, verdict.response);
  else await relay.writers.outcome(outcomeOf(relay, task, answer, verdict));
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

/** The compare-and-set every outcome of this attempt writes under, and what it records if it misses. */
function guardOf(task: TaskRow, attempt: NewEvent) {
  return {
    taskId: task.id,
    from: ['processing' as const],
    retryCount: task.retryCount,
    eventsIfMissed: [attempt, { type: 'dispatch.late_response' as const, data: {} }],
  };
}

/**
 * A task with a pollConfig whose submit succeeded starts polling (providers/poll-start.ts); not
 * batched, as its statements depend on the answer. If a cancel won the race, the provider's new
 * job is cancelled too.
 */
async function startPolling(relay: Relay, task: TaskRow, answer: OutboundResult, response: CapturedResponse): Promise<void> {
  const attempt = attemptEvent(task, answer);
  const changed = await runPlan(relay.sql, await startPollingStatements(relay, task, response, guardOf(task, attempt), attempt));
  if (changed.length > 0) relay.changes.publish([task.id]);
  else await cancelOrphanedJob(relay, task, response);
}

/**
 * What to write once the attempt's answer is in. Each outcome is one compare-and-set on
 * (status processing, this attempt's retry count): if a callback, a cancel or a duplicate job
 * moved the task on meanwhile, the guard fails, only the late answer is recorded, and the job
 * enqueued beside it finds nothing to do (a deadline or delivery job checks the task first).
 */
function outcomeOf(relay: Relay, task: TaskRow, answer: OutboundResult, verdict: TargetVerdict): DispatchOutcome {
  const attempt = attemptEvent(task, answer);
  const guard = guardOf(task, attempt);
  const finished = (change: Transition): DispatchOutcome => ({
    change,
    job: task.onCompleteUrl
      ? { queue: Queues.notify, insert: { data: { taskId: task.id, generation: task.deliveryGeneration, attempt: 1 } } }
      : undefined,
  });

  if (verdict.kind === 'success' && task.callbackHash) {
    return {
      // A successful submit after retries: the earlier attempt's error is history (timeline), not the task's.
      change: { ...guard, to: 'waiting', error: null, events: [attempt] },
      job: { queue: Queues.deadline, insert: { data: { taskId: task.id }, startAfter: task.maxWaitTime } },
    };
  }
  if (verdict.kind === 'success') {
    return finished({ ...guard, to: 'completed', result: verdict.response, error: null, events: [attempt] });
  }
  if (verdict.kind === 'retryable' && task.retryCount < task.maxRetries) {
    const retry = task.retryCount + 1;
    const delayMs = retryDelayMs(task.retryBackoff, retry, verdict.retryAfterMs, relay.timings.backoffScale);
    return {
      change: {
        ...guard,
        to: 'processing',
        setRetryCount: retry,
        error: verdict.error,
        events: [attempt, { type: 'dispatch.retry_scheduled', data: { retry, delayMs } }],
      },
      job: {
        queue: Queues.dispatch,
        insert: { data: { taskId: task.id }, priority: task.priority, startAfter: new Date(Date.now() + delayMs), expireInSeconds: task.timeout + 60 },
      },
    };
  }
  return finished({ ...guard, to: 'failed', result: verdict.response ?? null, error: verdict.error, events: [attempt] });
}
