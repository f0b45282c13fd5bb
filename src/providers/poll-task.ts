import type { TaskRow } from '../../drizzle/schema.ts';
import { findTask } from '../db/sql/task-reads.ts';
import type { Relay } from '../context.ts';
import { nothing, type Statement, withLock } from '../db/pipeline.ts';
import { foldJob } from '../jobs/job-sql.ts';
import { toTaskRow } from '../db/rows.ts';
import { insertEvents } from '../db/sql/events.ts';
import { lockById } from '../db/sql/tasks.ts';
import { type PollJob, Queues } from '../jobs/queues.ts';
import type { OutboundResult } from '../outbound/http.ts';
import type { NewEvent } from '../db/sql/events.ts';
import { expireTask } from '../tasks/expire-task.ts';
import { finishStatements } from '../tasks/finish-task.ts';
import { providerCallHeaders } from './auth-headers.ts';
import { parseJsonBody, renderTemplate } from './json-path.ts';
import type { PollConfig } from './poll-config.ts';
import type { ProviderJob } from '../db/sql/polling.ts';
import { countPoll } from '../db/sql/polling.ts';
import { isHttpUrl, pollJobOptions } from './poll-start.ts';
import { isProviderVerdict, judgePoll, judgeResultFetch, type PollVerdict, resultOf } from './poll-verdict.ts';

/** Longest own backoff between two polls after repeated 429/5xx. */
const MAX_BACKOFF_MS = 10 * 60 * 1000;
/** Longest wait a provider's Retry-After can impose on one poll. */
const MAX_RETRY_AFTER_MS = 60 * 60 * 1000;
const POLL_REDIRECTS = 5;

function outcomeData(answer: OutboundResult) {
  return answer.ok ? { statusCode: answer.response.statusCode, duration: answer.response.duration } : { error: answer.error, duration: answer.duration };
}

/** Delay before the next poll: the interval or fallback step; after trouble, doubled per failure (or Retry-After). */
export function nextPollDelayMs(relay: Relay, config: PollConfig, provider: ProviderJob, job: PollJob, verdict: PollVerdict): number {
  const steps = relay.timings.fallbackPollSeconds;
  const baseMs = (provider.schedule === 'fallback' ? steps[Math.min(job.poll + 1, steps.length - 1)] : config.interval) * 1000;
  if (verdict.kind !== 'backoff') return baseMs * relay.timings.pollScale;
  const backedOff = Math.min(baseMs * 2 ** (job.errors + 1), MAX_BACKOFF_MS) * relay.timings.pollScale;
  return Math.max(backedOff, Math.min(verdict.retryAfterMs ?? 0, MAX_RETRY_AFTER_MS));
}

/**
 * The `task.poll` job: one GET of the provider's status URL (and, when done, of its result URL),
 * made without holding anything; the verdict is written under the row lock, checked against the
 * poll count the job expects, so a replayed job cannot start a second chain of polls. While the
 * job runs on, the next poll is a new delayed job: no worker ever sleeps on a task.
 */
export async function pollTask(relay: Relay, job: PollJob): Promise<void> {
  const task = await findTask(relay.db, job.taskId);
  if (!task || (task.status !== 'waiting' && task.status !== 'polling') || task.pollCount !== job.poll) return;
  const config = task.pollConfig as PollConfig | null;
  const provider = task.providerJob as ProviderJob | null;
  if (!config || !provider) return;
  if (Date.now() >= Date.parse(provider.deadline)) return expireTask(relay, task.id);

  const call = async (url: string) => {
    const { headers, credentialsWithheld } = providerCallHeaders(relay.keyring, task, config, url);
    const answer = await relay.outbound.send({ url, method: 'GET', headers, timeoutMs: task.timeout * 1000, maxRedirects: POLL_REDIRECTS });
    return { answer, noted: credentialsWithheld ? { credentialsWithheld } : {} };
  };
  const { answer, noted } = await call(provider.pollUrl);
  let verdict = judgePoll(config, answer);
  const events: NewEvent[] = [{ type: 'poll.attempt', data: { poll: job.poll + 1, ...outcomeData(answer), verdict: verdict.kind, ...stateOf(verdict), ...noted } }];

  if (verdict.kind === 'done' && provider.resultUrlTemplate && answer.ok) {
    const { response } = answer;
    const url = renderTemplate(provider.resultUrlTemplate, {
      pollResult: { statusCode: response.statusCode, headers: response.headers, body: parseJsonBody(response.body, response.bodyEncoding) },
    });
    if (url.missing.length > 0 || !isHttpUrl(url.text)) {
      verdict = { kind: 'failed', response, error: { code: 'poll_unresolved', message: `pollConfig.resultUrlTemplate did not resolve (${url.missing.join(', ') || url.text})` } };
    } else {
      const { answer: fetched, noted: fetchNoted } = await call(url.text);
      verdict = judgeResultFetch(config, fetched);
      events.push({ type: 'poll.result_fetch', data: { ...outcomeData(fetched), verdict: verdict.kind, ...fetchNoted } });
    }
  }
  await recordPoll(relay, task, config, provider, job, verdict, events);
}

function stateOf(verdict: PollVerdict) {
  return { ...('state' in verdict && verdict.state !== undefined && { state: verdict.state }), ...(verdict.kind === 'backoff' && { reason: verdict.reason }) };
}

async function recordPoll(relay: Relay, task: TaskRow, config: PollConfig, provider: ProviderJob, job: PollJob, verdict: PollVerdict, events: NewEvent[]) {
  const delayMs = nextPollDelayMs(relay, config, provider, job, verdict);
  await withLock(relay.sql, lockById(task.id), async (rows) => {
    const none = nothing(undefined);
    const recording = (statements: Statement | Statement[], done: () => void = () => undefined) => ({ run: { recorded: statements }, done });
    const current = rows[0] ? toTaskRow(rows[0]) : undefined;
    if (!current) return none;
    const terminalVerdict = verdict.kind === 'done' || verdict.kind === 'failed';
    if (current.status !== 'waiting' && current.status !== 'polling') {
      // A callback, signal, cancel or the deadline came first: that result stands, this one is history.
      return terminalVerdict
        ? recording(insertEvents(task.id, [...events, { type: 'poll.superseded', data: { status: current.status, verdict: verdict.kind } }]))
        : none;
    }
    if (current.pollCount !== job.poll) return none; // a replayed job: its poll was recorded already
    if (provider.schedule === 'fallback' && verdict.kind === 'failed' && !isProviderVerdict(verdict)) {
      // The fallback poll is only a safety net: a status URL it may not read (401 without the
      // task's credentials, a refused address) says nothing of the job, and the task keeps
      // waiting for its callback or deadline. Only the provider's own verdict ends it.
      return recording(countPoll(task.id, job.poll, [...events, { type: 'poll.stopped', data: { error: verdict.error } }]));
    }
    const finished = () => relay.changes.publish([task.id]);
    if (verdict.kind === 'done') {
      return recording(await finishStatements(relay, current, { to: 'completed', result: resultOf(config, verdict.response), error: null, events }), finished);
    }
    if (verdict.kind === 'failed') {
      return recording(await finishStatements(relay, current, { to: 'failed', result: verdict.response ?? null, error: verdict.error, events }), finished);
    }
    const nextAt = Date.now() + delayMs;
    (events[0].data as Record<string, unknown>).nextInMs = Math.round(delayMs);
    const counted = countPoll(task.id, job.poll, events);
    // Past the deadline no poll is scheduled: the deadline job ends the task as `timeout`.
    if (nextAt >= Date.parse(provider.deadline)) return recording(counted);
    const next: PollJob = { taskId: task.id, poll: job.poll + 1, errors: verdict.kind === 'backoff' ? job.errors + 1 : 0 };
    return recording(foldJob(counted, await relay.jobs.send(Queues.poll, next, pollJobOptions(task, delayMs))));
  });
}
