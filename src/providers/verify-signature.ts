import { createHash, createPublicKey, type KeyObject, timingSafeEqual, verify } from 'node:crypto';
import { standardWebhookSignature } from '../delivery/sign.ts';
import type { Outbound } from '../outbound/http.ts';

/** Signed timestamps further than this from now are refused (Standard Webhooks and fal both use 5 min). */
const TOLERANCE_SECONDS = 300;
/** fal's JWKS is cached this long; an unknown key refreshes it sooner (at most once a minute). */
const JWKS_TTL_MS = 24 * 60 * 60 * 1000;
const JWKS_REFRESH_MS = 60 * 1000;

/** `retryLater`: not decidable yet (see providers/fal-request.ts); the caller answers 503. */
export type SignatureCheck = { ok: true } | { ok: false; reason: string; retryLater?: boolean };

const fresh = (timestamp: string | undefined, now: number): boolean =>
  timestamp !== undefined && /^\d+$/.test(timestamp) && Math.abs(now / 1000 - Number(timestamp)) <= TOLERANCE_SECONDS;

/**
 * Standard Webhooks (Replicate, OpenAI): base64 HMAC-SHA256 of `id.timestamp.body` keyed by the
 * base64 after `whsec_`, compared in constant time with each `v1,` entry of webhook-signature.
 */
export function verifyStandardWebhook(secret: string, headers: Record<string, string>, body: Uint8Array, now = Date.now()): SignatureCheck {
  const id = headers['webhook-id'];
  const timestamp = headers['webhook-timestamp'];
  const signatures = headers['webhook-signature'];
  if (!id || !timestamp || !signatures) return { ok: false, reason: 'missing webhook-id, webhook-timestamp or webhook-signature' };
  if (!fresh(timestamp, now)) return { ok: false, reason: 'webhook-timestamp outside the 5 minute tolerance' };
  const expected = standardWebhookSignature(secret, id, timestamp, body);
  for (const entry of signatures.split(' ')) {
    const [version, value] = entry.split(',', 2);
    if (version !== 'v1' || !value) continue;
    const given = Buffer.from(value, 'base64');
    if (given.length === expected.length && timingSafeEqual(given, expected)) return { ok: true };
  }
  return { ok: false, reason: 'no webhook-signature entry matches' };
}

interface CachedKeys {
  keys: KeyObject[];
  at: number;
}

/**
 * fal's Ed25519 webhook signatures: hex signature over
 * `request_id \n user_id \n timestamp \n hex(sha256(body))`, checked against every key of fal's
 * JWKS (fetched through the relay's outbound client, so the SSRF guard applies to it too).
 */
export interface FalVerifier {
  verify(headers: Record<string, string>, body: Uint8Array, now?: number): Promise<SignatureCheck>;
}

export function createFalVerifier(outbound: Outbound, jwksUrl: string): FalVerifier {
  let cached: CachedKeys | undefined;
  let loading: Promise<CachedKeys> | undefined;

  async function load(): Promise<CachedKeys> {
    const answer = await outbound.send({ url: jwksUrl, method: 'GET', headers: { accept: 'application/json' }, timeoutMs: 10_000 });
    if (!answer.ok || answer.response.statusCode !== 200) throw new Error(`fal JWKS fetch failed: ${answer.ok ? `HTTP ${answer.response.statusCode}` : answer.error.message}`);
    const { keys } = JSON.parse(answer.response.body) as { keys?: Array<{ kty?: string; crv?: string; x?: string }> };
    const usable = (keys ?? []).filter((k) => k.kty === 'OKP' && k.crv === 'Ed25519' && typeof k.x === 'string');
    return { keys: usable.map((k) => createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: k.x! }, format: 'jwk' })), at: Date.now() };
  }
  async function keys(refresh: boolean): Promise<KeyObject[]> {
    const stale = !cached || Date.now() - cached.at > (refresh ? JWKS_REFRESH_MS : JWKS_TTL_MS);
    if (stale) {
      loading ??= load().finally(() => (loading = undefined));
      cached = await loading;
    }
    return cached!.keys;
  }

  async function verifyFal(headers: Record<string, string>, body: Uint8Array, now = Date.now()): Promise<SignatureCheck> {
    const requestId = headers['x-fal-webhook-request-id'];
    const userId = headers['x-fal-webhook-user-id'];
    const timestamp = headers['x-fal-webhook-timestamp'];
    const signature = headers['x-fal-webhook-signature'];
    if (!requestId || !userId || !timestamp || !signature) return { ok: false, reason: 'missing X-Fal-Webhook-* headers' };
    if (!fresh(timestamp, now)) return { ok: false, reason: 'X-Fal-Webhook-Timestamp outside the 5 minute tolerance' };
    if (!/^[0-9a-f]+$/i.test(signature)) return { ok: false, reason: 'X-Fal-Webhook-Signature is not hex' };
    const message = Buffer.from(`${requestId}\n${userId}\n${timestamp}\n${createHash('sha256').update(body).digest('hex')}`);
    const signed = Buffer.from(signature, 'hex');
    for (const refresh of [false, true]) {
      let known: KeyObject[];
      try {
        known = await keys(refresh);
      } catch (err) {
        return { ok: false, reason: (err as Error).message };
      }
      if (known.some((key) => verify(null, message, key, signed))) return { ok: true };
    }
    return { ok: false, reason: 'no fal JWKS key verifies the signature' };
  }
  return { verify: verifyFal };
}
