import type { Relay } from '../context.ts';
import type { NotifyJob } from '../jobs/queues.ts';
import { deliverWebhook } from './deliver-webhook.ts';

/** First attempts made at once by this process; more wait here in memory for a free slot. */
const MAX_IN_FLIGHT = 128;

/**
 * The first onComplete attempt of a callback, made by the process that accepted the callback,
 * right after its commit, instead of waiting for a worker to pick the job up. Under load the
 * job queue is shared with every dispatch, and a webhook queued behind them is what made
 * callback-to-webhook latency climb to seconds.
 *
 * Durability does not depend on it: the same statement that completed the task wrote the job
 * for this attempt, delayed by `Timings.promptFallbackSeconds` (longer than an attempt can take).
 * If this process dies first, that job delivers; if this attempt ran, the job finds it recorded
 * (deliveries are counted per attempt) and does nothing.
 */
export function createPromptDelivery(relay: Omit<Relay, 'deliverPromptly'>): (job: NotifyJob) => void {
  let inFlight = 0;
  const waiting: NotifyJob[] = [];
  const run = (job: NotifyJob): void => {
    inFlight++;
    deliverWebhook(relay as Relay, job)
      .catch((err: unknown) => relay.log.warn({ err }, 'prompt delivery failed; its queued job will retry'))
      .finally(() => {
        inFlight--;
        const next = waiting.shift();
        if (next) run(next);
      });
  };
  return (job) => {
    if (inFlight < MAX_IN_FLIGHT) run(job);
    else waiting.push(job);
  };
}
