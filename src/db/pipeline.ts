import type postgres from 'postgres';

/** One SQL statement with its driver-ready parameters. */
export interface Statement {
  text: string;
  params: unknown[];
}

export type Row = Record<string, unknown>;

/** A drizzle query builder as a statement (its `toSQL()` gives driver-ready parameters). */
export function statementOf(query: { toSQL(): { sql: string; params: unknown[] } }): Statement {
  const { sql, params } = query.toSQL();
  return { text: sql, params };
}

/*
 * Why pipelining: on these machines a round trip to PostgreSQL costs far more than the SQL it
 * carries, and a task's life is a handful of small transactions. Sending BEGIN, the statements
 * and COMMIT back to back on one connection makes a transaction one round trip (postgres.js
 * coalesces writes issued in the same tick). If a statement fails, PostgreSQL aborts the
 * transaction and the trailing COMMIT becomes a rollback, so nothing partial is ever committed.
 */

async function pipelined(conn: postgres.ReservedSql, statements: Statement[]): Promise<Row[][]> {
  return Promise.all(statements.map((s) => conn.unsafe(s.text, s.params as postgres.ParameterOrJSON<never>[], { prepare: true }) as unknown as Promise<Row[]>));
}

/** The longest a transaction waits for a connection of its own (a statement outside one fails in ~5 s too). */
const RESERVE_TIMEOUT_MS = 5_000;

/**
 * A connection for a transaction, or a CONNECT_TIMEOUT (answered 503) after RESERVE_TIMEOUT_MS.
 * While the database is down, postgres.js fails only one waiting reservation per failed connection
 * attempt and keeps the rest queued: without a bound they wait as long as the outage. One that
 * arrives after its caller gave up goes straight back to the pool.
 */
async function reserve(sql: postgres.Sql): Promise<postgres.ReservedSql> {
  const reserving = sql.reserve();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`no database connection within ${RESERVE_TIMEOUT_MS / 1000} s`), { code: 'CONNECT_TIMEOUT' })), RESERVE_TIMEOUT_MS);
  });
  try {
    return await Promise.race([reserving, timeout]);
  } catch (error) {
    reserving.then((conn) => conn.release(), () => {});
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

async function inTransaction<T>(sql: postgres.Sql, work: (conn: postgres.ReservedSql) => Promise<T>): Promise<T> {
  const conn = await reserve(sql);
  try {
    return await work(conn);
  } catch (error) {
    // Harmless when the pipelined COMMIT already ended the transaction (a warning, no error).
    await conn.unsafe('rollback').catch(() => {});
    throw error;
  } finally {
    conn.release();
  }
}

const BEGIN: Statement = { text: 'begin', params: [] };
const COMMIT: Statement = { text: 'commit', params: [] };

/**
 * Statements for one transaction, and optionally more that depend on their results: `after` gets
 * the rows of `statements` and returns what to run next, before the commit (a second round trip).
 * (Not named `then`: a plan returned from an async function would be taken for a promise.)
 */
export interface Plan {
  statements: Statement[];
  after?: (results: Row[][]) => Promise<Statement[]> | Statement[];
}

/** Several plans as one: their statements in order, each `after` fed with its own statements' rows. */
export function combinePlans(...plans: Plan[]): Plan {
  if (plans.every((p) => !p.after)) return { statements: plans.flatMap((p) => p.statements) };
  return {
    statements: plans.flatMap((p) => p.statements),
    after: async (results) => {
      const next: Statement[] = [];
      let at = 0;
      for (const plan of plans) {
        const own = results.slice(at, (at += plan.statements.length));
        if (plan.after) next.push(...(await plan.after(own)));
      }
      return next;
    },
  };
}

/**
 * Statements by name, for one transaction: each entry is one statement or several (a statement
 * with its job, folded into one or not), and its rows are those of its first statement. Results
 * come back under the same names, so no caller reads `results[2][0]`.
 */
export type Steps<K extends string> = Record<K, Statement | Statement[]>;
export type RowsOf<K extends string> = Record<K, Row[]>;

/** The statements of `steps` in order, and how to name the rows they return. */
function flatten<K extends string>(steps: Steps<K>): { statements: Statement[]; name: (results: Row[][]) => RowsOf<K> } {
  const statements: Statement[] = [];
  const firsts: Array<[K, number]> = [];
  for (const [key, step] of Object.entries(steps) as Array<[K, Statement | Statement[]]>) {
    const list = Array.isArray(step) ? step : [step];
    firsts.push([key, list.length > 0 ? statements.length : -1]);
    statements.push(...list);
  }
  return {
    statements,
    name: (results) => Object.fromEntries(firsts.map(([key, at]) => [key, at < 0 ? [] : results[at]])) as RowsOf<K>,
  };
}

/**
 * Runs a plan as one transaction; returns the rows of its first statement (the change that its
 * jobs follow).
 */
export async function runPlan(sql: postgres.Sql, plan: Plan): Promise<Row[]> {
  const { statements, after } = plan;
  if (!after) return (await transactAll(sql, statements))[0];
  return inTransaction(sql, async (conn) => {
    const results = (await pipelined(conn, [BEGIN, ...statements])).slice(1);
    await pipelined(conn, [...(await after(results)), COMMIT]);
    return results[0];
  });
}

/** Runs the named statements as one transaction in one round trip; returns each one's rows by name. */
export async function transact<K extends string>(sql: postgres.Sql, steps: Steps<K>): Promise<RowsOf<K>> {
  const { statements, name } = flatten(steps);
  return name(await transactAll(sql, statements));
}

async function transactAll(sql: postgres.Sql, statements: Statement[]): Promise<Row[][]> {
  if (statements.length === 1) return [(await sql.unsafe(statements[0].text, statements[0].params as never[], { prepare: true })) as unknown as Row[]];
  return inTransaction(sql, async (conn) => (await pipelined(conn, [BEGIN, ...statements, COMMIT])).slice(1, -1));
}

/**
 * What a `withLock` decision runs under the lock, and what it makes of the rows. A decision may
 * take one of several shapes (its names are not checked against `done`'s: keep them together).
 */
export interface Decision<T> {
  run: Steps<string>;
  done: (rows: RowsOf<string>) => T;
}

/** A decision that writes nothing. */
export const nothing = <T>(value: T): Decision<T> => ({ run: {}, done: () => value });

/**
 * Lock-then-decide in two round trips: runs `lock` (a SELECT … FOR UPDATE) in a new transaction,
 * hands its rows to `decide`, then runs what `decide` returns and commits. Everything `decide`
 * writes is based on rows no one else can change meanwhile, so the writes need no second guess.
 */
export async function withLock<T>(sql: postgres.Sql, lock: Statement, decide: (locked: Row[]) => Promise<Decision<T>> | Decision<T>): Promise<T> {
  return inTransaction(sql, async (conn) => {
    const [, locked] = await pipelined(conn, [BEGIN, lock]);
    const { run, done } = await decide(locked);
    const { statements, name } = flatten(run);
    const results = await pipelined(conn, [...statements, COMMIT]);
    return done(name(results.slice(0, -1)));
  });
}
