import { readFileSync } from 'node:fs';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import * as schema from '../../drizzle/schema.ts';

/** The drizzle handle the domain code works with. */
export type Db = ReturnType<typeof drizzle<typeof schema>>;
/** A transaction handle: the same API as `Db`, scoped to one transaction. */
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];
/** Either one: verbs that only write take this so callers can compose them into a transaction. */
export type DbOrTx = Db | Tx;

export interface Database {
  sql: postgres.Sql;
  db: Db;
  close(): Promise<void>;
}

/**
 * How a pool behaves when PostgreSQL goes away. postgres.js defaults wait 30 s for a connection
 * and back off by 3^n/100 s per failed connection, counted across the whole pool: a restart that
 * closes 32 connections at once left every reconnect 10–20 s away. Here a connection attempt
 * gives up after 5 s (a request waiting on it still answers well inside its 10 s bound) and
 * reconnects are at most 1 s apart, so work resumes within about a second of the server's return.
 */
export const RECONNECT = {
  connect_timeout: 5,
  backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1) * (0.5 + Math.random() / 2),
  // Probes of an idle connection whose peer vanished without a FIN (a failover, a cut link).
  keep_alive: 10,
} as const;

/** Opens a postgres.js pool and a drizzle handle over it. */
export function createDatabase(url: string, options: { max?: number; connectTimeoutSeconds?: number } = {}): Database {
  const sql = postgres(url, {
    max: options.max ?? 10,
    onnotice: () => {},
    ...RECONNECT,
    connect_timeout: options.connectTimeoutSeconds ?? RECONNECT.connect_timeout,
    // drizzle() below sets this client to hand timestamps back as text (it maps them itself);
    // raw rows are mapped the same way by db/rows.ts. jsonb comes back parsed.
  });
  const db = drizzle(sql, { schema });
  return { sql, db, close: () => sql.end({ timeout: 5 }) };
}

/** The SQLSTATE of a database error, whether drizzle wrapped it or not. */
export function pgErrorCode(error: unknown): string | undefined {
  const e = error as { code?: unknown; cause?: { code?: unknown } };
  const code = e?.code ?? e?.cause?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * True when the installed postgres.js carries patches/postgres+3.4.9.patch (applied by
 * `npm install` through patch-package). Unpatched, a connection that dies under a reserved
 * handle or between a queued write and its flush throws from a timer and kills the process
 * (porsager/postgres#1208); the relay warns at boot rather than refusing to start.
 */
export function isDriverPatched(): boolean {
  try {
    const index = new URL(import.meta.resolve('postgres'));
    const files = [index, new URL('./connection.js', index)];
    return files.every((file) => readFileSync(file, 'utf8').includes('asyncrelay patch'));
  } catch {
    return false;
  }
}
