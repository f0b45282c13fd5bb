/**
 * Throw-away databases for one bench run: each is `relay_bench_<random>` on the
 * server of DATABASE_URL when it is set, otherwise on an embedded PostgreSQL in a
 * temporary directory (the same path the relay itself takes when unconfigured).
 * A run creates one per phase on the same server and drops each when its phase
 * ends, so no phase inherits another's rows, jobs or bloat.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { log } from './children.ts';

export interface BenchDatabase {
  name: string;
  url: string;
  /** drops the database (ending any session left on it); safe to call more than once */
  drop: () => Promise<void>;
}

export interface BenchServer {
  kind: 'external' | 'embedded';
  /** a connection to the server's maintenance database (reads pg_stat_activity) */
  admin: postgres.Sql;
  /** creates a fresh, empty `relay_bench_<random>` */
  createDatabase: () => Promise<BenchDatabase>;
  /** drops every database not dropped yet, then lets go of the server (stops the embedded one) */
  close: () => Promise<void>;
}

/** Databases on the server behind `serverUrl`, through one admin connection. */
function databasesOn(serverUrl: string) {
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  const open = new Set<BenchDatabase>();

  async function createDatabase(): Promise<BenchDatabase> {
    const name = `relay_bench_${randomBytes(6).toString('hex')}`;
    try {
      await admin.unsafe(`create database "${name}"`);
    } catch (err) {
      throw new Error(`cannot create the bench database on ${redact(serverUrl)}: ${(err as Error).message}`);
    }
    const url = new URL(serverUrl);
    url.pathname = `/${name}`;
    log(`database ${name} created`);
    let dropped: Promise<void> | undefined;
    const db: BenchDatabase = {
      name,
      url: url.toString(),
      drop: () =>
        (dropped ??= (async () => {
          // WITH (FORCE) ends sessions a killed relay may have left behind (PostgreSQL ≥ 13).
          await admin.unsafe(`drop database if exists "${name}" with (force)`);
          open.delete(db);
          log(`database ${name} dropped`);
        })().catch((err: unknown) => {
          dropped = undefined; // let the final cleanup try again
          throw err;
        })),
    };
    open.add(db);
    return db;
  }

  async function dropAll(): Promise<void> {
    try {
      for (const db of [...open]) {
        try {
          await db.drop();
        } catch (err) {
          log(`cannot drop database ${db.name}: ${(err as Error).message}`);
        }
      }
    } finally {
      await admin.end({ timeout: 5 });
    }
  }

  return { admin, createDatabase, dropAll };
}

export async function openBenchServer(): Promise<BenchServer> {
  const external = process.env.DATABASE_URL;
  if (external) {
    const server = databasesOn(external);
    return { kind: 'external', admin: server.admin, createDatabase: server.createDatabase, close: server.dropAll };
  }
  // Loaded only here, so a run against DATABASE_URL does not depend on the embedded module.
  const { startEmbeddedPostgres } = await import('../src/db/embedded.ts');
  const dataDir = await mkdtemp(join(tmpdir(), 'relay-bench-pg-'));
  log(`DATABASE_URL unset: starting embedded PostgreSQL in ${dataDir}`);
  try {
    // PostgreSQL's routine LOG lines (checkpoints…) would only bury the bench's progress.
    const pgLog = (line: string) => {
      if (/error|fatal|panic|warning|ready|initialising/i.test(line)) log('[embedded-pg]', line);
    };
    const pg = await startEmbeddedPostgres({ dataDir, log: pgLog });
    const server = databasesOn(pg.url);
    return {
      kind: 'embedded',
      admin: server.admin,
      createDatabase: server.createDatabase,
      close: async () => {
        try {
          await server.dropAll();
        } finally {
          await pg.stop();
          await rm(dataDir, { recursive: true, force: true });
        }
      },
    };
  } catch (err) {
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
