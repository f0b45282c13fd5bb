import type { PgBoss } from 'pg-boss';

/** The queue catalog: every job the relay runs, by dotted name. */
export const Queues = {
  /** Call the task's target (one attempt per job; retries are new delayed jobs). */
  dispatch: 'task.dispatch',
  /** `maxWaitTime` reached for a waiting task: time it out if still waiting. */
  deadline: 'task.deadline',
  /** Deliver the onComplete webhook (one attempt per job). */
  notify: 'task.notify',
  /** One poll of a provider's status URL (each next poll is a new delayed job). */
  poll: 'task.poll',
  /** Call the provider's cancel endpoint after a task was cancelled or timed out. */
  providerCancel: 'task.provider_cancel',
  /** Delete terminal tasks past retention. */
  purge: 'task.purge',
} as const;
export type QueueName = (typeof Queues)[keyof typeof Queues];

export interface TaskJob {
  taskId: string;
}
export interface PollJob {
  taskId: string;
  /** The task's poll count this job expects; any other count means a replayed or stale job. */
  poll: number;
  /** Consecutive failed polls (429, 5xx, network) before this one: drives the backoff. */
  errors: number;
}
export interface ProviderCancelJob {
  taskId: string;
  reason: 'cancelled' | 'timeout';
  /** The endpoint, when the task never recorded its provider job (cancelled while the submit was in flight). */
  target?: { url: string; method: string };
}
export type NotifyJob = {
  /** Delivery round (bumped by redeliver); a job of an older round does nothing. */
  generation: number;
  /** 1-based attempt number within the round. */
  attempt: number;
} & (
  | { taskId: string }
  /**
   * Written by a callback before it knows whether it will be accepted (or which task it is for):
   * the job acts only if the task behind this token was completed by the request named `ref`.
   */
  | { callbackHash: string; ref: string }
);
/**
 * Queue options. pg-boss job retries are only for crashes and database trouble (a handler that
 * throws, a worker that died holding the job): the relay's own retry schedules are delayed jobs.
 * `heartbeatSeconds` lets a job whose worker was killed be picked up again quickly.
 */
const queueOptions: Record<QueueName, Parameters<PgBoss['createQueue']>[1]> = {
  [Queues.dispatch]: { notify: true, retryLimit: 20, retryDelay: 2, retryBackoff: true, heartbeatSeconds: 10, expireInSeconds: 900 },
  [Queues.deadline]: { notify: true, retryLimit: 20, retryDelay: 2, retryBackoff: true, expireInSeconds: 60 },
  [Queues.notify]: { notify: true, retryLimit: 20, retryDelay: 2, retryBackoff: true, heartbeatSeconds: 10, expireInSeconds: 120 },
  [Queues.poll]: { notify: true, retryLimit: 20, retryDelay: 2, retryBackoff: true, heartbeatSeconds: 10, expireInSeconds: 900 },
  [Queues.providerCancel]: { notify: true, retryLimit: 5, retryDelay: 5, retryBackoff: true, heartbeatSeconds: 10, expireInSeconds: 300 },
  [Queues.purge]: { retryLimit: 2, expireInSeconds: 600 },
};

/** Creates (or updates) every queue; run at boot, before any send, so `send` never misses the cache. */
export async function createQueues(boss: PgBoss): Promise<void> {
  const existing = new Set((await boss.getQueues()).map((q) => q.name));
  for (const [name, options] of Object.entries(queueOptions)) {
    if (existing.has(name)) await boss.updateQueue(name, options);
    else await boss.createQueue(name, options);
  }
}
