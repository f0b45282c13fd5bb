import { customAlphabet } from 'nanoid';
import { sha256Hex } from '../callbacks/token.ts';
import type { DbOrTx } from '../db/client.ts';
import {
  findActiveKeyByHashes,
  findActiveKeyIdsByRef,
  insertApiKey,
  insertApiKeyUnlessStored,
  listApiKeysNewestFirst,
  replaceLegacyKeyHash,
  revokeActiveKey,
} from '../db/sql/api-keys.ts';
import { projectExists } from '../db/sql/projects.ts';
import type { ServerHashes } from '../secrets/server-secret.ts';

// Alphanumeric only: a key survives copy-paste, shells and URLs unescaped. 40 chars ≈ 238 bits.
const keyBody = customAlphabet('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', 40);
const keyId = customAlphabet('0123456789abcdefghijklmnopqrstuvwxyz', 16);

/** Characters of a key kept in clear: `ar_` + 4 random ones for a minted key. */
export const PREFIX_LENGTH = 7;

/**
 * The first characters of a key, enough to recognise it in `keys list`, far too few to use it:
 * RELAY_API_KEYS are at least 32 characters, so at least 25 stay unknown, and the stored hash is
 * an HMAC that cannot be tested offline anyway.
 */
export function keyPrefix(key: string): string {
  return key.slice(0, PREFIX_LENGTH);
}

/** How keys were stored before the server secret existed; such rows are upgraded on first use. */
export function legacyKeyHash(key: string): string {
  return sha256Hex(key);
}

/**
 * Replaces a key's legacy SHA-256 row by its HMAC (the clear key is in hand: boot, or a request
 * that just presented it). Skipped if an HMAC row exists already, so the unique hash never
 * collides. Returns whether a row was upgraded.
 */
export async function upgradeLegacyKey(db: DbOrTx, hashes: ServerHashes, key: string): Promise<boolean> {
  const hmac = hashes.apiKey(key);
  return replaceLegacyKeyHash(db, legacyKeyHash(key), hmac, keyPrefix(key));
}

/** Stores the hash of an existing key (RELAY_API_KEYS); a key already stored is left as is (a legacy row is upgraded). */
export async function storeApiKey(db: DbOrTx, hashes: ServerHashes, projectId: string, name: string, key: string): Promise<void> {
  await upgradeLegacyKey(db, hashes, key);
  await insertApiKeyUnlessStored(db, { id: `key_${keyId()}`, projectId, name, keyHash: hashes.apiKey(key), prefix: keyPrefix(key) });
}

/** Mints a new key. The clear key is returned once and never stored. */
export async function createApiKey(db: DbOrTx, hashes: ServerHashes, projectId: string, name: string): Promise<{ id: string; key: string }> {
  if (!(await projectExists(db, projectId))) throw new Error(`No project "${projectId}"`);
  const key = `ar_${keyBody()}`;
  const id = `key_${keyId()}`;
  await insertApiKey(db, { id, projectId, name, keyHash: hashes.apiKey(key), prefix: keyPrefix(key) });
  return { id, key };
}

/** An active key as the API sees it: its project, and the hash its row is stored under. */
export interface ActiveKey {
  projectId: string;
  keyHash: string;
}

/**
 * Finds the active key a request presents, by its HMAC or, for rows not yet upgraded, its legacy
 * SHA-256 (one query either way). A legacy match is upgraded to the HMAC on the spot; if that
 * fails the key still works under its legacy hash and is upgraded on a later use.
 */
export async function findActiveKey(db: DbOrTx, hashes: ServerHashes, key: string): Promise<ActiveKey | undefined> {
  const hmac = hashes.apiKey(key);
  const legacy = legacyKeyHash(key);
  const row = await findActiveKeyByHashes(db, [hmac, legacy]);
  if (!row) return undefined;
  if (row.keyHash === legacy && (await upgradeLegacyKey(db, hashes, key).catch(() => false))) return { projectId: row.projectId, keyHash: hmac };
  return row;
}

export async function listApiKeys(db: DbOrTx) {
  return listApiKeysNewestFirst(db);
}

/**
 * Revokes active keys named by their id (`key_…`), their listed prefix, or the full key itself.
 * A prefix shared by several active keys revokes none: the operator must say which.
 * Returns the ids revoked. Every route re-reads the key row except task creation, which re-checks
 * it inside its INSERT (and its idempotent replay inside its lock), so the key is refused at once
 * by every replica. Without the server secret (`hashes.unavailable`) a full key is matched only
 * against legacy rows; ids and prefixes work regardless.
 */
export async function revokeApiKey(db: DbOrTx, hashes: ServerHashes, ref: string): Promise<{ revoked: string[]; ambiguous?: number }> {
  const byHash = [legacyKeyHash(ref), ...(hashes.unavailable ? [] : [hashes.apiKey(ref)])];
  const candidates = await findActiveKeyIdsByRef(db, ref, byHash);
  if (candidates.length > 1) return { revoked: [], ambiguous: candidates.length };
  if (candidates.length === 0) return { revoked: [] };
  return { revoked: await revokeActiveKey(db, candidates[0]) };
}
