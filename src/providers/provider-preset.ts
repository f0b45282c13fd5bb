import type { CallbackConfig, CallbackSignature } from './callback-rules.ts';
import type { PollConfigInput } from './poll-config.ts';

/**
 * What the relay knows about one provider: data, not code, so GET /v1/providers can show all of
 * it and the same engines (callback classification, polling) serve every preset.
 */
export interface ProviderPreset {
  id: string;
  name: string;
  docs: string;
  /** How the provider calls back; absent for poll-only providers. */
  callback?: {
    /** Where `{asyncqueue_callback_url}` is put when the task does not place it itself. */
    placement: { in: 'query' | 'body'; name: string };
    classify: CallbackConfig;
    /** The signature scheme the provider uses, if any (opt in per task with callbackSignature). */
    signature?: CallbackSignature['scheme'];
    /**
     * A success callback that carries no result: `emptyPath` is null and `markerPath` is set.
     * The relay then fetches the result by polling at once (the poll reads it where it lives).
     */
    resultMissing?: { emptyPath: string; markerPath: string };
    /**
     * Where the submit answer names the provider's request, which its signed webhooks repeat
     * (fal `request_id`, signed as X-Fal-Webhook-Request-Id): kept as the provider job's
     * `requestId`, so a webhook is tied to this task and not merely to the provider.
     */
    requestIdPath?: string;
  };
  /**
   * How to poll. With a callback this is the fallback poll (slow, backing off, see
   * Timings.fallbackPollSeconds); without one it is the only channel, at `interval`.
   */
  poll: PollConfigInput & { urlTemplate: string };
  /**
   * Origins besides the task's target that may receive the task's credentials (forwardAuth) on
   * polls, result fetches and cancels: the provider's own API hosts, where its answers point.
   */
  credentialOrigins?: string[];
  /** Where the output and the error are, in words (shown in the catalog). */
  output: string;
  error: string;
}
