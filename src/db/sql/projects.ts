import { and, eq, sql } from 'drizzle-orm';
import { projects } from '../../../drizzle/schema.ts';
import type { DbOrTx, Tx } from '../client.ts';

/*
 * The `projects` table: creating projects (the default one at boot, others from the CLI), their
 * sealed webhook signing secrets (set, read for delivery, re-sealed under the first key), and the
 * advisory lock that serialises the default project's bootstrap. Sealing and opening are the
 * caller's: these statements only move sealed blobs. A delivery that reads its task with the
 * secret joins this table from the delivery statements.
 */

export type ProjectRow = typeof projects.$inferSelect;
export type NewProject = Pick<typeof projects.$inferInsert, 'id' | 'name' | 'webhookSecretSealed'>;

/** Serialises bootstraps of replicas starting together. */
const BOOTSTRAP_LOCK = 0x62_6f_6f_74; // "boot"

/** Takes the bootstrap's advisory lock, held until `tx` ends. */
export async function lockBootstrap(tx: Tx): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(${BOOTSTRAP_LOCK})`);
}

export async function findProject(db: DbOrTx, id: string): Promise<ProjectRow | undefined> {
  const [row] = await db.select().from(projects).where(eq(projects.id, id));
  return row;
}

export async function projectExists(db: DbOrTx, id: string): Promise<boolean> {
  return (await db.select({ id: projects.id }).from(projects).where(eq(projects.id, id))).length > 0;
}

export async function insertProject(db: DbOrTx, row: NewProject): Promise<void> {
  await db.insert(projects).values(row);
}

/** Creates the project unless one has its id; whether this call created it. */
export async function insertProjectUnlessExists(db: DbOrTx, row: NewProject): Promise<boolean> {
  const inserted = await db.insert(projects).values(row).onConflictDoNothing({ target: projects.id }).returning({ id: projects.id });
  return inserted.length > 0;
}

/** Overwrites the project's sealed signing secret, whatever it was. */
export async function setProjectSecret(db: DbOrTx, id: string, sealed: string): Promise<void> {
  await db.update(projects).set({ webhookSecretSealed: sealed }).where(eq(projects.id, id));
}

/**
 * The project's sealed signing secret. The project exists: every task's does (`tasks.project_id`
 * references it), and only tasks' deliveries ask.
 */
export async function readProjectSecret(db: DbOrTx, id: string): Promise<string> {
  const [row] = await db.select({ sealed: projects.webhookSecretSealed }).from(projects).where(eq(projects.id, id));
  return row.sealed;
}

/** Not sealed under the first key (SQL): `split_part`, since a kid may hold LIKE's `_`. */
const underOtherKid = (column: string, kid: string) => sql`split_part(${sql.identifier(column)}, '.', 2) <> ${kid}`;

/** Projects whose signing secret is sealed under another key id than `kid`; a handful of rows. */
export async function listProjectSecretsNotUnder(db: DbOrTx, kid: string): Promise<{ id: string; sealed: string }[]> {
  return db.select({ id: projects.id, sealed: projects.webhookSecretSealed }).from(projects).where(underOtherKid('webhook_secret_sealed', kid));
}

/**
 * Replaces a project's sealed secret by `sealed` only if it is still `old` (compare-and-set:
 * replicas and `asyncrelay reseal` may race, and nothing else is ever overwritten). Rows changed.
 */
export async function replaceProjectSecret(db: DbOrTx, id: string, old: string, sealed: string): Promise<number> {
  const updated = await db
    .update(projects)
    .set({ webhookSecretSealed: sealed })
    .where(and(eq(projects.id, id), eq(projects.webhookSecretSealed, old)))
    .returning({ id: projects.id });
  return updated.length;
}
