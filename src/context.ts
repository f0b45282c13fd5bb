import type { Logger } from 'pino';
import type postgres from 'postgres';
import type { ChangeFeed } from './db/change-feed.ts';
import type { Db } from './db/client.ts';
import type { Jobs } from './jobs/job-sql.ts';
import type { PromptDelivery } from './delivery/prompt-delivery.ts';
import type { Outbound } from './outbound/http.ts';
import type { FalVerifier } from './providers/verify-signature.ts';
import type { Keyring } from './secrets/keyring.ts';
import type { ServerHashes } from './secrets/server-secret.ts';
import type { Timings } from './timings.ts';
import type { Writers } from './writers/writers.ts';

/**
 * What the domain verbs and job handlers work with: handles, configuration and the batched
 * writers, built once by the composition root (src/main.ts) or by a test. Plain data: nothing
 * here is a verb, and nothing below reads the environment. Everything it names sits below the
 * verbs that take it, so no verb's module is ever imported back by this one.
 */
export interface Relay {
  db: Db;
  sql: postgres.Sql;
  /** Enqueueing jobs inside our own statements (jobs/job-sql.ts: the one module that knows pg-boss). */
  jobs: Jobs;
  keyring: Keyring;
  /** HMACs under the server secret (API keys, idempotency fingerprints). */
  hashes: ServerHashes;
  outbound: Outbound;
  log: Logger;
  /** Base of minted callback URLs, without a trailing slash. */
  publicUrl: string;
  timings: Timings;
  /**
   * Task changes across processes (db/change-feed.ts): whatever commits a status change
   * publishes the task's id after its commit; long-polls watch.
   */
  changes: ChangeFeed;
  /** fal's webhook signatures, checked against fal's JWKS (RELAY_FAL_JWKS_URL), keys cached. */
  fal: FalVerifier;
  /** The hot writes, batched (writers/writers.ts). */
  writers: Writers;
  /** The first onComplete attempt of a just-accepted callback, made now in this process (bounded, fair between projects). */
  prompt: PromptDelivery;
}

