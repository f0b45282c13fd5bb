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

/** Opens a postgres.js pool and a drizzle handle over it. */
export function createDatabase(url: string, options: { max?: number } = {}): Database {
  const sql = postgres(url, {
    max: options.max ?? 10,
    onnotice: () => {},
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
