import type { TaskRow } from '../../drizzle/schema.ts';
import { CALLBACK_PLACEHOLDER } from '../callbacks/token.ts';
import type { Keyring } from '../secrets/keyring.ts';
import { isSensitiveHeader } from '../outbound/header-rules.ts';
import { openRequest } from '../tasks/sealed-request.ts';
import type { PollConfig } from './poll-config.ts';
import { findPreset } from './preset.ts';

/** Headers for one provider call, and why the task's credentials were left out, when they were. */
export interface ProviderCallHeaders {
  headers: Record<string, string>;
  /** Set when forwardAuth had credentials to send but the URL's origin may not have them. */
  credentialsWithheld?: string;
}

const originOf = (url: string): string | undefined => (URL.canParse(url) ? new URL(url).origin : undefined);

/**
 * Where the task's credentials may go: the target's origin and the hosts its preset knows for the
 * provider. Poll, result and cancel URLs usually come from the provider's answer, and an answer
 * (or whoever controls the target's responses) must not be able to send the credentials elsewhere.
 */
function credentialOrigins(task: TaskRow): string[] {
  const target = originOf(task.targetUrl.replaceAll(CALLBACK_PLACEHOLDER, 'x'));
  const preset = task.provider ? findPreset(task.provider) : undefined;
  return [...(target ? [target] : []), ...(preset?.credentialOrigins ?? [])];
}

/**
 * Headers for a poll, result fetch or cancel call to `url`: with `forwardAuth`, the task's
 * credential headers (the ones views redact), opened from the sealed request at call time so
 * they never sit in clear, if `url` is on an origin they may go to; then the pollConfig's static
 * headers (e.g. `accept`, `X-Runway-Version`), which win on a name clash.
 */
export function providerCallHeaders(keyring: Keyring, task: TaskRow, config: PollConfig, url: string): ProviderCallHeaders {
  const headers: Record<string, string> = {};
  let credentialsWithheld: string | undefined;
  if (config.forwardAuth) {
    const credentials = Object.entries(openRequest(keyring, task.requestSealed).headers).filter(
      ([name, value]) => isSensitiveHeader(name) && !value.includes(CALLBACK_PLACEHOLDER),
    );
    const origin = originOf(url);
    if (origin !== undefined && credentialOrigins(task).includes(origin)) {
      for (const [name, value] of credentials) headers[name] = value;
    } else if (credentials.length > 0) {
      credentialsWithheld = `${origin ?? url.slice(0, 200)} is neither the target's origin nor a host of the task's provider`;
    }
  }
  for (const [name, value] of Object.entries(config.headers ?? {})) {
    for (const existing of Object.keys(headers)) if (existing.toLowerCase() === name.toLowerCase()) delete headers[existing];
    headers[name] = value;
  }
  return { headers, ...(credentialsWithheld && { credentialsWithheld }) };
}
