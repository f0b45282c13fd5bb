import type { DbOrTx } from '../db/client.ts';
import { insertProjectUnlessExists } from '../db/sql/projects.ts';
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
  const created = await insertProjectUnlessExists(db, { id, name, webhookSecretSealed: keyring.seal(secret) });
  return created ? { created: true, webhookSecret: secret } : { created: false };
}
