import { eq } from 'drizzle-orm';
import { projects, type TaskRow } from '../../drizzle/schema.ts';
import type { Relay } from '../context.ts';
import type { NotifyJob } from '../jobs/queues.ts';
import { deliverWebhook } from './deliver-webhook.ts';

/** First attempts made at once by this process; more wait here in memory for a free slot. */
const MAX_IN_FLIGHT = 128;
/** A project's sealed signing secret is read again after this long. */
const SECRET_TTL_MS = 60_000;

/**
 * The first onComplete attempt of a callback, made by the process that accepted the callback,
 * right after its commit, instead of waiting for a worker to pick the job up. Under load the
 * job queue is shared with every dispatch, and a webhook queued behind them is what made
 * callback-to-webhook latency climb to seconds. The caller hands over the task row it just
 * wrote, so the attempt reads nothing but (rarely) the project's secret.
 *
 * Durability does not depend on it: the same statement that completed the task wrote the job
 * for this attempt, delayed by `Timings.promptFallbackSeconds` (longer than an attempt can take).
 * If this process dies first, that job delivers; if this attempt ran, the job finds it recorded
 * (deliveries are counted per attempt) and does nothing.
 */
export function createPromptDelivery(relay: Omit<Relay, 'deliverPromptly'>): (job: NotifyJob, task: TaskRow) => void {
  let inFlight = 0;
  const waiting: Array<[NotifyJob, TaskRow]> = [];
  const secrets = new Map<string, { sealed: string; at: number }>();
  const secretOf = async (projectId: string): Promise<string> => {
    const hit = secrets.get(projectId);
    if (hit && Date.now() - hit.at < SECRET_TTL_MS) return hit.sealed;
    const [row] = await relay.db.select({ sealed: projects.webhookSecretSealed }).from(projects).where(eq(projects.id, projectId));
    secrets.set(projectId, { sealed: row.sealed, at: Date.now() });
    return row.sealed;
  };
  const run = (job: NotifyJob, task: TaskRow): void => {
    inFlight++;
    secretOf(task.projectId)
      .then((secretSealed) => deliverWebhook(relay as Relay, job, { task, secretSealed }))
      .catch((err: unknown) => relay.log.warn({ err }, 'prompt delivery failed; its queued job will retry'))
      .finally(() => {
        inFlight--;
        const next = waiting.shift();
        if (next) run(...next);
      });
  };
  return (job, task) => {
    if (inFlight < MAX_IN_FLIGHT) run(job, task);
    else waiting.push([job, task]);
  };
}
