import { randomBytes } from 'node:crypto';
import pino, { type Logger } from 'pino';
import { type Config, loadConfig } from '../../src/config.ts';
import { freePort } from '../../src/db/embedded.ts';
import type { Timings } from '../../src/timings.ts';
import { type RunningRelay, type StartOptions, startRelay } from '../../src/main.ts';
import { createApiKey } from '../../src/projects/api-keys.ts';
import { ensureProject } from '../../src/projects/projects.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';

export { freePort };

/** Fast schedules so retries and redeliveries happen within a test's patience. */
export const FAST_TIMINGS: Timings = {
  deliveryRetrySeconds: [0.2, 0.4, 0.6],
  deliveryTimeoutMs: 2_000,
  backoffScale: 0.1,
  promptFallbackSeconds: 3,
  pollScale: 0.05,
  fallbackPollSeconds: [20, 40],
  falRequestWaitMs: 2_000,
};

export interface TestRelay {
  running: RunningRelay;
  /** The configuration it was started with (test/helpers/app.ts builds apps from it). */
  config: Config;
  database: TestDatabase;
  baseUrl: string;
  apiKey: string;
  webhookSecret: string;
  encryptionKey: string;
  /** JSON request against the relay with the API key; returns status, parsed body and headers. */
  api(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<ApiAnswer>;
  stop(): Promise<void>;
}

export interface ApiAnswer {
  status: number;
  body: any;
  headers: Headers;
}

export interface TestRelayOptions {
  timings?: Partial<Timings>;
  env?: Record<string, string>;
  /** Reuse a database (restart tests); a fresh one is cloned otherwise. */
  database?: TestDatabase;
  /** A logger to capture what the relay logs (default: silent unless TEST_LOG_LEVEL). */
  log?: Logger;
  /** Longest a request may take before it is answered 503, ms (the relay's default is 9000). */
  requestBudgetMs?: number;
  /** Bounds of the prompt first onComplete attempts (delivery/prompt-delivery.ts). */
  promptDelivery?: StartOptions['promptDelivery'];
}

/** The real relay (HTTP server, pg-boss workers, PostgreSQL) in this process, on a fresh database. */
export async function startTestRelay(options: TestRelayOptions = {}): Promise<TestRelay> {
  const database = options.database ?? (await createTestDatabase('relay'));
  const port = await freePort();
  const apiKey = `test_${randomBytes(16).toString('hex')}`;
  const webhookSecret = `whsec_${randomBytes(24).toString('base64')}`;
  const encryptionKey = randomBytes(32).toString('base64');
  const config = loadConfig({
    DATABASE_URL: database.url,
    PORT: String(port),
    HOST: '127.0.0.1',
    RELAY_PUBLIC_URL: `http://127.0.0.1:${port}`,
    RELAY_API_KEYS: apiKey,
    RELAY_WEBHOOK_SECRET: webhookSecret,
    RELAY_ENCRYPTION_KEY: encryptionKey,
    RELAY_ALLOWED_NETWORKS: '127.0.0.0/8',
    // Every test speaks from 127.0.0.1 and many test bad callbacks or bad keys: the rejection
    // limits have their own tests (rate-limits.test.ts) and stay out of the others' way.
    RELAY_CALLBACK_REJECT_LIMIT: '100000',
    RELAY_AUTH_FAILURE_LIMIT: '100000',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ...options.env,
  });
  const running = await startRelay(config, {
    log: options.log ?? pino({ level: config.logLevel }),
    timings: { ...FAST_TIMINGS, ...options.timings },
    worker: { pollSeconds: 0.5, concurrency: 2 },
    poolSize: 10,
    announce: () => {},
    requestBudgetMs: options.requestBudgetMs,
    promptDelivery: options.promptDelivery,
  });
  const baseUrl = `http://127.0.0.1:${running.port}`;
  return {
    running,
    config,
    database,
    baseUrl,
    apiKey,
    webhookSecret,
    encryptionKey,
    api: (method, path, body, headers) => apiRequest(baseUrl, method, path, body, { 'x-api-key': apiKey, ...headers }),
    async stop() {
      await running.stop();
      if (!options.database) await database.drop();
    },
  };
}

export async function apiRequest(
  baseUrl: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<ApiAnswer> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
  }
  const res = await fetch(`${baseUrl}${path}`, init);
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {}
  return { status: res.status, body: parsed, headers: res.headers };
}

/** Long-polls GET /v1/tasks/:id?wait= until the task reaches `status` (event-driven, no sleeps). */
export async function waitForStatus(relay: TestRelay, taskId: string, status: string, timeoutMs = 15_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  let seen: string | undefined;
  for (;;) {
    const left = deadline - Date.now();
    const wait = seen === undefined ? 0 : Math.max(0, Math.min(5, Math.floor(left / 1000)));
    const answer = await relay.api('GET', `/v1/tasks/${taskId}?wait=${wait}${seen ? `&seenStatus=${seen}` : ''}`);
    if (answer.status !== 200) throw new Error(`GET task answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    if (answer.body.task.status === status) return answer.body.task;
    if (['completed', 'failed', 'timeout', 'cancelled'].includes(answer.body.task.status)) {
      throw new Error(`task ended as ${answer.body.task.status}, expected ${status}: ${JSON.stringify(answer.body.task)}`);
    }
    seen = answer.body.task.status;
    if (left <= 0) throw new Error(`task ${taskId} still ${answer.body.task.status} after ${timeoutMs} ms, expected ${status}`);
  }
}

export interface TestTenant {
  projectId: string;
  apiKey: string;
  /** The project's own webhook signing secret. */
  webhookSecret: string;
  /** Like `TestRelay.api`, with this project's key. */
  api(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<ApiAnswer>;
}

/** Another project on the relay's database, with a key of its own (what `keys create --project` makes). */
export async function addTenant(relay: TestRelay, projectId: string): Promise<TestTenant> {
  const { db, keyring, hashes } = relay.running.relay;
  const made = await ensureProject(db, keyring, projectId);
  if (!made.webhookSecret) throw new Error(`project ${projectId} exists already`);
  const { key } = await createApiKey(db, hashes, projectId, `${projectId}-key`);
  return {
    projectId,
    apiKey: key,
    webhookSecret: made.webhookSecret,
    api: (method, path, body, headers) => apiRequest(relay.baseUrl, method, path, body, { 'x-api-key': key, ...headers }),
  };
}
