import { and, desc, eq, inArray, isNull, or, sql } from 'drizzle-orm';
import { apiKeys } from '../../../drizzle/schema.ts';
import type { DbOrTx } from '../client.ts';

/*
 * The `api_keys` table: minting and storing keys, finding the active key a request presents,
 * listing, revoking and counting them, and upgrading rows stored as a legacy SHA-256 to the HMAC.
 * Hashing and the choice of hashes to look for are the caller's (projects/api-keys.ts); these
 * statements only match the hashes they are given. Task creation re-checks the key inside its own
 * INSERT, which lives with the task statements.
 */

/** A key row as written: the id and the hash are chosen by the caller. */
export type NewApiKey = Pick<typeof apiKeys.$inferInsert, 'id' | 'projectId' | 'name' | 'keyHash' | 'prefix'>;

/**
 * Replaces a legacy hash by the HMAC. Skipped if an HMAC row exists already, so the unique hash
 * never collides. Returns whether a row was upgraded.
 */
export async function replaceLegacyKeyHash(db: DbOrTx, legacyHash: string, hmac: string, prefix: string): Promise<boolean> {
  const rows = await db
    .update(apiKeys)
    .set({ keyHash: hmac, prefix })
    .where(and(eq(apiKeys.keyHash, legacyHash), sql`not exists (select 1 from api_keys where key_hash = ${hmac})`))
    .returning({ id: apiKeys.id });
  return rows.length > 0;
}

/** Stores a key; one whose hash is stored already is left as it is. */
export async function insertApiKeyUnlessStored(db: DbOrTx, row: NewApiKey): Promise<void> {
  await db.insert(apiKeys).values(row).onConflictDoNothing({ target: apiKeys.keyHash });
}

/** Stores a freshly minted key. */
export async function insertApiKey(db: DbOrTx, row: NewApiKey): Promise<void> {
  await db.insert(apiKeys).values(row);
}

/**
 * The unrevoked key stored under any of `hashes` (its HMAC and its legacy SHA-256: one query
 * either way), with the hash it matched under.
 */
export async function findActiveKeyByHashes(db: DbOrTx, hashes: string[]): Promise<{ projectId: string; keyHash: string } | undefined> {
  const [row] = await db
    .select({ projectId: apiKeys.projectId, keyHash: apiKeys.keyHash })
    .from(apiKeys)
    .where(and(inArray(apiKeys.keyHash, hashes), isNull(apiKeys.revokedAt)));
  return row;
}

/** Every key, revoked ones included, newest first; never a hash. */
export async function listApiKeysNewestFirst(db: DbOrTx) {
  return db.select({ id: apiKeys.id, projectId: apiKeys.projectId, name: apiKeys.name, prefix: apiKeys.prefix, createdAt: apiKeys.createdAt, revokedAt: apiKeys.revokedAt }).from(apiKeys).orderBy(desc(apiKeys.createdAt));
}

/** Ids of the unrevoked keys whose id or prefix is `ref`, or whose hash is one of `hashes`. */
export async function findActiveKeyIdsByRef(db: DbOrTx, ref: string, hashes: string[]): Promise<string[]> {
  const match = or(eq(apiKeys.id, ref), eq(apiKeys.prefix, ref), inArray(apiKeys.keyHash, hashes));
  const rows = await db.select({ id: apiKeys.id }).from(apiKeys).where(and(match, isNull(apiKeys.revokedAt)));
  return rows.map((r) => r.id);
}

/** Revokes the key if it is still active; the ids revoked (none if it was revoked meanwhile). */
export async function revokeActiveKey(db: DbOrTx, id: string): Promise<string[]> {
  const rows = await db
    .update(apiKeys)
    .set({ revokedAt: sql`now()` })
    .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)))
    .returning({ id: apiKeys.id });
  return rows.map((r) => r.id);
}

export async function countActiveKeys(db: DbOrTx): Promise<number> {
  const [row] = await db.select({ n: sql<number>`count(*)::int` }).from(apiKeys).where(isNull(apiKeys.revokedAt));
  return row.n;
}
