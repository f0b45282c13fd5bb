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
