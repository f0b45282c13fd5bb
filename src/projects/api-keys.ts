import { and, desc, eq, isNull, or, sql } from 'drizzle-orm';
import { customAlphabet } from 'nanoid';
import { apiKeys, projects } from '../../drizzle/schema.ts';
import { sha256Hex } from '../callbacks/token.ts';
import type { DbOrTx } from '../db/client.ts';

// Alphanumeric only: a key survives copy-paste, shells and URLs unescaped. 40 chars ≈ 238 bits.
const keyBody = customAlphabet('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', 40);
const keyId = customAlphabet('0123456789abcdefghijklmnopqrstuvwxyz', 16);

/** The first characters of a key, enough to recognise it in a list, far too few to use it. */
export function keyPrefix(key: string): string {
  return key.slice(0, 10);
}

/** Stores the hash of an existing key (RELAY_API_KEYS); a key already stored is left as is. */
export async function storeApiKey(db: DbOrTx, projectId: string, name: string, key: string): Promise<void> {
  await db
    .insert(apiKeys)
    .values({ id: `key_${keyId()}`, projectId, name, keyHash: sha256Hex(key), prefix: keyPrefix(key) })
    .onConflictDoNothing({ target: apiKeys.keyHash });
}

/** Mints a new key. The clear key is returned once and never stored. */
export async function createApiKey(db: DbOrTx, projectId: string, name: string): Promise<{ id: string; key: string }> {
  const [project] = await db.select({ id: projects.id }).from(projects).where(eq(projects.id, projectId));
  if (!project) throw new Error(`No project "${projectId}"`);
  const key = `ar_${keyBody()}`;
  const id = `key_${keyId()}`;
  await db.insert(apiKeys).values({ id, projectId, name, keyHash: sha256Hex(key), prefix: keyPrefix(key) });
  return { id, key };
}

export async function listApiKeys(db: DbOrTx) {
  return db.select({ id: apiKeys.id, projectId: apiKeys.projectId, name: apiKeys.name, prefix: apiKeys.prefix, createdAt: apiKeys.createdAt, revokedAt: apiKeys.revokedAt }).from(apiKeys).orderBy(desc(apiKeys.createdAt));
}

/**
 * Revokes active keys named by their id (`key_…`), their listed prefix, or the full key itself.
 * A prefix shared by several active keys revokes none: the operator must say which.
 * Returns the ids revoked. Every route re-reads the key row except task creation, which re-checks
 * it inside its INSERT (see the key cache), so the key is refused at once by every replica.
 */
export async function revokeApiKey(db: DbOrTx, ref: string): Promise<{ revoked: string[]; ambiguous?: number }> {
  const match = or(eq(apiKeys.id, ref), eq(apiKeys.prefix, ref), eq(apiKeys.keyHash, sha256Hex(ref)));
  const candidates = await db.select({ id: apiKeys.id }).from(apiKeys).where(and(match, isNull(apiKeys.revokedAt)));
  if (candidates.length > 1) return { revoked: [], ambiguous: candidates.length };
  if (candidates.length === 0) return { revoked: [] };
  const rows = await db
    .update(apiKeys)
    .set({ revokedAt: sql`now()` })
    .where(and(eq(apiKeys.id, candidates[0].id), isNull(apiKeys.revokedAt)))
    .returning({ id: apiKeys.id });
  return { revoked: rows.map((r) => r.id) };
}

export async function countActiveKeys(db: DbOrTx): Promise<number> {
  const [row] = await db.select({ n: sql<number>`count(*)::int` }).from(apiKeys).where(isNull(apiKeys.revokedAt));
  return row.n;
}
