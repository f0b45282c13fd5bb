import { createHash } from 'node:crypto';
import { takeRandomBytes } from '../secrets/random.ts';

/** A callback token: 32 random bytes as 64 lowercase hex (DESIGN §5). */
export function mintCallbackToken(): string {
  return takeRandomBytes(32).toString('hex');
}

/** Tokens and API keys are stored and looked up only as their SHA-256. */
export function sha256Hex(value: string | Uint8Array): string {
  return createHash('sha256').update(value).digest('hex');
}

const TOKEN_SHAPE = /^[0-9a-f]{64}$/;

/** A callback id that cannot be a token is rejected without touching the database. */
export function isCallbackTokenShape(value: string): boolean {
  return TOKEN_SHAPE.test(value);
}

export const CALLBACK_PLACEHOLDER = '{asyncqueue_callback_url}';

/** `<publicUrl>/v1/callbacks/<token>`. */
export function callbackUrlFor(publicUrl: string, token: string): string {
  return `${publicUrl}/v1/callbacks/${token}`;
}
