import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { PgBoss } from 'pg-boss';
import pino, { type Logger } from 'pino';
import { createApp } from './app.ts';
import type { Config } from './config.ts';
import { PRODUCTION_TIMINGS, type Relay, type Timings } from './context.ts';
import { createDatabase, isDriverPatched } from './db/client.ts';
import { checkJobShapes, createWaker } from './jobs/job-sql.ts';
import { startEmbeddedPostgres } from './db/embedded.ts';
import { migrateDatabase } from './db/migrate.ts';
import { createCallbackConsumer } from './callbacks/consume-callback.ts';
import { createDeliveryRecorder } from './delivery/deliver-webhook.ts';
import { createPromptDelivery } from './delivery/prompt-delivery.ts';
import { createQueues, Queues } from './jobs/queues.ts';
import { startWorker, type WorkerOptions } from './jobs/worker.ts';
import { createOutbound } from './outbound/http.ts';
import { createFalVerifier } from './providers/verify-signature.ts';
import { bootstrapDefaultProject } from './projects/bootstrap.ts';
import { createKeyCache } from './projects/key-cache.ts';
import { createKeyring, loadOrCreateKeyFile } from './secrets/keyring.ts';
import { resealAtBoot } from './secrets/reseal-at-boot.ts';
import { loadServerHashes } from './secrets/server-secret.ts';
import { createDispatchClaimer, createOutcomeRecorder } from './tasks/dispatch-task.ts';
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
  if (!isDriverPatched()) {
    log.error('postgres.js is not patched (patches/ is applied by `npm install`): a database restart can crash this process');
  }
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
      // Expired jobs and jobs whose worker stopped sending heartbeats (a kill -9) are failed and
      // retried in pg-boss's monitor pass; its default of 60 s left an orphaned dispatch waiting
      // ~50 s. With both intervals at 10 s and a 10 s heartbeat (the minimum) it waits 10–25 s.
      superviseIntervalSeconds: options.superviseIntervalSeconds ?? 10,
      monitorIntervalSeconds: options.superviseIntervalSeconds ?? 10,
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
    await checkJobShapes(boss, Queues.notify, log);

    const hashes = await loadServerHashes(database.db, keyring);
    if (hashes.unavailable) log.error(`${hashes.unavailable}; API requests are answered 503 until it can be opened`);
    const boot = await bootstrapDefaultProject(database.db, keyring, hashes, { apiKeys: config.apiKeys, webhookSecret: config.webhookSecret });
    if (boot.keysSkipped) log.error('API keys were neither stored (RELAY_API_KEYS) nor minted: the server secret cannot be opened');
    await resealAtBoot(database.db, keyring, log);
    if (boot.createdKey) announce(`asyncrelay: created API key (shown once, store it now): ${boot.createdKey}`);
    if (boot.createdSecret) announce(`asyncrelay: webhook signing secret of the default project (shown once): ${boot.createdSecret}`);

    const base = {
      db: database.db,
      sql: database.sql,
      boss,
      keyring,
      hashes,
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
      claimTask: createDispatchClaimer(base.sql),
      recordOutcome: createOutcomeRecorder(base),
      recordDelivery: createDeliveryRecorder(base.sql),
      consumeCallback: createCallbackConsumer(base),
    };
    const relay: Relay = { ...batched, deliverPromptly: createPromptDelivery(batched) };
    if (runsWorker) await startWorker(relay, boss, options.worker);

    let server: ServerType | undefined;
    let port: number | undefined;
    if (config.role !== 'worker') {
      const keys = createKeyCache(database.db, hashes);
      const app = createApp({
        relay,
        keys,
        limits: config.rateLimits,
        trustedProxies: config.trustedProxies,
        createConcurrency: config.createConcurrency,
        readiness: { check: async () => !bossStopped && (await database.sql`select 1`).length === 1 },
      });
      server = await new Promise<ServerType>((resolve, reject) => {
        const s = serve({ fetch: app.fetch, port: config.port, hostname: config.host }, () => resolve(s));
        s.once('error', reject);
      });
      port = (server.address() as AddressInfo).port;
      cleanups.unshift(() => closeServer(server!));
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
