import type { StoredError } from '../../drizzle/schema.ts';
import type { CapturedResponse, OutboundResult } from '../outbound/http.ts';
import { parseRetryAfter } from '../outbound/http.ts';

/** What one answer of the target means for the task (DESIGN §4, Statuses). */
export type TargetVerdict =
  | { kind: 'success'; response: CapturedResponse }
  | { kind: 'permanent'; error: StoredError; response?: CapturedResponse }
  | { kind: 'retryable'; error: StoredError; response?: CapturedResponse; retryAfterMs?: number };

/**
 * 2xx moves on. 4xx other than 408/429 fails at once (AsyncQueue calls 4xx "completed"; we do
 * not: a rejected request will not succeed by repeating it). Network errors, timeouts, 408, 429
 * and 5xx may pass, so they are retried. A 3xx left after following redirects is a failure.
 */
export function classifyTargetAnswer(answer: OutboundResult): TargetVerdict {
  if (!answer.ok) {
    const code = answer.error.code === 'timeout' ? 'target_timeout' : answer.error.code === 'refused' ? 'destination_refused' : 'target_unreachable';
    if (answer.error.code === 'invalid_url' || answer.error.code === 'refused') {
      return { kind: 'permanent', error: { code, message: answer.error.message } };
    }
    return { kind: 'retryable', error: { code, message: answer.error.message } };
  }
  const { response } = answer;
  const status = response.statusCode;
  if (status >= 200 && status < 300) return { kind: 'success', response };
  const error = { code: 'target_error', message: `Target answered HTTP ${status}`, statusCode: status };
  if (status === 408 || status === 429 || status >= 500) {
    return { kind: 'retryable', error, response, retryAfterMs: parseRetryAfter(response.headers['retry-after']) };
  }
  if (status >= 300 && status < 400) {
    return { kind: 'permanent', error: { ...error, code: 'target_redirect', message: `Target answered HTTP ${status} (redirect not followed)` }, response };
  }
  return { kind: 'permanent', error: { ...error, code: 'target_rejected' }, response };
}

/** Longest wait a target's Retry-After can impose on one retry. */
const MAX_RETRY_AFTER_MS = 60 * 60 * 1000;

/**
 * Delay before retry number `retry` (1-based): exponential 1, 2, 4, 8, 16 … s or linear
 * 1, 2, 3 … s; a Retry-After from the target wins when it asks for longer.
 */
export function retryDelayMs(backoff: 'exponential' | 'linear', retry: number, retryAfterMs?: number, scale = 1): number {
  const base = (backoff === 'exponential' ? 2 ** (retry - 1) : retry) * 1000 * scale;
  return retryAfterMs === undefined ? base : Math.max(base, Math.min(retryAfterMs, MAX_RETRY_AFTER_MS));
}
