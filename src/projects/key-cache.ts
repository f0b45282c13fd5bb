import type { Db } from '../db/client.ts';
import type { ServerHashes } from '../secrets/server-secret.ts';
import { type ActiveKey, findActiveKey } from './api-keys.ts';

/** A key found active is trusted from memory this long, by task creation only (see below). */
const TTL_MS = 60_000;
/**
 * A key found unknown or revoked is answered 401 from memory this long without a query. This is
 * the bound on how late a key can start to work on a replica that refused it just before it was
 * stored (e.g. a RELAY_API_KEYS entry another replica is still booting with): a few seconds.
 */
export const UNKNOWN_KEY_TTL_MS = 5_000;
/** Entries per map; past it the oldest goes, so a flood of random keys costs bounded memory. */
const MAX_ENTRIES = 10_000;

export interface KeyCache {
  /**
   * The project and stored hash of an active key; undefined for an unknown or revoked key.
   * `cached: true` may answer from memory: only for callers that re-check the key themselves in
   * the statement that acts on it (task creation does), so a revocation still holds at once.
   */
  resolve(key: string, options?: { cached?: boolean }): Promise<ActiveKey | undefined>;
  /** Whether this key was found active here within the last minute (no query). */
  recentlyActive(key: string): boolean;
}

/** Map insertion order is age order: evicting the first entry evicts the oldest. */
function remember<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  if (map.size >= MAX_ENTRIES) map.delete(map.keys().next().value!);
  map.set(key, value);
}

/**
 * API keys are checked on every request. Task creation is the hot path: there the key is
 * re-checked inside the INSERT itself (the task's project_id comes from the active key row) and
 * inside the lock of an idempotent replay, so it may trust this cache for the early check and
 * save a round trip. Every other route reads the key row. Unknown keys are remembered briefly
 * (UNKNOWN_KEY_TTL_MS), so a client retrying a wrong or revoked key does not cost a query per
 * request; both maps are bounded, so guessing cannot fill memory.
 */
export function createKeyCache(db: Db, hashes: ServerHashes): KeyCache {
  const active = new Map<string, ActiveKey & { at: number }>();
  const unknown = new Map<string, number>();
  return {
    async resolve(key, options = {}) {
      const hmac = hashes.apiKey(key);
      const now = Date.now();
      const hit = active.get(hmac);
      if (options.cached && hit && now - hit.at < TTL_MS) return { projectId: hit.projectId, keyHash: hit.keyHash };
      const refusedAt = unknown.get(hmac);
      if (refusedAt !== undefined && now - refusedAt < UNKNOWN_KEY_TTL_MS) return undefined;
      const found = await findActiveKey(db, hashes, key);
      if (!found) {
        active.delete(hmac);
        remember(unknown, hmac, Date.now());
        return undefined;
      }
      unknown.delete(hmac);
      remember(active, hmac, { ...found, at: Date.now() });
      return found;
    },
    recentlyActive(key) {
      const hit = active.get(hashes.apiKey(key));
      return hit !== undefined && Date.now() - hit.at < TTL_MS;
    },
  };
}
