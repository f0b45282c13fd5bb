import { z } from 'zod';

/*
 * The header rules undici (the relay's only HTTP client) applies when a request is built
 * (undici 7, lib/core/request.js `processHeader` and lib/core/util.js), checked when a task is
 * created instead: a header undici refuses fails every dispatch attempt with an error that looks
 * like a network failure and is retried, when it should have been a 400 at the door.
 */

/** RFC 9110 token: undici's `isValidHTTPToken`, for names and for the members of `connection`. */
export const HEADER_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Field value characters undici accepts (its `headerCharRegex`, lifted from Node's http): HTAB,
 * visible ASCII and space, and the Latin-1 range 0x80–0xFF. So no CR, LF, NUL, other C0 controls
 * or DEL, and no character above U+00FF (which includes every unpaired surrogate).
 */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Names the relay sets from the request itself. undici refuses `transfer-encoding`,
 * `keep-alive`, `upgrade` and `expect` outright, and a `content-length` that does not match the
 * body (which the relay templates, so no client can know its length); `host` it would send, but
 * the Host is the target URL's, not a second choice of the client (a mismatch with the URL and
 * TLS name, kept across redirects to other origins).
 */
const SET_BY_THE_RELAY = new Set(['host', 'content-length', 'transfer-encoding', 'keep-alive', 'upgrade', 'expect']);

/** Why a header value cannot be sent, or undefined. */
export function headerValueRefusal(value: string): string | undefined {
  // Said first and on its own: CR/LF is how a header smuggles another.
  if (/[\r\n\0]/.test(value)) return 'must not contain CR, LF or NUL';
  if (!FIELD_VALUE.test(value)) return 'must hold only visible ASCII, Latin-1, spaces and tabs (no control characters, nothing above U+00FF)';
  return undefined;
}

/** Why a header (name and value, as the client gave them) cannot be sent, or undefined. */
export function headerRefusal(name: string, value: string): string | undefined {
  const lower = name.toLowerCase();
  if (SET_BY_THE_RELAY.has(lower)) return 'is set by the relay from the URL and the body, not by a task';
  // undici checks each comma-separated member of `connection` as a token.
  if (lower === 'connection' && !value.toLowerCase().split(',').every((member) => HEADER_TOKEN.test(member.trim()))) {
    return 'must be a comma-separated list of header names (tokens)';
  }
  return undefined;
}

/** A header name as undici sends it. */
export const HeaderName = z.string().max(256).regex(HEADER_TOKEN, 'must be a valid HTTP header name');

/** A header value as undici sends it, at most `max` characters. */
export const HeaderValue = (max: number) =>
  z
    .string()
    .max(max)
    .superRefine((value, ctx) => {
      const why = headerValueRefusal(value);
      if (why) ctx.addIssue({ code: 'custom', message: why });
    });

/** A refinement of a header record: per name, what undici would refuse or the relay sets itself. */
export function sendableHeaders(headers: Record<string, string>, ctx: z.RefinementCtx): void {
  for (const [name, value] of Object.entries(headers)) {
    const why = headerRefusal(name, value);
    if (why) ctx.addIssue({ code: 'custom', path: [name], message: why });
  }
}

/**
 * Header names whose values are credentials. Views and logs show "[redacted]" instead of the value
 * (tasks/redact.ts); the real value lives only inside the sealed request blob, and a redirect to
 * another origin does not carry it (outbound/http.ts).
 */
const SENSITIVE = /authorization|cookie|key|token|secret|password|passwd|signature|credential|session|auth/i;

export function isSensitiveHeader(name: string): boolean {
  return SENSITIVE.test(name);
}
