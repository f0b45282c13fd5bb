import type { Job, JobResult, PgBoss } from 'pg-boss';
import type { Relay } from '../context.ts';
import { deliverWebhook } from '../delivery/deliver-webhook.ts';
import { dispatchTask } from '../tasks/dispatch-task.ts';
import { expireTask } from '../tasks/expire-task.ts';
import { purgeTasks } from '../tasks/purge-tasks.ts';
import { purgeRateLimits } from '../limits/rejection-counter.ts';
import { cancelAtProvider } from '../providers/provider-cancel.ts';
import { pollTask } from '../providers/poll-task.ts';
import { parsePayload, type PayloadOf, type QueueName, Queues } from './queues.ts';

export interface WorkerOptions {
  /** Jobs fetched per poll; with `burstWhenBatchFull` a backlog drains without idle sleeps. */
  batchSize?: number;
  /** Workers per queue in this process (each holds one batch at a time). */
  concurrency?: number;
  /**
   * Idle poll while LISTEN/NOTIFY is up. New jobs wake workers at once; this bounds how late a
   * delayed job (a retry, a deadline) can start, since delayed jobs never notify.
   */
  pollSeconds?: number;
}

/**
 * Runs each job of a batch on its own and settles it on its own (`perJobResults`): one bad job
 * is retried by pg-boss without failing the others of its batch. Each payload is parsed against
 * its queue's schema first (jobs/queues.ts): a malformed one never reaches the handler, and is
 * failed for good with the reason (`deadletter`: retrying cannot mend it).
 */
function perJob<Q extends QueueName>(relay: Relay, name: Q, handle: (payload: PayloadOf<Q>) => Promise<unknown>) {
  return async (jobs: Job<unknown>[]): Promise<JobResult[]> => {
    const settled = await Promise.allSettled(
      jobs.map(async (job) => {
        const parsed = parsePayload(name, job.data);
        if (!parsed.ok) return { malformed: parsed.reason };
        await handle(parsed.payload);
        return undefined;
      }),
    );
    return settled.map((outcome, i) => {
      const id = jobs[i].id;
      if (outcome.status === 'rejected') {
        relay.log.error({ err: outcome.reason, queue: name, jobId: id }, 'job failed; pg-boss will retry it');
        return { id, status: 'failed' as const, output: { message: String(outcome.reason) } };
      }
      if (outcome.value) {
        const message = `malformed ${name} payload: ${outcome.value.malformed}`;
        relay.log.error({ queue: name, jobId: id }, `${message}; job failed without retry`);
        return { id, status: 'deadletter' as const, output: { message } };
      }
      return { id, status: 'completed' as const };
    });
  };
}

/** Registers the queue handlers on pg-boss. The caller owns boss.start()/stop(). */
export async function startWorker(relay: Relay, boss: PgBoss, options: WorkerOptions = {}): Promise<void> {
  const batchSize = options.batchSize ?? 16;
  const common = {
    batchSize,
    burstWhenBatchFull: true,
    localConcurrency: options.concurrency ?? 8,
    pollingIntervalSeconds: options.pollSeconds ?? 1,
    notifyPollingIntervalSeconds: options.pollSeconds ?? 1,
    perJobResults: true as const,
  };
  // Dispatch gets three quarters of the workers: in a burst the backlog should wait before
  // dispatch (dispatch lag) rather than starve the callbacks and webhooks of tasks already under
  // way, whose latency is what clients feel. Measured in `npm run bench`: 8 → 6 dispatch workers
  // took the callback-to-webhook p50 from ~175 to ~120 ms with no loss of lifecycle throughput
  // (fewer, 5 or 4, cost throughput).
  const dispatchWorkers = Math.max(1, Math.ceil((common.localConcurrency * 3) / 4));
  await boss.work(Queues.dispatch, { ...common, localConcurrency: dispatchWorkers }, perJob(relay, Queues.dispatch, (d) => dispatchTask(relay, d.taskId)));
  await boss.work(Queues.notify, common, perJob(relay, Queues.notify, (d) => deliverWebhook(relay, d)));
  await boss.work(Queues.deadline, { ...common, localConcurrency: 1 }, perJob(relay, Queues.deadline, (d) => expireTask(relay, d.taskId)));
  await boss.work(Queues.poll, { ...common, localConcurrency: Math.max(1, Math.ceil(common.localConcurrency / 4)) }, perJob(relay, Queues.poll, (d) => pollTask(relay, d)));
  await boss.work(Queues.providerCancel, { ...common, localConcurrency: 1 }, perJob(relay, Queues.providerCancel, (d) => cancelAtProvider(relay, d)));
  await boss.work(Queues.purge, { batchSize: 1, perJobResults: true as const }, perJob(relay, Queues.purge, async () => {
    await purgeRateLimits(relay.sql);
    return purgeTasks(relay);
  }));
  await boss.schedule(Queues.purge, '17 3 * * *');
}
