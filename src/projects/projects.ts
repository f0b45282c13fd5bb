import { eq } from 'drizzle-orm';
import { projects } from '../../drizzle/schema.ts';
import type { DbOrTx } from '../db/client.ts';
import { generateWebhookSecret } from '../delivery/sign.ts';
import type { Keyring } from '../secrets/keyring.ts';

/** Project ids appear in logs and CLI output: short, lower-case, shell-safe. */
export const PROJECT_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/**
 * Makes sure a project exists. A new project gets its own `whsec_…` secret, sealed; the clear
 * secret is returned only then, to be shown once.
 */
export async function ensureProject(db: DbOrTx, keyring: Keyring, id: string, name = id): Promise<{ created: boolean; webhookSecret?: string }> {
  if (!PROJECT_ID.test(id)) throw new Error(`project id "${id}" must be 1–63 of a-z 0-9 _ - (starting with a letter or digit)`);
  const secret = generateWebhookSecret();
  const inserted = await db
    .insert(projects)
    .values({ id, name, webhookSecretSealed: keyring.seal(secret) })
    .onConflictDoNothing({ target: projects.id })
    .returning({ id: projects.id });
  return inserted.length > 0 ? { created: true, webhookSecret: secret } : { created: false };
}

export async function projectExists(db: DbOrTx, id: string): Promise<boolean> {
  return (await db.select({ id: projects.id }).from(projects).where(eq(projects.id, id))).length > 0;
}
