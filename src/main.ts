import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { serve, type ServerType } from '@hono/node-server';
import { PgBoss } from 'pg-boss';
import pino, { type Logger } from 'pino';
import type postgres from 'postgres';
import { appSettings, createApp } from './app.ts';
import type { Config } from './config.ts';
import type { Relay } from './context.ts';
import { PRODUCTION_TIMINGS, type Timings } from './timings.ts';
import { createDatabase, isDriverPatched } from './db/client.ts';
import { isDatabaseUnavailable } from './db/unavailable.ts';
import { checkJobShapes, createJobs, createQueues } from './jobs/job-sql.ts';
import { startEmbeddedPostgres } from './db/embedded.ts';
import { migrateDatabase } from './db/migrate.ts';
import { deliverWebhook } from './delivery/deliver-webhook.ts';
import { createPromptDelivery, DEFAULT_PROMPT_LIMITS, type PromptDeliveryLimits } from './delivery/prompt-delivery.ts';
import { Queues } from './jobs/queues.ts';
import { startWorker, type WorkerOptions } from './jobs/worker.ts';
import { createOutbound } from './outbound/http.ts';
import { createFalVerifier } from './providers/verify-signature.ts';
import { bootstrapDefaultProject } from './projects/bootstrap.ts';
import { createKeyCache } from './projects/key-cache.ts';
import { createKeyring, loadOrCreateKeyFile } from './secrets/keyring.ts';
import { resealAtBoot } from './secrets/reseal-at-boot.ts';
import { loadServerHashes } from './secrets/server-secret.ts';
import { createChangeFeed, taskStatuses } from './db/change-feed.ts';
import { createWriters } from './writers/writers.ts';

export interface StartOptions {
  log?: Logger;
  timings?: Partial<Timings>;
  worker?: WorkerOptions;
  /** Where the one-time bootstrap secrets are printed (stdout by default). */
  announce?: (line: string) => void;
  /** postgres.js pool size (default 32; tests use less, several relays share one server). */
  poolSize?: number;
  /** pg-boss supervision interval (expired and heartbeat-lapsed jobs), seconds. */
  superviseIntervalSeconds?: number;
  /** Longest a request may take before it is answered 503, ms (default 9000; tests shorten it). */
  requestBudgetMs?: number;
  /** Aborts a start-up that is still waiting for the database (a SIGTERM during boot). */
  signal?: AbortSignal;
  /** Bounds of the prompt first onComplete attempts (tests make them small). */
  promptDelivery?: Partial<PromptDeliveryLimits>;
}

export interface RunningRelay {
  relay: Relay;
  /** pg-boss itself, for tests that inspect or send jobs; the relay's code goes through `relay.jobs`. */
  boss: PgBoss;
  /** Listening port (api/all roles), undefined for a pure worker. */
  port?: number;
  databaseUrl: string;
  /** Stops accepting, lets in-flight work finish (bounded), closes everything; embedded PostgreSQL last. */
  stop(): Promise<void>;
}

/** How long SIGTERM waits for in-flight jobs and requests before closing anyway. */
const DRAIN_MS = 20_000;

/**
 * The composition root: the one place that starts servers, pools and workers. Everything else
 * is a factory over the `Relay` built here.
 *
 * Start-up waits for the database (DESIGN §8): a relay started before PostgreSQL, or while it
 * restarts, retries its boot with backoff instead of exiting, so a restart policy never turns an
 * outage into a crash loop. Each failed attempt is undone (pools closed, pg-boss stopped) before
 * the next.
 */
export async function startRelay(config: Config, options: StartOptions = {}): Promise<RunningRelay> {
  const log = options.log ?? pino({ level: config.logLevel });
  if (!isDriverPatched()) {
    log.error('postgres.js is not patched (patches/ is applied by `npm install`): a database restart can crash this process');
  }
  const embedded = config.databaseUrl
    ? undefined
    : await startEmbeddedPostgres({
        dataDir: config.dataDir,
        log: (msg) => log.debug({ component: 'embedded-postgres' }, msg),
        // One-off facts an operator should see (binaries copied, cluster moved for root).
        notice: (msg) => log.warn({ component: 'embedded-postgres' }, msg),
      });
  const databaseUrl = config.databaseUrl ?? embedded!.url;
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        const running = await bootOnce(config, options, log, databaseUrl);
        if (!embedded) return running;
        return { ...running, stop: once(async () => {
          await running.stop();
          await embedded.stop();
        }) };
      } catch (error) {
        if (options.signal?.aborted || !worthRetryingAtBoot(error)) throw error;
        const delayMs = Math.min(500 * 2 ** (attempt - 1), 5_000);
        const code = (error as { code?: string }).code;
        log.warn({ attempt, code, reason: (error as Error).message }, `database not available at start-up; retrying in ${delayMs} ms`);
        await sleep(delayMs, undefined, { signal: options.signal }).catch(() => {
          throw error;
        });
      }
    }
  } catch (error) {
    await embedded?.stop();
    throw error;
  }
}

/**
 * Boot failures that waiting can cure: the database unreachable or restarting, and a login or
 * database that does not exist yet (a PostgreSQL container still running its init scripts).
 */
function worthRetryingAtBoot(error: unknown): boolean {
  const code = (error as { code?: unknown; cause?: { code?: unknown } })?.code ?? (error as { cause?: { code?: unknown } })?.cause?.code;
  return isDatabaseUnavailable(error) || code === '28000' || code === '28P01' || code === '3D000';
}

const once = <T>(fn: () => Promise<T>) => {
  let running: Promise<T> | undefined;
  return () => (running ??= fn());
};

async function bootOnce(config: Config, options: StartOptions, log: Logger, databaseUrl: string): Promise<RunningRelay> {
  const announce = options.announce ?? ((line: string) => process.stdout.write(`${line}\n`));
  const cleanups: Array<() => Promise<void>> = [];
  try {
    const keyring = createKeyring(config.encryptionKeys ?? loadOrCreateKeyFile(config.dataDir));
    await migrateDatabase(databaseUrl);

    const database = createDatabase(databaseUrl, { max: options.poolSize ?? 32 });
    cleanups.unshift(() => database.close());
    // Readiness has a connection of its own: a probe must not queue behind a backlog of work on
    // the shared pool (a 1–3 s health check flapped while the relay caught up after a restart).
    const probe = createDatabase(databaseUrl, { max: 1, connectTimeoutSeconds: 2 });
    cleanups.unshift(() => probe.close());
    // Closed after pg-boss has drained the jobs that use it.
    const outbound = createOutbound({ allowedNetworks: config.allowedNetworks });
    cleanups.unshift(() => outbound.close());
    const runsWorker = config.role !== 'api';
    const boss = new PgBoss({
      connectionString: databaseUrl,
      application_name: `asyncrelay-${config.role}`,
      max: 10,
      useListenNotify: true,
      supervise: runsWorker,
      schedule: runsWorker,
      // Expired jobs and jobs whose worker stopped sending heartbeats (a kill -9) are failed and
      // retried in pg-boss's monitor pass; its default of 60 s left an orphaned dispatch waiting
      // ~50 s. With both intervals at 10 s and a 10 s heartbeat (the minimum) it waits 10–25 s.
      superviseIntervalSeconds: options.superviseIntervalSeconds ?? 10,
      monitorIntervalSeconds: options.superviseIntervalSeconds ?? 10,
    });
    boss.on('error', (err) => log.error({ err }, 'pg-boss error'));
    let bossStopped = false;
    const stopBoss = async () => {
      if (bossStopped) return;
      bossStopped = true;
      await boss.stop({ graceful: true, timeout: DRAIN_MS });
    };
    cleanups.unshift(stopBoss);
    await boss.start();
    await createQueues(boss);
    await checkJobShapes(boss, Queues.notify, log);

    const hashes = await loadServerHashes(database.db, keyring);
    if (hashes.unavailable) log.error(`${hashes.unavailable}; API requests are answered 503 until it can be opened`);
    const boot = await bootstrapDefaultProject(database.db, keyring, hashes, { apiKeys: config.apiKeys, webhookSecret: config.webhookSecret });
    if (boot.keysSkipped) log.error('API keys were neither stored (RELAY_API_KEYS) nor minted: the server secret cannot be opened');
    await resealAtBoot(database.db, keyring, log);
    if (boot.createdKey) announce(`asyncrelay: created API key (shown once, store it now): ${boot.createdKey}`);
    if (boot.createdSecret) announce(`asyncrelay: webhook signing secret of the default project (shown once): ${boot.createdSecret}`);

    // Only processes that serve long-polls listen; workers publish their changes all the same.
    const changes = createChangeFeed({
      sql: database.sql,
      listenUrl: config.role === 'worker' ? undefined : databaseUrl,
      versions: taskStatuses(database.sql),
      onError: (err, what) => log.warn({ err }, what),
    });
    await changes.start();
    cleanups.unshift(() => changes.close());

    const jobs = createJobs(boss, database.sql, (err) => log.warn({ err }, 'pg-boss wake-up failed; workers will poll'));
    const timings = { ...PRODUCTION_TIMINGS, ...options.timings };
    const relay: Relay = {
      db: database.db,
      sql: database.sql,
      jobs,
      keyring,
      hashes,
      outbound,
      log,
      publicUrl: config.publicUrl,
      timings,
      changes,
      fal: createFalVerifier(outbound, config.falJwksUrl),
      writers: createWriters({ sql: database.sql, jobs, timings, changes }),
      prompt: createPromptDelivery(
        // `relay` is complete by the time an attempt runs.
        { db: database.db, jobs, log, timings, attempt: (job, known, answered) => deliverWebhook(relay, job, known, answered) },
        { ...DEFAULT_PROMPT_LIMITS, ...options.promptDelivery },
      ),
    };
    // After the server has stopped taking callbacks, before pg-boss and the pool stop.
    cleanups.unshift(() => relay.prompt.stop());
    if (runsWorker) await startWorker(relay, boss, options.worker);

    let server: ServerType | undefined;
    let port: number | undefined;
    if (config.role !== 'worker') {
      const draining = new AbortController();
      const keys = createKeyCache(database.db, hashes);
      const app = createApp({
        relay,
        keys,
        ...appSettings(config),
        draining: draining.signal,
        requestBudgetMs: options.requestBudgetMs,
        readiness: { check: async () => !bossStopped && !draining.signal.aborted && (await probeDatabase(probe.sql)) },
      });
      server = await new Promise<ServerType>((resolve, reject) => {
        const s = serve({ fetch: app.fetch, port: config.port, hostname: config.host, serverOptions: requestDeadlines(config) }, () => resolve(s));
        s.once('error', reject);
      });
      port = (server.address() as AddressInfo).port;
      cleanups.unshift(() => drainServer(server!, draining));
      // Before the server closes: waiting long-polls answer at once instead of holding the drain.
      cleanups.unshift(() => changes.close());
      log.info({ port, role: config.role, publicUrl: config.publicUrl, embedded: !config.databaseUrl }, 'asyncrelay listening');
    } else {
      log.info({ role: config.role }, 'asyncrelay worker running');
    }

    return { relay, boss, port, databaseUrl, stop: once(() => runCleanups(cleanups, log)) };
  } catch (error) {
    await runCleanups(cleanups, log);
    throw error;
  }
}

/**
 * Short deadlines for receiving a request (Node's defaults: 60 s for the headers, 300 s for the
 * whole request): a client that trickles its headers or body is answered 408 and cut, instead of
 * holding a connection and its buffers for minutes. They cover receiving only; a long-poll whose
 * request is in may take its 25 s to answer. Node checks them every `connectionsCheckingInterval`
 * (default 30 s, which would let a 10 s deadline run to 40 s).
 */
function requestDeadlines(config: Config) {
  return {
    headersTimeout: config.headersTimeoutSeconds * 1000,
    requestTimeout: config.requestTimeoutSeconds * 1000,
    connectionsCheckingInterval: Math.min(1000, config.headersTimeoutSeconds * 500),
  };
}

/** How long a readiness probe may take before it counts as a failure. */
const PROBE_TIMEOUT_MS = 2_000;

/** `select 1` on the probe's own connection, bounded: a database that does not answer is not ready. */
async function probeDatabase(sql: postgres.Sql): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), PROBE_TIMEOUT_MS);
  });
  try {
    return await Promise.race([sql`select 1`.then((rows) => rows.length === 1, () => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * SIGTERM (DESIGN §8): stop accepting, let every request in flight finish (bounded by DRAIN_MS),
 * then cut what is left. While draining, every answer carries `Connection: close` (app.ts) and
 * long-polls answer early, so each connection ends after its current request instead of being
 * reset in the middle of one; idle keep-alive connections are closed at once.
 */
async function drainServer(server: ServerType, draining: AbortController): Promise<void> {
  draining.abort();
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  const http = server as unknown as { closeIdleConnections?: () => void; closeAllConnections?: () => void };
  http.closeIdleConnections?.();
  const timer = setTimeout(() => http.closeAllConnections?.(), DRAIN_MS);
  await closed;
  clearTimeout(timer);
}

async function runCleanups(cleanups: Array<() => Promise<void>>, log: Logger): Promise<void> {
  for (const cleanup of cleanups) {
    try {
      await cleanup();
    } catch (err) {
      log.error({ err }, 'error during shutdown');
    }
  }
}
