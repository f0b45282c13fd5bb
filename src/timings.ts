/** Durations that production fixes and tests shorten. */
export interface Timings {
  /** Seconds before each onComplete retry (DESIGN §6: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h). */
  deliveryRetrySeconds: number[];
  /** Per-attempt timeout of an onComplete delivery, ms. */
  deliveryTimeoutMs: number;
  /** Multiplier of the target retry backoff (1 in production: 1, 2, 4 … s). */
  backoffScale: number;
  /**
   * Delay of the queued first onComplete attempt behind a prompt delivery (delivery/prompt-delivery.ts):
   * it only acts if the prompt attempt never ran, so it must exceed one attempt's timeout.
   */
  promptFallbackSeconds: number;
  /** Multiplier of poll intervals and poll backoff (1 in production; a provider's Retry-After is never scaled). */
  pollScale: number;
  /**
   * Fallback poll of a task that waits for a callback (webhooks are best-effort): the first poll
   * after the first step, then each next step, the last repeating. Scaled by pollScale.
   */
  fallbackPollSeconds: number[];
  /**
   * How long a fal-signed webhook that arrives before its task's submit answer (so before fal's
   * request id is known) waits for that answer; then 503, and fal retries (providers/fal-request.ts).
   */
  falRequestWaitMs: number;
}

export const PRODUCTION_TIMINGS: Timings = {
  deliveryRetrySeconds: [5, 300, 1800, 7200, 18_000, 36_000, 36_000],
  deliveryTimeoutMs: 15_000,
  backoffScale: 1,
  promptFallbackSeconds: 30,
  pollScale: 1,
  fallbackPollSeconds: [30, 60, 120, 300],
  falRequestWaitMs: 5_000,
};
