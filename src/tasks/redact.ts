/**
 * Header names whose values are credentials. Views and logs show "[redacted]" instead of the value;
 * the real value lives only inside the sealed request blob.
 */
const SENSITIVE = /authorization|cookie|key|token|secret|password|passwd|signature|credential|session|auth/i;

export const REDACTED = '[redacted]';

export function isSensitiveHeader(name: string): boolean {
  return SENSITIVE.test(name);
}

/** A copy of `headers` with every sensitive value replaced by "[redacted]". */
export function redactHeaders(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) out[name] = isSensitiveHeader(name) ? REDACTED : value;
  return out;
}

/**
 * A target URL as views show it: userinfo and the values of sensitive query parameters
 * (`?api_key=…`, `?token=…`, presigned `X-Amz-Signature=…`) replaced by "[redacted]".
 * Textual, not URL-parsed: the template may hold `{asyncqueue_callback_url}`, which URL
 * serialisation would percent-encode in a path. Values holding the placeholder are kept.
 * When the result differs from the input, the real URL travels inside the sealed request.
 */
export function redactUrl(url: string): string {
  const withoutUserinfo = url.replace(/^(https?:\/\/)[^/?#]*@/i, `$1${REDACTED}@`);
  const queryAt = withoutUserinfo.indexOf('?');
  if (queryAt === -1) return withoutUserinfo;
  const hashAt = withoutUserinfo.indexOf('#', queryAt);
  const end = hashAt === -1 ? withoutUserinfo.length : hashAt;
  const query = withoutUserinfo
    .slice(queryAt + 1, end)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq === -1) return pair;
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let decoded = name;
      try {
        decoded = decodeURIComponent(name.replaceAll('+', ' '));
      } catch { /* malformed escapes: judge the raw name */ }
      return isSensitiveHeader(decoded) && value !== '' && !value.includes('{asyncqueue_callback_url}') ? `${name}=${REDACTED}` : pair;
    })
    .join('&');
  return `${withoutUserinfo.slice(0, queryAt + 1)}${query}${withoutUserinfo.slice(end)}`;
}
