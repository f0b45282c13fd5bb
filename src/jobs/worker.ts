import type { Job, JobResult, PgBoss } from 'pg-boss';
import type { Relay } from '../context.ts';
import { deliverWebhook } from '../delivery/deliver-webhook.ts';
import { dispatchTask } from '../tasks/dispatch-task.ts';
import { expireTask } from '../tasks/expire-task.ts';
import { purgeTasks } from '../tasks/purge-tasks.ts';
import { purgeRateLimits } from '../limits/rejection-counter.ts';
import { cancelAtProvider } from '../providers/provider-cancel.ts';
import { pollTask } from '../providers/poll-task.ts';
import { type NotifyJob, type PollJob, type ProviderCancelJob, Queues, type TaskJob } from './queues.ts';

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
 * is retried by pg-boss without failing the others of its batch.
 */
function perJob<T>(relay: Relay, name: string, handle: (data: T) => Promise<unknown>) {
  return async (jobs: Job<T>[]): Promise<JobResult[]> => {
    const settled = await Promise.allSettled(jobs.map((job) => handle(job.data)));
    return settled.map((outcome, i) => {
      if (outcome.status === 'fulfilled') return { id: jobs[i].id, status: 'completed' as const };
      relay.log.error({ err: outcome.reason, queue: name, jobId: jobs[i].id }, 'job failed; pg-boss will retry it');
      return { id: jobs[i].id, status: 'failed' as const, output: { message: String(outcome.reason) } };
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
  await boss.work<TaskJob>(Queues.dispatch, { ...common, localConcurrency: dispatchWorkers }, perJob(relay, Queues.dispatch, (d: TaskJob) => dispatchTask(relay, d.taskId)));
  await boss.work<NotifyJob>(Queues.notify, common, perJob(relay, Queues.notify, (d: NotifyJob) => deliverWebhook(relay, d)));
  await boss.work<TaskJob>(Queues.deadline, { ...common, localConcurrency: 1 }, perJob(relay, Queues.deadline, (d: TaskJob) => expireTask(relay, d.taskId)));
  await boss.work<PollJob>(Queues.poll, { ...common, localConcurrency: Math.max(1, Math.ceil(common.localConcurrency / 4)) }, perJob(relay, Queues.poll, (d: PollJob) => pollTask(relay, d)));
  await boss.work<ProviderCancelJob>(Queues.providerCancel, { ...common, localConcurrency: 1 }, perJob(relay, Queues.providerCancel, (d: ProviderCancelJob) => cancelAtProvider(relay, d)));
  await boss.work(Queues.purge, { batchSize: 1, perJobResults: true as const }, perJob(relay, Queues.purge, async () => {
    await purgeRateLimits(relay.sql);
    return purgeTasks(relay);
  }));
  await boss.schedule(Queues.purge, '17 3 * * *');
}
