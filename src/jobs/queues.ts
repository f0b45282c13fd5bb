import type { Queue } from 'pg-boss';
import { z } from 'zod';

/*
 * The queue catalog: every job the relay runs — its queue's dotted name, the schema of its payload
 * and pg-boss's options for it — in one place. Payload types are inferred from the schemas, so a
 * handler and whoever enqueues for it cannot disagree, and the worker parses each payload against
 * its schema before the handler sees it (jobs/worker.ts): a malformed job (written by hand, by an
 * older release, or corrupted) is failed with the reason, never handed on half-read.
 *
 * pg-boss retries (`retryLimit`) are only for crashes and database trouble (a handler that throws,
 * a worker that died holding the job): the relay's own retry schedules are delayed jobs.
 * `heartbeatSeconds` lets a job whose worker was killed be picked up again quickly.
 */

const taskId = z.uuid();

const taskJob = z.object({ taskId });

const pollJob = z.object({
  taskId,
  /** The task's poll count this job expects; any other count means a replayed or stale job. */
  poll: z.int().nonnegative(),
  /** Consecutive failed polls (429, 5xx, network) before this one: drives the backoff. */
  errors: z.int().nonnegative(),
});

const providerCancelJob = z.object({
  taskId,
  reason: z.enum(['cancelled', 'timeout']),
  /** The endpoint, when the task never recorded its provider job (cancelled while the submit was in flight). */
  target: z.object({ url: z.string(), method: z.string() }).optional(),
});

const round = {
  /** Delivery round (bumped by redeliver); a job of an older round does nothing. */
  generation: z.int().nonnegative(),
  /** 1-based attempt number within the round. */
  attempt: z.int().positive(),
};

const notifyJob = z.union([
  z.object({ taskId, ...round }),
  /**
   * Written by a callback before it knows whether it will be accepted (or which task it is for):
   * the job acts only if the task behind this token was completed by the request named `ref`.
   */
  z.object({ callbackHash: z.string().regex(/^[0-9a-f]{64}$/), ref: z.uuid(), ...round }),
]);

type QueueOptions = Omit<Queue, 'name'>;

/** One queue, under its pg-boss name: its payload's schema and its pg-boss options. */
interface QueueSpec<S extends z.ZodType> {
  payload: S;
  options: QueueOptions;
}

const queue = <S extends z.ZodType>(payload: S, options: QueueOptions): QueueSpec<S> => ({ payload, options });

export const catalog = {
  /** Call the task's target (one attempt per job; retries are new delayed jobs). */
  'task.dispatch': queue(taskJob, { notify: true, retryLimit: 20, retryDelay: 2, retryBackoff: true, heartbeatSeconds: 10, expireInSeconds: 900 }),
  /** `maxWaitTime` reached for a waiting task: time it out if still waiting. */
  'task.deadline': queue(taskJob, { notify: true, retryLimit: 20, retryDelay: 2, retryBackoff: true, expireInSeconds: 60 }),
  /** Deliver the onComplete webhook (one attempt per job). */
  'task.notify': queue(notifyJob, { notify: true, retryLimit: 20, retryDelay: 2, retryBackoff: true, heartbeatSeconds: 10, expireInSeconds: 120 }),
  /** One poll of a provider's status URL (each next poll is a new delayed job). */
  'task.poll': queue(pollJob, { notify: true, retryLimit: 20, retryDelay: 2, retryBackoff: true, heartbeatSeconds: 10, expireInSeconds: 900 }),
  /** Call the provider's cancel endpoint after a task was cancelled or timed out. */
  'task.provider_cancel': queue(providerCancelJob, { notify: true, retryLimit: 5, retryDelay: 5, retryBackoff: true, heartbeatSeconds: 10, expireInSeconds: 300 }),
  /** Delete terminal tasks past retention (scheduled daily). */
  'task.purge': queue(z.object({}), { retryLimit: 2, expireInSeconds: 600 }),
} as const;

export type QueueName = keyof typeof catalog;
/** The payload of a queue's jobs, as its schema describes it. */
export type PayloadOf<Q extends QueueName> = z.infer<(typeof catalog)[Q]['payload']>;

/** Queue names by role, for call sites (`Queues.notify` reads better than a string). */
export const Queues = {
  dispatch: 'task.dispatch',
  deadline: 'task.deadline',
  notify: 'task.notify',
  poll: 'task.poll',
  providerCancel: 'task.provider_cancel',
  purge: 'task.purge',
} as const satisfies Record<string, QueueName>;

export type TaskJob = PayloadOf<'task.dispatch'>;
export type PollJob = PayloadOf<'task.poll'>;
export type ProviderCancelJob = PayloadOf<'task.provider_cancel'>;
export type NotifyJob = PayloadOf<'task.notify'>;

/**
 * A job's payload checked against its queue's schema: the parsed payload, or why it is not one.
 * Unknown keys are dropped (a payload carries nothing a handler does not read).
 */
export function parsePayload<Q extends QueueName>(name: Q, data: unknown): { ok: true; payload: PayloadOf<Q> } | { ok: false; reason: string } {
  const parsed = catalog[name].payload.safeParse(data);
  if (parsed.success) return { ok: true, payload: parsed.data as PayloadOf<Q> };
  return { ok: false, reason: describe(parsed.error.issues) };
}

/** "taskId: Invalid UUID; poll: Too small…"; of a union (the notify job), the branch that came closest. */
function describe(issues: z.core.$ZodIssue[]): string {
  return issues
    .map((issue) => {
      if (issue.code === 'invalid_union' && issue.errors.length > 0) {
        return describe(issue.errors.reduce((best, branch) => (branch.length < best.length ? branch : best)));
      }
      return `${issue.path.length ? issue.path.join('.') : '(payload)'}: ${issue.message}`;
    })
    .join('; ');
}

/** The onComplete job an accepted callback wrote: it names the request, and its id is the request's `ref`. */
export type CallbackNotifyJob = Extract<NotifyJob, { ref: string }>;
