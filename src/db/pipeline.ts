import type { JobInsert, PgBoss, SendOptions } from 'pg-boss';
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

/**
 * The statement pg-boss builds for a job insert, captured through its `db` adapter option instead
 * of executed, so it can ride in our pipelined transaction. pg-boss builds it (queue defaults,
 * NOTIFY for immediate jobs); we only choose when and on which connection it runs. `rows` is what
 * the capture answers in place of the database.
 */
async function captureJobInsert(name: string, rows: Row[], run: (db: { executeSql(text: string, values?: unknown[]): Promise<{ rows: Row[] }> }) => Promise<unknown>): Promise<Statement> {
  let captured: Statement | undefined;
  await run({
    async executeSql(text, values = []) {
      captured = { text, params: values };
      return { rows };
    },
  });
  if (!captured) throw new Error(`pg-boss produced no statement for ${name}`);
  return captured;
}

/** The statement of pg-boss's `send()`: one job. */
export function jobStatement(boss: PgBoss, name: string, data: object, options: SendOptions = {}): Promise<Statement> {
  // send() checks that its insert returned the job's row.
  return captureJobInsert(name, [{ id: null, start_after: new Date() }], (db) => boss.send(name, data, { ...options, db }));
}

/** The statement of pg-boss's `insert()`: many jobs of one queue in one INSERT. */
export function jobsStatement(boss: PgBoss, name: string, jobs: JobInsert[]): Promise<Statement> {
  return captureJobInsert(name, [], (db) => boss.insert(name, jobs, { db, returnId: true }));
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

async function inTransaction<T>(sql: postgres.Sql, work: (conn: postgres.ReservedSql) => Promise<T>): Promise<T> {
  const conn = await sql.reserve();
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

/** Runs `statements` as one transaction in one round trip; returns each statement's rows. */
export async function transact(sql: postgres.Sql, statements: Statement[]): Promise<Row[][]> {
  if (statements.length === 1) return [(await sql.unsafe(statements[0].text, statements[0].params as never[], { prepare: true })) as unknown as Row[]];
  return inTransaction(sql, async (conn) => (await pipelined(conn, [BEGIN, ...statements, COMMIT])).slice(1, -1));
}

/**
 * Lock-then-decide in two round trips: runs `lock` (a SELECT … FOR UPDATE) in a new transaction,
 * hands its rows to `decide`, then runs what `decide` returns and commits. Everything `decide`
 * writes is based on rows no one else can change meanwhile, so the writes need no second guess.
 */
export async function withLock<T>(
  sql: postgres.Sql,
  lock: Statement,
  decide: (rows: Row[]) => Promise<{ statements: Statement[]; done: (results: Row[][]) => T }> | { statements: Statement[]; done: (results: Row[][]) => T },
): Promise<T> {
  return inTransaction(sql, async (conn) => {
    const [, locked] = await pipelined(conn, [BEGIN, lock]);
    const { statements, done } = await decide(locked);
    const results = await pipelined(conn, [...statements, COMMIT]);
    return done(results.slice(0, -1));
  });
}

// pg-boss's job INSERT (version pinned by the lockfile) has this shape: CTEs `ins` and
// `notified` and a final SELECT that reads `notified` so its pg_notify runs. Checked on every
// call: if a pg-boss upgrade changes it, foldJob falls back to two statements in a transaction.
const JOB_SHAPE = /^\s*WITH\s+(ins\s+AS\s*\([\s\S]*\)\s*,\s*notified\s+AS\s*\([\s\S]*\))\s*SELECT id FROM ins WHERE \(SELECT count\(\*\) FROM notified\) >= 0\s*$/i;
const OWN_SHAPE = /^\s*with\s+([\s\S]*)\n\s*(select [^\n]*)\s*$/i;

const NOTIFY_SPLIT = /^([\s\S]*\))\s*,\s*notified\s+AS\s*\(\s*SELECT\s+([\s\S]*)\)$/i;
const NOTIFY_CALL = /pg_notify\(([\s\S]+),\s*'([\w./-]+)'\)\s*FROM ins WHERE start_after <= ([\w.]+\(\)) LIMIT 1\s*$/i;

/** A NOTIFY owed to pg-boss's workers, sent after the commit instead of inside it. */
export interface Wake {
  channelSql: string;
  queue: string;
}

/** The two ways a (statement, job) pair folds; null when the shapes are not the expected ones. */
interface Fold {
  /** pg-boss's NOTIFY kept inside the statement. */
  inline: string;
  /** pg-boss's NOTIFY taken out, to be sent after the commit. */
  deferred?: { text: string; wake: Wake };
  /** The pieces, for `foldJobWhere`: pg-boss's CTEs, ours and our final SELECT (parameters shifted). */
  parts: { jobCtes: string; ctes: string; select: string };
}

// Both texts are constants (one per queue, one per statement kind): each pair is parsed once.
const folds = new Map<string, Fold | null>();

function foldOf(statement: Statement, job: Statement): Fold | null {
  const key = `${job.text}\0${statement.text}`;
  const known = folds.get(key);
  if (known !== undefined) return known;
  const jobParts = JOB_SHAPE.exec(job.text);
  const ownParts = OWN_SHAPE.exec(statement.text);
  let fold: Fold | null = null;
  if (jobParts && ownParts && job.params.length === 1 && !/\$[2-9]/.test(job.text)) {
    const ctes = shiftParams(ownParts[1]);
    const select = shiftParams(ownParts[2]);
    const split = NOTIFY_SPLIT.exec(jobParts[1]);
    const call = split && NOTIFY_CALL.exec(split[2]);
    fold = {
      inline: `WITH ${jobParts[1]}, ${ctes}\n  select own.* from (${select}) own, (SELECT count(*) FROM notified) job_notified`,
      deferred: split && call ? { text: `WITH ${split[1]}, ${ctes}\n  ${select}`, wake: { channelSql: call[1], queue: call[2] } } : undefined,
      parts: { jobCtes: jobParts[1], ctes, select },
    };
  }
  if (folds.size < 256) folds.set(key, fold);
  return fold;
}

/** Our parameters move up by one: the job's own parameter is $1 in the folded statement. */
function shiftParams(sql: string): string {
  return sql.replace(/\$(\d+)/g, (_, n: string) => `$${Number(n) + 1}`);
}

/**
 * One statement instead of a transaction of two: `statement` (one of ours, `with … select …`)
 * and a pg-boss job INSERT become one WITH query, atomic on its own, so the write and the job
 * that follows it cost one statement and no BEGIN/COMMIT. Data-modifying CTEs always run to
 * completion; pg-boss's NOTIFY is kept by reading its `notified` CTE in the final SELECT.
 */
export function foldJob(statement: Statement, job: Statement): Statement[] {
  const fold = foldOf(statement, job);
  return fold ? [{ text: fold.inline, params: [...job.params, ...statement.params] }] : [statement, job];
}

const JOB_ROWS = 'json_to_recordset($1::text::json)';
const filteredFolds = new WeakMap<Fold, Map<string, string | null>>();

/**
 * Like `foldJob`, for a job INSERT of several rows of which only some should be written: `keep`
 * is a SQL condition on `j` (one element of pg-boss's job array, as json) that may read the CTEs
 * of `statement`, which come first here. A callback statement uses it to write the onComplete
 * job of the callbacks it accepted, and none for unknown, duplicate or rejected ones. Falls back
 * to `foldJob` (every row written) when a shape is not the expected one.
 */
export function foldJobWhere(statement: Statement, job: Statement, keep: string): Statement[] {
  const fold = foldOf(statement, job);
  if (!fold) return [statement, job];
  let byKeep = filteredFolds.get(fold);
  if (!byKeep) filteredFolds.set(fold, (byKeep = new Map()));
  let text = byKeep.get(keep);
  if (text === undefined) {
    const { jobCtes, ctes, select } = fold.parts;
    const rows = `json_to_recordset((select coalesce(json_agg(j), '[]'::json) from json_array_elements($1::text::json) j where ${keep}))`;
    text = jobCtes.split(JOB_ROWS).length === 2
      ? `WITH ${ctes}, ${jobCtes.replace(JOB_ROWS, rows)}\n  select own.* from (${select}) own, (SELECT count(*) FROM notified) job_notified`
      : null;
    byKeep.set(keep, text);
  }
  return [{ text: text ?? fold.inline, params: [...job.params, ...statement.params] }];
}

/**
 * Like `foldJob`, but the job's NOTIFY is taken out of the statement and handed back, to be sent
 * after the commit by `createWaker`. A NOTIFY inside a writing transaction holds PostgreSQL's
 * database-wide notification lock through that transaction's commit, which serialised every
 * task creation (measured here: pg-boss inserts 1818/s with their NOTIFY, 3834/s without).
 * Falls back to `foldJob` (NOTIFY inside) when the job's shape is not the expected one.
 */
export function foldJobDeferringNotify(statement: Statement, job: Statement): { statements: Statement[]; wake?: Wake } {
  const deferred = foldOf(statement, job)?.deferred;
  if (!deferred) return { statements: foldJob(statement, job) };
  return { statements: [{ text: deferred.text, params: [...job.params, ...statement.params] }], wake: deferred.wake };
}

/**
 * Sends deferred pg-boss wake-ups: at most one NOTIFY in flight per queue, and one more after it
 * if work arrived meanwhile, so a burst of commits costs a handful of NOTIFYs, not one each.
 * Workers that miss one still poll (the worker's polling interval), so a lost wake-up delays,
 * never loses, a job.
 */
export function createWaker(sql: postgres.Sql, onError: (error: unknown) => void): (wake: Wake | undefined) => void {
  const state = new Map<string, { inFlight: boolean; again: boolean }>();
  const send = (wake: Wake, entry: { inFlight: boolean; again: boolean }) => {
    entry.inFlight = true;
    entry.again = false;
    sql
      .unsafe(`select pg_notify(${wake.channelSql}, $1)`, [wake.queue], { prepare: true })
      .catch(onError)
      .finally(() => {
        entry.inFlight = false;
        if (entry.again) send(wake, entry);
      });
  };
  return (wake) => {
    if (!wake) return;
    const key = `${wake.channelSql}|${wake.queue}`;
    let entry = state.get(key);
    if (!entry) state.set(key, (entry = { inFlight: false, again: false }));
    if (entry.inFlight) entry.again = true;
    else send(wake, entry);
  };
}
