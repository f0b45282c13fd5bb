import type { Logger } from 'pino';
import type { TaskRow } from '../../drizzle/schema.ts';
import type { Db } from '../db/client.ts';
import { readProjectSecret } from '../db/sql/projects.ts';
import type { Jobs } from '../jobs/job-sql.ts';
import { type CallbackNotifyJob, Queues } from '../jobs/queues.ts';
import { createFairScheduler } from '../limits/fair-scheduler.ts';
import type { Timings } from '../timings.ts';

/** How much the prompt first attempts may take of this process. */
export interface PromptDeliveryLimits {
  /** First attempts made at once, in all (default 128)… */
  inFlight: number;
  /** …and for one project (default 32): a receiver that hangs holds at most this many. */
  inFlightPerProject: number;
  /** Attempts waiting here for a slot, in all (default 4096)… */
  queued: number;
  /** …and for one project (default 256); past either bound an attempt goes to its durable job. */
  queuedPerProject: number;
}

export const DEFAULT_PROMPT_LIMITS: PromptDeliveryLimits = { inFlight: 128, inFlightPerProject: 32, queued: 4096, queuedPerProject: 256 };

/** A project's sealed signing secret is read again after this long. */
const SECRET_TTL_MS = 60_000;

/** A first attempt waiting for a slot: the job names the task; the row is kept only by one that starts at once. */
interface Pending {
  job: CallbackNotifyJob;
  task?: TaskRow;
  since: number;
}

export interface PromptDelivery {
  /** Makes the first onComplete attempt of a just-accepted callback, now or as soon as a slot is free. */
  deliver(job: CallbackNotifyJob, task: TaskRow): void;
  /** What this process holds now, and how many attempts it handed to their durable job since it started. */
  stats(): { inFlight: number; queued: number; spilled: number };
  /**
   * On shutdown, before the database pool closes: no new attempt starts (those not made are left to
   * their durable job), and the attempts under way finish, recording included (each within the
   * delivery timeout). Their writes would otherwise race the closing pool.
   */
  stop(): Promise<void>;
}

/**
 * The first onComplete attempt of a callback, made by the process that accepted the callback,
 * right after its commit, instead of waiting for a worker to pick the job up. Under load the
 * job queue is shared with every dispatch, and a webhook queued behind them is what made
 * callback-to-webhook latency climb to seconds. An attempt that starts at once is handed the row
 * the callback just wrote, so it reads nothing but (rarely) the project's secret.
 *
 * Durability does not depend on it: the same statement that completed the task wrote the job
 * for this attempt, delayed by `Timings.promptFallbackSeconds` (longer than an attempt can take).
 * If this process dies first, that job delivers; if this attempt ran, the job finds it recorded
 * (deliveries are counted per attempt) and does nothing.
 *
 * Fair and bounded (issue 15: 400 callbacks of 1 MiB for a receiver that hung took 540 MB, and every
 * tenant's first attempts waited behind them): slots are shared round-robin between projects with
 * a per-project cap (limits/fair-scheduler.ts), so one project's hanging receiver holds at most
 * its own slots and another project's attempt starts at the next free one. What waits holds the
 * job only (the task is read when its turn comes), and past the bounds — or once it has waited so
 * long that it could overlap its durable job — an attempt is not made here at all: its job is made
 * due now instead (`spill`), and a worker delivers it within its polling interval. Either the
 * prompt attempt runs or the job does, never both at once.
 */
/** A task and its project's sealed signing secret, as an attempt needs them when it has just been read. */
export interface KnownDelivery {
  task: TaskRow;
  secretSealed: string;
}

export interface PromptDeliveryDeps {
  db: Db;
  jobs: Jobs;
  log: Logger;
  timings: Timings;
  /** One attempt (delivery/deliver-webhook.ts); `known` spares it the read; `answered` once the receiver answered. */
  attempt: (job: CallbackNotifyJob, known: KnownDelivery | undefined, answered: () => void) => Promise<void>;
}

export function createPromptDelivery(relay: PromptDeliveryDeps, limits: PromptDeliveryLimits = DEFAULT_PROMPT_LIMITS): PromptDelivery {
  // A queued attempt older than this could still be running when its durable job comes due.
  const maxWaitMs = relay.timings.promptFallbackSeconds * 1000 - relay.timings.deliveryTimeoutMs - 1000;
  const secrets = new Map<string, { sealed: string; at: number }>();
  const running = new Set<Promise<void>>();
  let spilled = 0;
  let stopping = false;

  const secretOf = async (projectId: string): Promise<string> => {
    const hit = secrets.get(projectId);
    if (hit && Date.now() - hit.at < SECRET_TTL_MS) return hit.sealed;
    const sealed = await readProjectSecret(relay.db, projectId);
    secrets.set(projectId, { sealed, at: Date.now() });
    return sealed;
  };

  /** Hands the attempt to its durable job, due now (the job's id is the callback's ref). */
  const spill = (job: CallbackNotifyJob): void => {
    spilled++;
    relay.jobs.bringForward(Queues.notify, job.ref).catch((err: unknown) => {
      relay.log.warn({ err }, 'could not bring a spilled delivery forward; its job starts when due');
    });
  };

  const attempt = async (pending: Pending, answered: () => void): Promise<void> => {
    if (!pending.task) return relay.attempt(pending.job, undefined, answered);
    const secretSealed = await secretOf(pending.task.projectId);
    const known = { task: pending.task, secretSealed };
    pending.task = undefined;
    // Returned, not awaited: this frame (and the row in it) ends here, not when the receiver answers.
    return relay.attempt(pending.job, known, answered);
  };

  const slots = createFairScheduler<Pending>({
    max: limits.inFlight,
    maxPerKey: limits.inFlightPerProject,
    start: (projectId, pending) => {
      if (stopping) return slots.done(projectId);
      if (!pending.task && Date.now() - pending.since > maxWaitMs) {
        spill(pending.job);
        slots.done(projectId);
        return;
      }
      // A slot is an attempt waiting for its receiver: it frees as soon as the answer is in, not
      // after the (batched) write that records it.
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        slots.done(projectId);
      };
      const run = attempt(pending, release)
        .catch((err: unknown) => relay.log.warn({ err }, 'prompt delivery failed; its queued job will retry'))
        .finally(() => {
          release();
          running.delete(run);
        });
      running.add(run);
    },
  });

  const deliver = (job: CallbackNotifyJob, task: TaskRow): void => {
    if (stopping) return; // its durable job delivers
    const projectId = task.projectId;
    if (slots.canStart(projectId)) return slots.offer(projectId, { job, task, since: Date.now() });
    if (maxWaitMs <= 0 || slots.waitingOf(projectId) >= limits.queuedPerProject || slots.waiting >= limits.queued) return spill(job);
    slots.offer(projectId, { job, since: Date.now() });
  };
  return {
    deliver,
    stats: () => ({ inFlight: slots.running, queued: slots.waiting, spilled }),
    async stop() {
      stopping = true;
      while (running.size > 0) await Promise.allSettled([...running]);
    },
  };
}
