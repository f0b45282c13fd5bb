import type { TaskRow } from '../../drizzle/schema.ts';
import { CALLBACK_PLACEHOLDER } from '../callbacks/token.ts';
import type { Relay } from '../context.ts';
import { combinePlans, type Plan } from '../db/pipeline.ts';
import type { JobKeep } from '../jobs/job-sql.ts';
import { CHANGED_TASK_JOBS, type Transition, transition } from '../db/sql/tasks.ts';
import { type PayloadOf, type PollJob, type QueueName, Queues } from '../jobs/queues.ts';
import type { CapturedResponse } from '../outbound/http.ts';
import type { NewEvent } from '../db/sql/events.ts';
import { parseJsonBody, readPath, renderTemplate, type TemplateContext } from './json-path.ts';
import type { PollConfig } from './poll-config.ts';
import type { ProviderJob } from '../db/sql/polling.ts';
import { POLLING_STARTED_JOBS, recordProviderJob } from '../db/sql/polling.ts';
import { findPreset } from './preset.ts';

export const isHttpUrl = (value: string) => URL.canParse(value) && /^https?:$/.test(new URL(value).protocol);

/** The origin of the task's target, for `{target.origin}` (the placeholder never stands in an origin). */
export function targetOrigin(task: TaskRow): string {
  return new URL(task.targetUrl.replaceAll(CALLBACK_PLACEHOLDER, 'x')).origin;
}

/** Delay before the first poll, ms: the interval (or initialDelay), or the first fallback step. */
export function firstPollDelayMs(relay: Relay, config: PollConfig, schedule: ProviderJob['schedule']): number {
  const seconds = schedule === 'fallback' ? relay.timings.fallbackPollSeconds[0] : (config.initialDelay ?? config.interval);
  return seconds * 1000 * relay.timings.pollScale;
}

/** What templates may read at submit time: the submit answer and the target's origin. */
export function submitContext(task: TaskRow, answer: CapturedResponse): TemplateContext {
  return {
    startResult: { statusCode: answer.statusCode, headers: answer.headers, body: parseJsonBody(answer.body, answer.bodyEncoding) },
    target: { origin: targetOrigin(task) },
  };
}

/** The provider's cancel endpoint for this job, when the pollConfig names one and the answer fills it. */
export function resolveCancel(config: PollConfig, context: TemplateContext): { url: string; method: string } | undefined {
  if (!config.cancelUrlTemplate) return undefined;
  const cancel = renderTemplate(config.cancelUrlTemplate, context);
  return cancel.missing.length === 0 && isHttpUrl(cancel.text) ? { url: cancel.text, method: config.cancelMethod ?? 'POST' } : undefined;
}

/** A poll job may make two calls (status, then result) of up to `timeout` each before it is presumed dead. */
export function pollJobOptions(task: TaskRow, delayMs: number) {
  return { startAfter: new Date(Date.now() + delayMs), expireInSeconds: task.timeout * 2 + 60 };
}

/**
 * The submit of a task with a pollConfig answered 2xx: resolve the poll (and result, cancel) URLs
 * from that answer, move the task to `polling` (or `waiting`, when a callback is also expected)
 * with its deadline job, and enqueue the first poll as a delayed job. A poll (or result) URL that
 * the answer does not provide fails the task now, with the answer as its result, instead of
 * polling for a result it could never fetch. No row lock is held (the submit answer came without
 * one): every job here is written only if its compare-and-set held, so a callback or cancel that
 * won meanwhile leaves no second webhook, deadline or poll behind.
 */
export async function startPollingStatements(
  relay: Relay,
  task: TaskRow,
  answer: CapturedResponse,
  guard: Omit<Transition, 'to'>,
  attempt: NewEvent,
): Promise<Plan> {
  const config = task.pollConfig as PollConfig;
  const context = submitContext(task, answer);
  const poll = renderTemplate(config.urlTemplate, context);
  const result = config.resultUrlTemplate ? renderTemplate(config.resultUrlTemplate, context) : undefined;
  const message = poll.missing.length > 0
    ? `pollConfig.urlTemplate: the submit answer has no ${poll.missing.join(', ')}`
    : !isHttpUrl(poll.text)
      ? 'pollConfig.urlTemplate did not resolve to an http(s) URL'
      : result && result.missing.length > 0
        ? `pollConfig.resultUrlTemplate: the submit answer has no ${result.missing.join(', ')}`
        : undefined;
  const onChange = <Q extends QueueName>(statement: ReturnType<typeof transition>, queue: Q, data: PayloadOf<Q>, options: { startAfter?: number | Date; expireInSeconds?: number }, keep: JobKeep = CHANGED_TASK_JOBS) =>
    relay.jobs.where(statement, { queue, jobs: [{ data, ...options }], keep });
  if (message) {
    const failed = transition({ ...guard, to: 'failed', result: answer, error: { code: 'poll_unresolved', message }, events: [attempt] });
    if (!task.onCompleteUrl) return { statements: [failed] };
    return onChange(failed, Queues.notify, { taskId: task.id, generation: task.deliveryGeneration, attempt: 1 }, {});
  }
  const cancel = resolveCancel(config, context);
  const status = task.callbackHash ? ('waiting' as const) : ('polling' as const);
  const presetCallback = task.provider ? findPreset(task.provider)?.callback : undefined;
  const schedule = task.callbackHash && presetCallback ? 'fallback' : 'interval';
  const requestId = presetCallback?.requestIdPath ? readPath(context.startResult?.body, presetCallback.requestIdPath) : undefined;
  const deadlineSeconds = config.maxDuration ?? task.maxWaitTime;
  const job: ProviderJob = {
    pollUrl: poll.text,
    ...(result && { resultUrlTemplate: result.text }),
    ...(cancel && { cancel }),
    deadline: new Date(Date.now() + deadlineSeconds * 1000).toISOString(),
    schedule,
    ...(typeof requestId === 'string' && requestId !== '' && { requestId }),
  };
  const delayMs = firstPollDelayMs(relay, config, schedule);
  const first: PollJob = { taskId: task.id, poll: 0, errors: 0 };
  const started = transition({ ...guard, to: status, error: null, events: [attempt, { type: 'poll.started', data: { url: job.pollUrl, schedule, firstInMs: Math.round(delayMs) } }] });
  return combinePlans(
    await onChange(started, Queues.deadline, { taskId: task.id }, { startAfter: deadlineSeconds }),
    await onChange(recordProviderJob(task.id, job, status), Queues.poll, first, pollJobOptions(task, delayMs), POLLING_STARTED_JOBS),
  );
}
