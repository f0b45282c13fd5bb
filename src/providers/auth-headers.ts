import type { TaskRow } from '../../drizzle/schema.ts';
import { CALLBACK_PLACEHOLDER } from '../callbacks/token.ts';
import type { Keyring } from '../secrets/keyring.ts';
import { isSensitiveHeader } from '../tasks/redact.ts';
import { openRequest } from '../tasks/sealed-request.ts';
import type { PollConfig } from './poll-config.ts';

/**
 * Headers for a poll or cancel call: with `forwardAuth`, the task's credential headers (the ones
 * views redact), opened from the sealed request at call time so they never sit in clear; then the
 * pollConfig's static headers (e.g. `accept`, `X-Runway-Version`), which win on a name clash.
 */
export function providerCallHeaders(keyring: Keyring, task: TaskRow, config: PollConfig): Record<string, string> {
  const out: Record<string, string> = {};
  if (config.forwardAuth) {
    for (const [name, value] of Object.entries(openRequest(keyring, task.requestSealed).headers)) {
      if (isSensitiveHeader(name) && !value.includes(CALLBACK_PLACEHOLDER)) out[name] = value;
    }
  }
  for (const [name, value] of Object.entries(config.headers ?? {})) {
    for (const existing of Object.keys(out)) if (existing.toLowerCase() === name.toLowerCase()) delete out[existing];
    out[name] = value;
  }
  return out;
}
