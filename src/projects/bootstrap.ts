import type { Db } from '../db/client.ts';
import { countActiveKeys } from '../db/sql/api-keys.ts';
import { findProject, insertProject, lockBootstrap, setProjectSecret } from '../db/sql/projects.ts';
import { generateWebhookSecret } from '../delivery/sign.ts';
import type { Keyring } from '../secrets/keyring.ts';
import type { ServerHashes } from '../secrets/server-secret.ts';
import { createApiKey, storeApiKey } from './api-keys.ts';

export const DEFAULT_PROJECT = 'default';

export interface BootstrapResult {
  /** A key minted because none existed: printed once by the caller, never again obtainable. */
  createdKey?: string;
  /** A webhook secret generated because RELAY_WEBHOOK_SECRET was unset on first start. */
  createdSecret?: string;
  /** Why RELAY_API_KEYS were neither stored nor a first key minted (the server secret cannot be opened). */
  keysSkipped?: string;
}

/**
 * Makes sure the default project exists with its webhook secret, stores RELAY_API_KEYS (hashed),
 * and mints a first key when there is none at all, so `npm start` alone yields a usable relay.
 */
export async function bootstrapDefaultProject(
  db: Db,
  keyring: Keyring,
  hashes: ServerHashes,
  options: { apiKeys: string[]; webhookSecret?: string },
): Promise<BootstrapResult> {
  return db.transaction(async (tx) => {
    // Replicas starting together take turns, so one creates the project and the others find it.
    await lockBootstrap(tx);
    const result: BootstrapResult = {};
    const project = await findProject(tx, DEFAULT_PROJECT);
    if (!project) {
      const secret = options.webhookSecret ?? generateWebhookSecret();
      if (!options.webhookSecret) result.createdSecret = secret;
      await insertProject(tx, { id: DEFAULT_PROJECT, name: 'Default project', webhookSecretSealed: keyring.seal(secret) });
    } else if (options.webhookSecret && !sealsTheSame(keyring, project.webhookSecretSealed, options.webhookSecret)) {
      // Also when the stored one cannot be opened (its key id was dropped): the operator's value wins.
      await setProjectSecret(tx, DEFAULT_PROJECT, keyring.seal(options.webhookSecret));
    }
    if (hashes.unavailable) {
      result.keysSkipped = hashes.unavailable;
      return result;
    }
    for (const key of options.apiKeys) await storeApiKey(tx, hashes, DEFAULT_PROJECT, 'RELAY_API_KEYS', key);
    if ((await countActiveKeys(tx)) === 0) {
      result.createdKey = (await createApiKey(tx, hashes, DEFAULT_PROJECT, 'bootstrap')).key;
    }
    return result;
  });
}

/** Whether `blob` opens to `secret` under the current key; false when it cannot be opened at all. */
function sealsTheSame(keyring: Keyring, blob: string, secret: string): boolean {
  try {
    return keyring.open(blob) === secret;
  } catch {
    return false;
  }
}
