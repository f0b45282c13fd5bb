import type { StoredError, StoredResult } from '../../drizzle/schema.ts';
import { type CapturedResponse, type OutboundResult, parseRetryAfter } from '../outbound/http.ts';
import { classifyParsed, errorText } from './callback-rules.ts';
import { parseJsonBody, readPath } from './json-path.ts';
import type { PollConfig } from './poll-config.ts';

/** What one poll answer means. */
export type PollVerdict =
  | { kind: 'running'; state?: string }
  | { kind: 'done'; response: CapturedResponse; state?: string }
  | { kind: 'failed'; error: StoredError; response?: CapturedResponse; state?: string }
  /** The provider could not answer now (429, 5xx, network): poll again later, slower. */
  | { kind: 'backoff'; reason: string; retryAfterMs?: number };

const transient = (status: number) => status === 408 || status === 429 || status >= 500;

/** Network trouble and 408/429/5xx are passing; an address the relay refuses is not. */
function unanswered(answer: OutboundResult & { ok: false }): PollVerdict {
  if (answer.error.code === 'invalid_url' || answer.error.code === 'refused') {
    return { kind: 'failed', error: { code: 'poll_refused', message: answer.error.message } };
  }
  return { kind: 'backoff', reason: `${answer.error.code}: ${answer.error.message}` };
}

function rejected(response: CapturedResponse, config: PollConfig, code: string): PollVerdict {
  const parsed = parseJsonBody(response.body, response.bodyEncoding);
  const detail = config.errorPath ? errorText(readPath(parsed, config.errorPath)) : undefined;
  return {
    kind: 'failed',
    response,
    error: { code, message: detail ?? `Provider answered HTTP ${response.statusCode}`, statusCode: response.statusCode },
  };
}

/**
 * Whether a failure is the provider's word on the job (a failure value in the status body, or
 * the result URL's non-2xx answer), rather than the status URL refusing or being unreachable.
 */
export function isProviderVerdict(verdict: PollVerdict & { kind: 'failed' }): boolean {
  return verdict.error.code === 'provider_failed';
}

/** Judges a status poll by `statusCodes`, or by the value at `statusPath` of a 2xx JSON answer. */
export function judgePoll(config: PollConfig, answer: OutboundResult): PollVerdict {
  if (!answer.ok) return unanswered(answer);
  const { response } = answer;
  const status = response.statusCode;
  if (transient(status)) return { kind: 'backoff', reason: `HTTP ${status}`, retryAfterMs: parseRetryAfter(response.headers['retry-after']) };
  if (config.statusCodes) {
    if (config.statusCodes.done.includes(status)) return { kind: 'done', response, state: String(status) };
    if (config.statusCodes.running.includes(status)) return { kind: 'running', state: String(status) };
    if (status >= 400) return rejected(response, config, 'poll_rejected');
    return { kind: 'running', state: String(status) };
  }
  if (status < 200 || status >= 300) return rejected(response, config, 'poll_rejected');
  const parsed = parseJsonBody(response.body, response.bodyEncoding);
  if (parsed === undefined) return { kind: 'backoff', reason: 'status answer is not JSON' };
  const verdict = classifyParsed(parsed, { statusPath: config.statusPath!, doneValues: config.doneValues!, failValues: config.failValues, errorPath: config.errorPath });
  if (verdict.kind === 'success') return { kind: 'done', response, state: verdict.state };
  if (verdict.kind === 'failure') return { kind: 'failed', response, state: verdict.state, error: { code: 'provider_failed', message: verdict.message } };
  return { kind: 'running', state: verdict.state };
}

/** Judges the answer of `resultUrlTemplate`: 2xx is the result, 4xx the provider's failure. */
export function judgeResultFetch(config: PollConfig, answer: OutboundResult): PollVerdict {
  if (!answer.ok) return unanswered(answer);
  const { response } = answer;
  if (transient(response.statusCode)) return { kind: 'backoff', reason: `result HTTP ${response.statusCode}`, retryAfterMs: parseRetryAfter(response.headers['retry-after']) };
  if (response.statusCode >= 200 && response.statusCode < 300) return { kind: 'done', response };
  return rejected(response, config, 'provider_failed');
}

/** The task's result out of the final answer: all of it, or the part at `resultPath`. */
export function resultOf(config: PollConfig, response: CapturedResponse): StoredResult {
  if (!config.resultPath) return response;
  const value = readPath(parseJsonBody(response.body, response.bodyEncoding), config.resultPath);
  const text = value === undefined ? '' : typeof value === 'string' ? value : JSON.stringify(value);
  const headers: Record<string, string> = typeof value === 'string' ? {} : { 'content-type': 'application/json' };
  return { statusCode: response.statusCode, headers, body: text, duration: response.duration };
}
