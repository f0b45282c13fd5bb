import type { PgBoss } from 'pg-boss';
import type { Logger } from 'pino';
import type postgres from 'postgres';
import type { TaskRow } from '../drizzle/schema.ts';
import type { Db } from './db/client.ts';
import type { Wake } from './jobs/job-sql.ts';
import type { ConsumedRow } from './callbacks/consume-callback.ts';
import type { PromptDelivery } from './delivery/prompt-delivery.ts';
import type { ChangeFeed } from './tasks/change-feed.ts';
import type { CallbackConsume, DeliveryRecord } from './db/task-sql.ts';
import type { Outbound } from './outbound/http.ts';
import type { SignatureCheck } from './providers/verify-signature.ts';
import type { Keyring } from './secrets/keyring.ts';
import type { ServerHashes } from './secrets/server-secret.ts';
import type { DispatchOutcome } from './tasks/dispatch-task.ts';
import type { NewTask } from './tasks/insert-tasks.ts';

/**
 * Everything the domain verbs and job handlers need, built once by the composition root
 * (src/main.ts) or by a test. Nothing below reads the environment.
 */
export interface Relay {
  db: Db;
  sql: postgres.Sql;
  boss: PgBoss;
  keyring: Keyring;
  /** HMACs under the server secret (API keys, idempotency fingerprints). */
  hashes: ServerHashes;
  outbound: Outbound;
  log: Logger;
  /** Base of minted callback URLs, without a trailing slash. */
  publicUrl: string;
  timings: Timings;
  /**
   * Task changes across processes (tasks/change-feed.ts): whatever commits a status change
   * publishes the task's id after its commit; long-polls watch.
   */
  changes: ChangeFeed;
  /** Sends a pg-boss wake-up deferred out of a commit (see `foldJobDeferringNotify`). */
  wake: (wake: Wake | undefined) => void;
  /** Writes a new task with its dispatch job (tasks created at the same moment share one statement); dropped unwritten if `signal` aborts first. */
  writeTask: (task: NewTask, signal?: AbortSignal) => Promise<TaskRow>;
  /** Claims a task for a dispatch attempt (null: nothing to dispatch); claims made together share one statement. */
  claimTask: (taskId: string) => Promise<TaskRow | null>;
  /** Writes what a dispatch attempt's answer changes; outcomes recorded together share a transaction. */
  recordOutcome: (outcome: DispatchOutcome) => Promise<void>;
  /** Consumes a provider's callback (undefined: unknown token); callbacks arriving together share a statement. */
  consumeCallback: (callback: CallbackConsume) => Promise<ConsumedRow | undefined>;
  /** Records an onComplete attempt that schedules no retry; records made together share a statement. */
  recordDelivery: (record: DeliveryRecord) => Promise<void>;
  /** Verifies a fal webhook signature against fal's JWKS (RELAY_FAL_JWKS_URL), keys cached. */
  verifyFal: (headers: Record<string, string>, body: Uint8Array) => Promise<SignatureCheck>;
  /** Makes the first onComplete attempt of a just-accepted callback now, in this process (bounded, fair between projects). */
  deliverPromptly: PromptDelivery;
}

/** Durations that production fixes and tests shorten. */
export interface Timings {
  /** Seconds before each onComplete retry (DESIGN §6: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h). */
  deliveryRetrySeconds: number[];
  /** Per-attempt timeout of an onComplete delivery, ms. */
  deliveryTimeoutMs: number;
  /** Multiplier of the target retry backoff (1 in production: 1, 2, 4 … s). */
  backoffScale: number;
  /**
   * Delay of the queued first onComplete attempt behind a prompt delivery (delivery/prompt-delivery.ts):
   * it only acts if the prompt attempt never ran, so it must exceed one attempt's timeout.
   */
  promptFallbackSeconds: number;
  /** Multiplier of poll intervals and poll backoff (1 in production; a provider's Retry-After is never scaled). */
  pollScale: number;
  /**
   * Fallback poll of a task that waits for a callback (webhooks are best-effort): the first poll
   * after the first step, then each next step, the last repeating. Scaled by pollScale.
   */
  fallbackPollSeconds: number[];
  /**
   * How long a fal-signed webhook that arrives before its task's submit answer (so before fal's
   * request id is known) waits for that answer; then 503, and fal retries (providers/fal-request.ts).
   */
  falRequestWaitMs: number;
}

export const PRODUCTION_TIMINGS: Timings = {
  deliveryRetrySeconds: [5, 300, 1800, 7200, 18_000, 36_000, 36_000],
  deliveryTimeoutMs: 15_000,
  backoffScale: 1,
  promptFallbackSeconds: 30,
  pollScale: 1,
  fallbackPollSeconds: [30, 60, 120, 300],
  falRequestWaitMs: 5_000,
};
