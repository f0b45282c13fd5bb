import { createHmac, hkdfSync, type KeyObject, createSecretKey, randomBytes } from 'node:crypto';
import type { DbOrTx } from '../db/client.ts';
import { replaceSetting, storeSettingOnce } from '../db/sql/settings.ts';
import { AppError } from '../errors.ts';
import { type Keyring, kidOf } from './keyring.ts';

/** The settings row that holds the server secret, sealed. */
export const SERVER_SECRET = 'server-secret';

/**
 * Keyed hashes under the server secret, for values the database must be able to match but a
 * dump must not let anyone test guesses against: unlike a plain SHA-256, an HMAC cannot be
 * brute-forced without the secret, and the secret is only in the database sealed with
 * RELAY_ENCRYPTION_KEY, which is kept out of it.
 */
export interface ServerHashes {
  /** How an API key is stored and looked up: `hmac:` + hex HMAC-SHA256. */
  apiKey(key: string): string;
  /** The fingerprint of an idempotent create (its canonical JSON), hex. */
  fingerprint(canonicalRequest: string): string;
  /** Why the secret could not be opened; the methods above then throw a 503 AppError. */
  readonly unavailable?: string;
}

/** One subkey per use, so that a value hashed for one purpose never matches another's. */
function subkey(secret: Buffer, purpose: string): KeyObject {
  return createSecretKey(Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), `asyncrelay ${purpose} v1`, 32)));
}

/** The hashes under a 32-byte server secret. */
export function serverHashes(secret: Buffer): ServerHashes {
  if (secret.length !== 32) throw new Error('the server secret must be 32 bytes');
  const apiKeys = subkey(secret, 'api-key');
  const fingerprints = subkey(secret, 'idempotency-fingerprint');
  return {
    apiKey: (key) => `hmac:${createHmac('sha256', apiKeys).update(key).digest('hex')}`,
    fingerprint: (canonical) => createHmac('sha256', fingerprints).update(canonical).digest('hex'),
  };
}

/**
 * Stand-in when the sealed secret cannot be opened (its key id was dropped from
 * RELAY_ENCRYPTION_KEY): the relay still boots and runs tasks; only what needs the secret (API
 * key checks, idempotent creates, `keys create`) fails, with this reason.
 */
export function unavailableHashes(reason: string): ServerHashes {
  const refuse = (): never => {
    throw new AppError('unavailable', 503, 'API keys cannot be checked right now: the server secret cannot be opened (see the relay log)', { retryable: true });
  };
  return { apiKey: refuse, fingerprint: refuse, unavailable: reason };
}

/**
 * Reads the server secret, creating it on first use: 32 random bytes, sealed with the keyring in
 * `settings`. Replicas (and a `keys create`) racing on an empty table are settled by the insert's
 * ON CONFLICT: one secret is stored, everyone reads that one. A secret sealed under an older key
 * id is re-sealed under the first (compare-and-set on the old blob, so racing replicas agree).
 */
export async function loadServerHashes(db: DbOrTx, keyring: Keyring): Promise<ServerHashes> {
  const row = await storeSettingOnce(db, SERVER_SECRET, keyring.seal(randomBytes(32).toString('base64')));
  let clear: string;
  try {
    clear = keyring.open(row.sealed);
  } catch (err) {
    return unavailableHashes(`the server secret (settings "${SERVER_SECRET}") cannot be opened: ${(err as Error).message}`);
  }
  if (kidOf(row.sealed) !== keyring.sealingKid) await replaceSetting(db, SERVER_SECRET, row.sealed, keyring.seal(clear));
  return serverHashes(Buffer.from(clear, 'base64'));
}
