import { and, eq, sql } from 'drizzle-orm';
import { settings } from '../../../drizzle/schema.ts';
import type { DbOrTx } from '../client.ts';

/*
 * The `settings` table: server-wide values kept sealed, one row per name (the server secret is
 * the one today). A value is stored once, by whoever comes first, and re-sealed in place by
 * compare-and-set. Sealing and opening are the caller's (secrets/server-secret.ts).
 */

/**
 * Stores `sealed` under `name` unless a value is stored already, then reads the stored one:
 * replicas (and a `keys create`) racing on an empty table are settled by the insert's ON
 * CONFLICT, so one value is stored and everyone reads that one.
 */
export async function storeSettingOnce(db: DbOrTx, name: string, sealed: string): Promise<{ sealed: string }> {
  await db.insert(settings).values({ name, sealedValue: sealed }).onConflictDoNothing({ target: settings.name });
  const [row] = await db.select({ sealed: settings.sealedValue }).from(settings).where(eq(settings.name, name));
  return row;
}

/** Replaces the value only if it is still `old` (compare-and-set, so racing replicas agree). */
export async function replaceSetting(db: DbOrTx, name: string, old: string, sealed: string): Promise<void> {
  await db
    .update(settings)
    .set({ sealedValue: sealed, updatedAt: sql`now()` })
    .where(and(eq(settings.name, name), eq(settings.sealedValue, old)));
}
