/**
 * A fresh, throw-away database for one bench run: `relay_bench_<random>` on the
 * server of DATABASE_URL when it is set, otherwise on an embedded PostgreSQL in a
 * temporary directory (the same path the relay itself takes when unconfigured).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { log } from './children.ts';

export interface BenchDatabase {
  url: string;
  kind: 'external' | 'embedded';
  /** drops the database (and stops the embedded server); safe to call once */
  close: () => Promise<void>;
}

/** Creates `relay_bench_<random>` through an admin connection to `serverUrl`. */
async function createDatabase(serverUrl: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `relay_bench_${randomBytes(6).toString('hex')}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${name}"`);
  } catch (err) {
    await admin.end({ timeout: 5 });
    throw new Error(`cannot create the bench database on ${redact(serverUrl)}: ${(err as Error).message}`);
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  log(`database ${name} created`);
  return {
    url: url.toString(),
    drop: async () => {
      try {
        // WITH (FORCE) ends sessions a killed relay may have left behind (PostgreSQL ≥ 13).
        await admin.unsafe(`drop database if exists "${name}" with (force)`);
        log(`database ${name} dropped`);
      } finally {
        await admin.end({ timeout: 5 });
      }
    },
  };
}

export async function openBenchDatabase(): Promise<BenchDatabase> {
  const external = process.env.DATABASE_URL;
  if (external) {
    const db = await createDatabase(external);
    return { url: db.url, kind: 'external', close: db.drop };
  }
  // Loaded only here, so a run against DATABASE_URL does not depend on the embedded module.
  const { startEmbeddedPostgres } = await import('../src/db/embedded.ts');
  const dataDir = await mkdtemp(join(tmpdir(), 'relay-bench-pg-'));
  log(`DATABASE_URL unset: starting embedded PostgreSQL in ${dataDir}`);
  let stopServer = async () => {};
  try {
    // PostgreSQL's routine LOG lines (checkpoints…) would only bury the bench's progress.
    const pgLog = (line: string) => {
      if (/error|fatal|panic|warning|ready|initialising/i.test(line)) log('[embedded-pg]', line);
    };
    const server = await startEmbeddedPostgres({ dataDir, log: pgLog });
    stopServer = () => server.stop();
    const db = await createDatabase(server.url);
    return {
      url: db.url,
      kind: 'embedded',
      close: async () => {
        try {
          await db.drop();
        } finally {
          await server.stop();
          await rm(dataDir, { recursive: true, force: true });
        }
      },
    };
  } catch (err) {
    await stopServer().catch(() => {});
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
}

/** A connection string without its password, for messages. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable DATABASE_URL>';
  }
}
