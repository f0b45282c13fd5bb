import type { Logger } from 'pino';
import type { Db } from '../db/client.ts';
import type { Keyring } from './keyring.ts';
import { resealProjectSecrets } from './reseal.ts';

/**
 * What the relay needs at hand to run is re-sealed under the first key at every boot: the server
 * secret (in loadServerHashes) and the projects' webhook signing secrets (here), so that after one
 * restart with the new key first, only tasks' sealed requests still need the old key, and
 * `asyncrelay reseal` moves those. A secret that cannot be opened does not stop the boot: it is
 * logged, and only the deliveries of that project fail until its key is back.
 */
export async function resealAtBoot(db: Db, keyring: Keyring, log: Logger): Promise<void> {
  const projects = await resealProjectSecrets(db, keyring);
  if (projects.resealed > 0) log.info({ resealed: projects.resealed, kid: keyring.sealingKid }, 're-sealed project webhook secrets under the first encryption key');
  for (const { id, reason } of projects.unreadable) {
    log.error({ project: id }, `the webhook signing secret of project "${id}" cannot be opened: ${reason}; its webhooks fail until then`);
  }
}
