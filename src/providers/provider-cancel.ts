import type { TaskRow } from '../../drizzle/schema.ts';
import { findTask, findTaskStatus } from '../db/sql/task-reads.ts';
import type { Relay } from '../context.ts';
import { type Statement, transact } from '../db/pipeline.ts';
import { insertEvents } from '../db/sql/events.ts';
import { type ProviderCancelJob, Queues } from '../jobs/queues.ts';
import { providerCallHeaders } from './auth-headers.ts';
import type { CapturedResponse } from '../outbound/http.ts';
import type { PollConfig } from './poll-config.ts';
import { resolveCancel, submitContext } from './poll-start.ts';
import type { ProviderJob } from '../db/sql/polling.ts';

/**
 * The job that asks the provider to stop, for a task that was just cancelled or timed out and
 * whose provider's cancel endpoint is known (fal `cancel_url`, Replicate `urls.cancel`, Runway
 * and Luma DELETE). Written in the same transaction as the terminal change; none otherwise.
 */
export async function providerCancelStatements(relay: Relay, task: TaskRow, reason: ProviderCancelJob['reason']): Promise<Statement[]> {
  if (!(task.providerJob as ProviderJob | null)?.cancel) return [];
  return [await relay.jobs.send(Queues.providerCancel, { taskId: task.id, reason })];
}

/**
 * The `task.provider_cancel` job: one call of the provider's cancel endpoint, with the task's
 * credentials (forwardAuth), recorded on the timeline whatever it answers. Best effort: fal
 * refuses once processing started, and the task is already cancelled on our side either way.
 */
export async function cancelAtProvider(relay: Relay, job: ProviderCancelJob): Promise<void> {
  const task = await findTask(relay.db, job.taskId);
  const cancel = job.target ?? (task?.providerJob as ProviderJob | null)?.cancel;
  if (!task || !cancel || !task.pollConfig) return;
  const { headers, credentialsWithheld } = providerCallHeaders(relay.keyring, task, task.pollConfig as PollConfig, cancel.url);
  const answer = await relay.outbound.send({ url: cancel.url, method: cancel.method, headers, timeoutMs: task.timeout * 1000 });
  const data = {
    reason: job.reason,
    method: cancel.method,
    url: cancel.url,
    ...(credentialsWithheld && { credentialsWithheld }),
    ...(answer.ok
      ? { statusCode: answer.response.statusCode, duration: answer.response.duration, answer: answer.response.body.slice(0, 512) }
      : { error: answer.error, duration: answer.duration }),
  };
  await transact(relay.sql, { event: insertEvents(task.id, [{ type: 'provider.cancel_attempt', data }]) });
}

/**
 * The submit answered 2xx after the task was cancelled (the cancel won the race while the call was
 * in flight, so no provider job was recorded): the provider now runs a job nobody will collect.
 * Ask the provider to cancel it as well. A task finished otherwise meanwhile (an early callback)
 * is left alone.
 */
export async function cancelOrphanedJob(relay: Relay, task: TaskRow, answer: CapturedResponse): Promise<void> {
  const target = resolveCancel(task.pollConfig as PollConfig, submitContext(task, answer));
  if (!target) return;
  if ((await findTaskStatus(relay.db, task.id)) !== 'cancelled') return;
  await transact(relay.sql, { job: await relay.jobs.send(Queues.providerCancel, { taskId: task.id, reason: 'cancelled', target }) });
}
