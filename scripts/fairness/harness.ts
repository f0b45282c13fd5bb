/**
 * The lab of the fairness measurements (issue 15 items 1–3): the relay as a user runs it
 * (`node src/cli.ts serve` in a child process, production timings, a fresh database), two
 * tenants — project `default` (key A, the noisy one) and project `tenant-b` (key B, the one that
 * must not notice) — and a few helpers. Each script prints one JSON line of figures on stdout;
 * progress goes to stderr.
 */
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { log, onCleanup, runCleanups } from '../../bench/children.ts';
import { openBenchServer } from '../../bench/database.ts';
import { generateKeys, type Relay, type RelayRole, startRelay } from '../../bench/relay.ts';
import { createDatabase } from '../../src/db/client.ts';
import { createApiKey } from '../../src/projects/api-keys.ts';
import { ensureProject } from '../../src/projects/projects.ts';
import { loadServerHashes } from '../../src/secrets/server-secret.ts';
import { createKeyring, parseEncryptionKeys } from '../../src/secrets/keyring.ts';

export { log };
export const root = fileURLToPath(new URL('../..', import.meta.url));

export interface Tenant {
  project: string;
  key: string;
  /** Its own connection pool, so one tenant's sockets never queue behind the other's. */
  agent: Agent;
}

export interface Answer {
  status: number;
  body: any;
  headers: Record<string, string | string[] | undefined>;
  ms: number;
}

export interface Lab {
  relay: Relay;
  origin: string;
  databaseUrl: string;
  a: Tenant;
  b: Tenant;
  api(tenant: Tenant, method: string, path: string, body?: unknown, timeoutMs?: number): Promise<Answer>;
}

/** Starts the relay on a fresh database with tenants A and B; everything is stopped by `run`'s cleanup. */
export async function startLab(options: { role?: RelayRole; env?: Record<string, string> } = {}): Promise<Lab> {
  const server = await openBenchServer();
  onCleanup(server.close);
  const database = await server.createDatabase();
  const keys = generateKeys();
  const encryptionKey = randomBytes(32).toString('base64');
  const relay = await startRelay(root, database.url, keys, options.role ?? 'all', { RELAY_ENCRYPTION_KEY: encryptionKey, ...options.env });

  // Tenant B: a project of its own with its own key, made the way `keys create --project` does.
  const db = createDatabase(database.url, { max: 1 });
  let keyB: string;
  try {
    const keyring = createKeyring(parseEncryptionKeys(encryptionKey));
    await ensureProject(db.db, keyring, 'tenant-b');
    keyB = (await createApiKey(db.db, await loadServerHashes(db.db, keyring), 'tenant-b', 'fairness')).key;
  } finally {
    await db.close();
  }
  const agent = () => new Agent({ connections: null, keepAliveTimeout: 10_000 });
  const a: Tenant = { project: 'default', key: keys.apiKey, agent: agent() };
  const b: Tenant = { project: 'tenant-b', key: keyB, agent: agent() };
  onCleanup(async () => {
    await Promise.all([a.agent.destroy(), b.agent.destroy()]);
  });
  const origin = relay.origin;
  return {
    relay,
    origin,
    databaseUrl: database.url,
    a,
    b,
    async api(tenant, method, path, body, timeoutMs = 30_000) {
      const started = performance.now();
      const res = await request(`${origin}${path}`, {
        method: method as 'GET',
        dispatcher: tenant.agent,
        headers: { 'x-api-key': tenant.key, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      const text = await res.body.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {}
      return { status: res.statusCode, body: parsed, headers: res.headers, ms: performance.now() - started };
    },
  };
}

/** A local HTTP server: `handle` answers (or never answers) each request; arrivals are timed. */
export async function startServer(handle: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => handle(req, res, Buffer.concat(chunks)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onCleanup(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

export function percentiles(samples: number[]): { n: number; p50: number | null; p99: number | null; max: number | null } {
  const sorted = [...samples].sort((x, y) => x - y);
  const at = (p: number) => (sorted.length ? Math.round(sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]) : null);
  return { n: sorted.length, p50: at(50), p99: at(99), max: sorted.length ? Math.round(sorted[sorted.length - 1]) : null };
}

/**
 * Runs a measurement: prints its figures as one JSON line (with the host's 1-minute load average at
 * the start and the end: the development machine is shared, figures move with it), always cleans
 * up, exit code 0 or 1.
 */
export async function run(main: () => Promise<Record<string, unknown>>): Promise<void> {
  let code = 0;
  const loadBefore = Math.round(loadavg()[0] * 10) / 10;
  try {
    const figures = await main();
    process.stdout.write(`${JSON.stringify({ ...figures, loadavg1: [loadBefore, Math.round(loadavg()[0] * 10) / 10] })}\n`);
  } catch (err) {
    log('failed:', err instanceof Error ? (err.stack ?? err.message) : err);
    code = 1;
  } finally {
    await runCleanups();
  }
  process.exit(code);
}
