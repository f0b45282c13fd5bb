import { isSensitiveHeader } from '../outbound/header-rules.ts';
/**
 * URL parameter names that are credentials although no header would be called so: Azure SAS
 * `sig`, `pwd`/`pass`/`pw`, bare `jwt`/`hmac`.
 */
const SENSITIVE_PARAM = /^(sig|pwd|pass|pw|passphrase|jwt|hmac)$/i;

export const REDACTED = '[redacted]';

/** A copy of `headers` with every sensitive value replaced by "[redacted]". */
export function redactHeaders(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) out[name] = isSensitiveHeader(name) ? REDACTED : value;
  return out;
}

function isSensitiveParam(rawName: string): boolean {
  let name = rawName;
  try {
    name = decodeURIComponent(rawName.replaceAll('+', ' '));
  } catch { /* malformed escapes: judge the raw name */ }
  return isSensitiveHeader(name) || SENSITIVE_PARAM.test(name.trim());
}

/**
 * `name=value` pairs split on `&` and `;` (servers that take `;` as a separator, matrix
 * parameters): the value of each sensitive name becomes "[redacted]". A value holding the
 * callback placeholder is ours, not a secret, and stays so the view is the template.
 */
function redactParams(text: string, separators: RegExp): string {
  return text
    .split(separators)
    .map((part, i) => {
      if (i % 2 === 1) return part; // a separator, kept by the capturing split
      const eq = part.indexOf('=');
      if (eq === -1) return part;
      const value = part.slice(eq + 1);
      return value !== '' && !value.includes('{asyncqueue_callback_url}') && isSensitiveParam(part.slice(0, eq)) ? `${part.slice(0, eq + 1)}${REDACTED}` : part;
    })
    .join('');
}

/** scheme://, authority, path, ?query, #fragment of a serialised URL. */
const PARTS = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)([^?#]*)(\?[^#]*)?(#[\s\S]*)?$/i;

/**
 * A URL as views show it: userinfo and the values of sensitive parameters (`?api_key=…`,
 * `?token=…`, presigned `X-Amz-Signature=…`, Azure `sig=…`, `;jsessionid=…` path parameters, an
 * OAuth `#access_token=…`) replaced by "[redacted]".
 *
 * `url` must be canonical (tasks/url-template.ts `canonicalUrl`): in the WHATWG serialisation
 * the authority ends at the first `/`, and an `@` in it can only be the userinfo separator (the
 * parser percent-encodes any other), so this textual pass reads the URL exactly as it is sent.
 * It stays textual, not a re-serialisation, because the template may hold
 * `{asyncqueue_callback_url}`, which serialisation would percent-encode in a path.
 * When the result differs from the input, the real URL travels inside the sealed request.
 */
export function redactUrl(url: string): string {
  const parts = PARTS.exec(url);
  // Not canonical: show nothing of it rather than guess where its credentials are.
  if (!parts) return REDACTED;
  const [, scheme, authority, path, query = '', fragment = ''] = parts;
  const at = authority.lastIndexOf('@');
  return [
    scheme,
    at === -1 ? authority : `${REDACTED}@${authority.slice(at + 1)}`,
    path.split('/').map((segment) => redactParams(segment, /(;)/)).join('/'),
    query && `?${redactParams(query.slice(1), /([&;])/)}`,
    fragment && `#${redactParams(fragment.slice(1), /([&;])/)}`,
  ].join('');
}
