import { and, eq, isNull } from 'drizzle-orm';
import type postgres from 'postgres';
import { apiKeys } from '../../drizzle/schema.ts';
import type { Db } from '../db/client.ts';

/** The channel the `api_keys_notify` trigger (migrations/0002) sends a changed key's hash on. */
const CHANNEL = 'relay_api_keys';
/** Even without a notification (a dropped LISTEN connection), a cached key is re-checked this often. */
const TTL_MS = 30_000;
const MAX_ENTRIES = 10_000;

export interface KeyCache {
  /** The project of an active key, by the key's SHA-256; undefined for an unknown or revoked key. */
  projectOf(keyHash: string): Promise<string | undefined>;
  close(): Promise<void>;
}

/**
 * API keys are checked on every request; looking each one up costs a database round trip,
 * which on a busy relay is a good share of a create's cost. Active keys are cached per process
 * and dropped as soon as any replica revokes or deletes them (LISTEN/NOTIFY from a trigger), so
 * revocation still takes effect at once. Unknown keys are never cached: guessing cannot fill memory.
 */
export async function createKeyCache(db: Db, sql: postgres.Sql): Promise<KeyCache> {
  const cache = new Map<string, { projectId: string; at: number }>();
  const listener = await sql.listen(
    CHANNEL,
    (keyHash) => cache.delete(keyHash),
    // (Re)connected: whatever was revoked while we were not listening is unknown, so start over.
    () => cache.clear(),
  );
  return {
    async projectOf(keyHash) {
      const hit = cache.get(keyHash);
      if (hit && Date.now() - hit.at < TTL_MS) return hit.projectId;
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
    async close() {
      await listener.unlisten();
      cache.clear();
    },
  };
}
