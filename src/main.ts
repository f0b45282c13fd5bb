import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { PgBoss } from 'pg-boss';
import pino, { type Logger } from 'pino';
import { createApp } from './app.ts';
import type { Config } from './config.ts';
import { PRODUCTION_TIMINGS, type Relay, type Timings } from './context.ts';
import { createDatabase } from './db/client.ts';
import { createWaker } from './db/pipeline.ts';
import { startEmbeddedPostgres } from './db/embedded.ts';
import { migrateDatabase } from './db/migrate.ts';
import { createCallbackConsumer } from './callbacks/consume-callback.ts';
import { createDeliveryRecorder } from './delivery/deliver-webhook.ts';
import { createPromptDelivery, DEFAULT_PROMPT_LIMITS, type PromptDeliveryLimits } from './delivery/prompt-delivery.ts';
import { createQueues } from './jobs/queues.ts';
import { startWorker, type WorkerOptions } from './jobs/worker.ts';
import { createOutbound } from './outbound/http.ts';
import { createFalVerifier } from './providers/verify-signature.ts';
import { bootstrapDefaultProject } from './projects/bootstrap.ts';
import { createKeyCache } from './projects/key-cache.ts';
import { createKeyring, loadOrCreateKeyFile } from './secrets/keyring.ts';
import { createDispatchClaimer, createOutcomeRecorder } from './tasks/dispatch-task.ts';
import { createChangeFeed, taskStatuses } from './tasks/change-feed.ts';
import { createTaskWriter } from './tasks/insert-tasks.ts';

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
  /** Bounds of the prompt first onComplete attempts (tests make them small). */
  promptDelivery?: Partial<PromptDeliveryLimits>;
}

export interface RunningRelay {
  relay: Relay;
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
 */
export async function startRelay(config: Config, options: StartOptions = {}): Promise<RunningRelay> {
  const log = options.log ?? pino({ level: config.logLevel });
  const announce = options.announce ?? ((line: string) => process.stdout.write(`${line}\n`));
  const embedded = config.databaseUrl
    ? undefined
    : await startEmbeddedPostgres({ dataDir: config.dataDir, log: (msg) => log.debug({ component: 'embedded-postgres' }, msg) });
  const cleanups: Array<() => Promise<void>> = [];
  if (embedded) cleanups.push(() => embedded.stop());
  try {
    const databaseUrl = config.databaseUrl ?? embedded!.url;
    const keyring = createKeyring(config.encryptionKeys ?? loadOrCreateKeyFile(config.dataDir));
    await migrateDatabase(databaseUrl);

    const database = createDatabase(databaseUrl, { max: options.poolSize ?? 32 });
    cleanups.unshift(() => database.close());
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
      superviseIntervalSeconds: options.superviseIntervalSeconds ?? 10,
    });
    boss.on('error', (err) => log.error({ err }, 'pg-boss error'));
    await boss.start();
    let bossStopped = false;
    const stopBoss = async () => {
      if (bossStopped) return;
      bossStopped = true;
      await boss.stop({ graceful: true, timeout: DRAIN_MS });
    };
    cleanups.unshift(stopBoss);
    await createQueues(boss);

    const boot = await bootstrapDefaultProject(database.db, keyring, { apiKeys: config.apiKeys, webhookSecret: config.webhookSecret });
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

    const base = {
      changes,
      db: database.db,
      sql: database.sql,
      boss,
      keyring,
      outbound,
      log,
      publicUrl: config.publicUrl,
      verifyFal: createFalVerifier(outbound, config.falJwksUrl),
      timings: { ...PRODUCTION_TIMINGS, ...options.timings },
      wake: createWaker(database.sql, (err) => log.warn({ err }, 'pg-boss wake-up failed; workers will poll')),
    };
    // The hot writes go through group-commit batchers (db/batcher.ts).
    const batched = {
      ...base,
      writeTask: createTaskWriter(base),
      claimTask: createDispatchClaimer(base),
      recordOutcome: createOutcomeRecorder(base),
      recordDelivery: createDeliveryRecorder(base.sql),
      consumeCallback: createCallbackConsumer(base),
    };
    const relay: Relay = { ...batched, deliverPromptly: createPromptDelivery(batched, { ...DEFAULT_PROMPT_LIMITS, ...options.promptDelivery }) };
    // After the server has stopped taking callbacks, before pg-boss and the pool stop.
    cleanups.unshift(() => relay.deliverPromptly.stop());
    if (runsWorker) await startWorker(relay, boss, options.worker);

    let server: ServerType | undefined;
    let port: number | undefined;
    if (config.role !== 'worker') {
      const keys = createKeyCache(database.db);
      const app = createApp({
        relay,
        keys,
        limits: config.rateLimits,
        trustedProxies: config.trustedProxies,
        admission: { max: config.createConcurrency, maxPerKey: config.createConcurrencyPerKey, maxWaitingPerKey: config.createQueuePerKey },
        longPollsPerKey: config.longPollsPerKey,
        readiness: { check: async () => !bossStopped && (await database.sql`select 1`).length === 1 },
      });
      server = await new Promise<ServerType>((resolve, reject) => {
        const s = serve({ fetch: app.fetch, port: config.port, hostname: config.host, serverOptions: requestDeadlines(config) }, () => resolve(s));
        s.once('error', reject);
      });
      port = (server.address() as AddressInfo).port;
      cleanups.unshift(() => closeServer(server!));
      // Before the server closes: waiting long-polls answer at once instead of holding the drain.
      cleanups.unshift(() => changes.close());
      log.info({ port, role: config.role, publicUrl: config.publicUrl, embedded: Boolean(embedded) }, 'asyncrelay listening');
    } else {
      log.info({ role: config.role }, 'asyncrelay worker running');
    }

    let stopping: Promise<void> | undefined;
    return {
      relay,
      port,
      databaseUrl,
      stop: () => (stopping ??= runCleanups(cleanups, log)),
    };
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

/** Stop accepting; give open requests (long-polls included) a bounded time, then cut them. */
async function closeServer(server: ServerType): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  const http = server as unknown as { closeIdleConnections?: () => void; closeAllConnections?: () => void };
  http.closeIdleConnections?.();
  const timer = setTimeout(() => http.closeAllConnections?.(), 5_000);
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
