import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { ErrorCode } from '../errors.ts';

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** The problem+json document of {@link problem}. */
export function problemBody(status: number, code: ErrorCode, detail: string, requestId: string): string {
  return JSON.stringify({ type: `urn:asyncrelay:problem:${code}`, title: TITLES[status] ?? 'Error', status, detail, code, error: detail, requestId });
}

/**
 * An RFC 9457 problem+json answer that also carries AsyncQueue's `error` string, so clients
 * written for either read it.
 */
export function problem(c: Context, status: ContentfulStatusCode, code: ErrorCode, detail: string): Response {
  const body = problemBody(status, code, detail, (c.get('requestId') as string | undefined) ?? '');
  return c.body(body, status, { 'content-type': 'application/problem+json' });
}

/** A 429 problem with Retry-After (and any extra headers). */
export function tooMany(c: Context, retryAfterSeconds: number, detail: string, extra: Record<string, string> = {}): Response {
  const requestId = (c.get('requestId') as string | undefined) ?? '';
  // A Response of its own (middleware answers with it before any route ran): hono's context
  // headers (X-Request-Id) are not carried over, so they are set here.
  return new Response(problemBody(429, 'rate_limited', detail, requestId), {
    status: 429,
    headers: { 'content-type': 'application/problem+json', 'retry-after': String(retryAfterSeconds), ...(requestId && { 'x-request-id': requestId }), ...extra },
  });
}
