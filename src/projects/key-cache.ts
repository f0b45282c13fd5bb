import { and, eq, isNull } from 'drizzle-orm';
import { apiKeys } from '../../drizzle/schema.ts';
import type { Db } from '../db/client.ts';

/** A cached key is looked up again after this long. */
const TTL_MS = 60_000;
const MAX_ENTRIES = 10_000;

export interface KeyCache {
  /**
   * The project of an active key, by the key's SHA-256; undefined for an unknown or revoked key.
   * `cached: true` may answer from memory: only for callers that re-check the key themselves in
   * the statement that acts on it (task creation does), so a revocation still holds at once.
   */
  projectOf(keyHash: string, options?: { cached?: boolean }): Promise<string | undefined>;
}

/**
 * API keys are checked on every request. Task creation is the hot path: there the key is
 * re-checked inside the INSERT itself (the task's project_id comes from the active key row),
 * so it may trust this cache for the early 401 and save a round trip. Every other route reads
 * the key row. Unknown keys are never cached: guessing cannot fill memory.
 */
export function createKeyCache(db: Db): KeyCache {
  const cache = new Map<string, { projectId: string; at: number }>();
  return {
    async projectOf(keyHash, options = {}) {
      const hit = cache.get(keyHash);
      if (options.cached && hit && Date.now() - hit.at < TTL_MS) return hit.projectId;
      const [row] = await db
        .select({ projectId: apiKeys.projectId })
        .from(apiKeys)
        .where(and(eq(apiKeys.keyHash, keyHash), isNull(apiKeys.revokedAt)));
      if (!row) {
        cache.delete(keyHash);
        return undefined;
      }
      if (cache.size >= MAX_ENTRIES) cache.clear();
      cache.set(keyHash, { projectId: row.projectId, at: Date.now() });
      return row.projectId;
    },
  };
}
