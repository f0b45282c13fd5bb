import { createHmac, randomBytes } from 'node:crypto';

/** A new project signing secret in Standard Webhooks form: `whsec_` + base64 of 24 random bytes. */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

/** The HMAC key of a `whsec_` secret is the base64 payload after the prefix (Standard Webhooks). */
function standardKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret, 'base64');
}

/** Standard Webhooks' signature of one message: HMAC-SHA256(key, "id.timestamp.body"), raw bytes. */
export function standardWebhookSignature(secret: string, msgId: string, timestamp: number | string, body: string | Uint8Array): Buffer {
  return createHmac('sha256', standardKey(secret)).update(`${msgId}.${timestamp}.`).update(body).digest();
}

export interface SignInput {
  secret: string;
  /** `webhook-id`: stable across retries so receivers can deduplicate. */
  msgId: string;
  /** Unix seconds of this attempt. */
  timestamp: number;
  body: string;
}

/**
 * Headers that sign one delivery attempt:
 * - Standard Webhooks: `webhook-signature: v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>`;
 * - AsyncQueue's `X-AsyncQueue-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>`, keyed by
 *   the whole `whsec_…` string, so a receiver in any language needs nothing but the secret as shown.
 */
export function signWebhook(input: SignInput): Record<string, string> {
  const { secret, msgId, timestamp, body } = input;
  const standard = standardWebhookSignature(secret, msgId, timestamp, body).toString('base64');
  const legacy = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  return {
    'webhook-id': msgId,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': `v1,${standard}`,
    'x-asyncqueue-signature': `t=${timestamp},v1=${legacy}`,
  };
}
