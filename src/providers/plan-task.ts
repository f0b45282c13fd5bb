import { CALLBACK_PLACEHOLDER } from '../callbacks/token.ts';
import { invalid } from '../errors.ts';
import type { CreateTaskInput } from '../tasks/schemas.ts';
import { mentionsPlaceholder } from '../tasks/template.ts';
import type { CallbackRules } from './callback-rules.ts';
import { completePollConfig, type PollConfig } from './poll-config.ts';
import { findPreset, PRESETS } from './preset.ts';
import type { ProviderPreset } from './provider-preset.ts';

/** What a task's provider options come to, decided once at creation. */
export interface ProviderPlan {
  /** The input with the callback URL placed where the preset wants it (unless the task placed it). */
  input: CreateTaskInput;
  pollConfig: PollConfig | null;
  callbackRules: CallbackRules | null;
  /** The standard-webhooks secret, to be sealed with the request. */
  callbackSecret?: string;
  /** The task waits for a callback (so a token is minted). */
  waits: boolean;
}

const bodyText = (body: unknown) => (body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body));

function placesCallback(input: CreateTaskInput): boolean {
  return mentionsPlaceholder({ targetUrl: input.targetUrl, headers: input.headers, body: bodyText(input.body) });
}

/** Puts `{asyncqueue_callback_url}` where the preset's provider expects its callback URL. */
function placeCallback(input: CreateTaskInput, placement: { in: 'query' | 'body'; name: string }): CreateTaskInput {
  if (placesCallback(input)) return input;
  if (placement.in === 'query') {
    const url = new URL(input.targetUrl);
    if (url.searchParams.has(placement.name)) return input;
    const separator = input.targetUrl.includes('?') ? '&' : '?';
    return { ...input, targetUrl: `${input.targetUrl}${separator}${placement.name}=${CALLBACK_PLACEHOLDER}` };
  }
  const parsed = typeof input.body === 'string' ? tryJson(input.body) : input.body;
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return input; // nowhere to put it: the fallback poll finishes the task
  const body = { ...(parsed as Record<string, unknown>), [placement.name]: CALLBACK_PLACEHOLDER };
  return { ...input, body: typeof input.body === 'string' ? JSON.stringify(body) : body };
}

function tryJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Resolves `provider`, `pollConfig`, `callbackConfig` and `callbackSignature` into what the task
 * stores. Everything that cannot work is a 400 here, not a failure later.
 */
export function planProviderTask(input: CreateTaskInput): ProviderPlan {
  let preset: ProviderPreset | undefined;
  if (input.provider !== undefined) {
    preset = findPreset(input.provider);
    if (!preset) throw invalid(`Unknown provider "${input.provider}": known presets are ${PRESETS.map((p) => p.id).join(', ')} (GET /v1/providers)`);
  }
  const planned = preset?.callback ? placeCallback(input, preset.callback.placement) : input;

  let pollConfig: PollConfig | null = null;
  if (preset || input.pollConfig) {
    const complete = completePollConfig({ ...preset?.poll, ...input.pollConfig });
    if (!complete.ok) throw invalid(complete.message);
    pollConfig = complete.config;
  }

  const classify = input.callbackConfig ?? preset?.callback?.classify;
  const signature = input.callbackSignature;
  if (signature?.scheme === 'fal' && preset?.id !== 'fal') {
    // fal's key signs every account's webhooks: only the request id of this task's submit answer,
    // which the preset records, tells this task's webhook from a stranger's.
    throw invalid('callbackSignature fal needs "provider": "fal" (the preset records the request id its webhooks must carry)');
  }
  const callbackRules: CallbackRules | null = classify || signature ? { ...(classify && { classify }), ...(signature && { signature: signature.scheme }) } : null;
  const waits = input.waitForSignal || Boolean(preset?.callback) || placesCallback(planned);
  if ((input.callbackConfig || signature) && !waits) {
    throw invalid('callbackConfig/callbackSignature need a task that waits for a callback (waitForSignal, the placeholder, or a callback preset)');
  }
  return {
    input: planned,
    pollConfig,
    callbackRules,
    callbackSecret: signature?.scheme === 'standard-webhooks' ? signature.secret : undefined,
    waits,
  };
}
