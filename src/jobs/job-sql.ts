import type { JobInsert, PgBoss } from 'pg-boss';
import type { Logger } from 'pino';
import type postgres from 'postgres';
import type { Plan, Row, Statement } from '../db/pipeline.ts';
import { catalog, type PayloadOf, type QueueName } from './queues.ts';

/*
 * The one place that knows the SQL pg-boss writes. A job is enqueued inside our own statements
 * (a task's write and the job that follows it commit together, in one statement where possible):
 * pg-boss builds its INSERT through its `db` adapter option, we capture the text instead of
 * running it, and fold it into our statement as CTEs. That couples us to the shape of pg-boss's
 * SQL, so the version is pinned exactly (package.json), every shape this file relies on is
 * checked at boot (`checkJobShapes`) and in test/integration/fold-job.test.ts, and every fold has
 * a fallback that stays correct, only slower, when a shape does not match.
 */

type Adapter = { executeSql(text: string, values?: unknown[]): Promise<{ rows: Row[] }> };

/**
 * pg-boss's statement for `run`, captured instead of executed. `rows` is what the capture answers
 * in place of the database. A call that issues no statement, or more than one, is refused: a
 * second statement would be silently dropped (say, a queue lookup a future release adds).
 */
async function capture(name: string, rows: Row[], run: (db: Adapter) => Promise<unknown>): Promise<Statement> {
  const captured: Statement[] = [];
  await run({
    async executeSql(text, values = []) {
      captured.push({ text, params: values });
      return { rows };
    },
  });
  if (captured.length !== 1) throw new Error(`pg-boss issued ${captured.length} statements for one job insert into ${name}; expected exactly 1`);
  return captured[0];
}

/** When and how a job runs; its payload is typed by its queue (jobs/queues.ts). */
export interface JobOptions {
  /** pg-boss's job id (a uuid); given when the job must be found again (prompt delivery's spill). */
  id?: string;
  /** Seconds from now, or a moment. */
  startAfter?: number | Date;
  priority?: number;
  expireInSeconds?: number;
}

/** One job of queue Q: its payload and options. */
export type JobSpec<Q extends QueueName> = JobOptions & { data: PayloadOf<Q> };

/** The statement of pg-boss's `send()`: one job. */
export function jobStatement<Q extends QueueName>(boss: PgBoss, name: Q, data: PayloadOf<Q>, options: JobOptions = {}): Promise<Statement> {
  // send() checks that its insert returned the job's row.
  return capture(name, [{ id: null, start_after: new Date() }], (db) => boss.send(name, data as object, { ...options, db }));
}

/** The statement of pg-boss's `insert()`: many jobs of one queue in one INSERT. */
export function jobsStatement<Q extends QueueName>(boss: PgBoss, name: Q, jobs: JobSpec<Q>[]): Promise<Statement> {
  return capture(name, [], (db) => boss.insert(name, jobs as JobInsert[], { db, returnId: true }));
}

// pg-boss's job INSERT (12.38.0) is `WITH ins AS (…), notified AS (SELECT pg_notify(…) FROM ins
// WHERE start_after <= now LIMIT 1) SELECT id FROM ins WHERE (SELECT count(*) FROM notified) >= 0`,
// its rows read from json_to_recordset($1). Ours are `with … select …`.
const JOB_SHAPE = /^\s*WITH\s+(ins\s+AS\s*\([\s\S]*\)\s*,\s*notified\s+AS\s*\([\s\S]*\))\s*SELECT id FROM ins WHERE \(SELECT count\(\*\) FROM notified\) >= 0\s*$/i;
const OWN_SHAPE = /^\s*with\s+([\s\S]*)\n\s*(select [^\n]*)\s*$/i;
const NOTIFY_SPLIT = /^([\s\S]*\))\s*,\s*notified\s+AS\s*\(\s*SELECT\s+([\s\S]*)\)$/i;
const NOTIFY_CALL = /pg_notify\(([\s\S]+),\s*'([\w./-]+)'\)\s*FROM ins WHERE start_after <= ([\w.]+\(\)) LIMIT 1\s*$/i;
const JOB_ROWS = 'json_to_recordset($1::text::json)';

/** A NOTIFY owed to pg-boss's workers, sent after the commit instead of inside it. */
export interface Wake {
  channelSql: string;
  queue: string;
}

/** How a (statement, job) pair folds; null when a shape is not the expected one. */
interface Fold {
  /** pg-boss's NOTIFY kept inside the statement. */
  inline: string;
  /** pg-boss's NOTIFY taken out, to be sent after the commit. */
  deferred?: { text: string; wake: Wake };
  /** The pieces, for conditional folds: pg-boss's CTEs, ours and our final SELECT (parameters shifted). */
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
 * and a pg-boss job INSERT become one WITH query, atomic on its own. Data-modifying CTEs always
 * run to completion, so the job is written whatever the statement changed: only for statements
 * whose change is certain (the caller holds the row lock and checked the row). pg-boss's NOTIFY
 * is kept by reading its `notified` CTE in the final SELECT. Falls back to two statements.
 */
export function foldJob(statement: Statement, job: Statement): Statement[] {
  const fold = foldOf(statement, job);
  return fold ? [{ text: fold.inline, params: [...job.params, ...statement.params] }] : [statement, job];
}

const filteredFolds = new WeakMap<Fold, Map<string, string | null>>();

/** The folded text that writes only the job rows for which `keep` holds; null when the shape does not allow it. */
function filteredFold(fold: Fold, keep: string): string | null {
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
  return text;
}

/**
 * Which jobs a statement keeps, said twice: `sql` is a condition on `j` (one element of pg-boss's
 * job array, as json) that may read the statement's CTEs, which come first in the fold; `keeps`
 * is the same test in code, on the statement's returned rows, for the fallback.
 */
export interface JobKeep {
  sql: string;
  keeps: (rows: Row[]) => (job: { data: unknown }) => boolean;
}

/** Jobs of one queue, to be written only for the rows a statement actually changed. */
export interface ConditionalJobs<Q extends QueueName> {
  queue: Q;
  jobs: JobSpec<Q>[];
  keep: JobKeep;
}

/**
 * `statement` with the jobs that follow only what it changed: a dispatch outcome whose
 * compare-and-set lost to a callback must not leave an onComplete job behind (it would send a
 * second webhook). One statement when the shapes fold; otherwise the statement first and the
 * kept jobs in a second round trip of the same transaction.
 */
export async function foldJobsWhere<Q extends QueueName>(boss: PgBoss, statement: Statement, conditional: ConditionalJobs<Q>): Promise<Plan> {
  const { queue, jobs, keep } = conditional;
  const job = await jobsStatement(boss, queue, jobs);
  const fold = foldOf(statement, job);
  const text = fold && filteredFold(fold, keep.sql);
  if (text) return { statements: [{ text, params: [...job.params, ...statement.params] }] };
  return {
    statements: [statement],
    after: async ([rows]) => {
      const kept = jobs.filter(keep.keeps(rows));
      return kept.length > 0 ? [await jobsStatement(boss, queue, kept)] : [];
    },
  };
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

/**
 * Checks at boot that pg-boss's job INSERT still has every shape the folds rely on, with a
 * statement of the same `with … select …` form as ours. Returns the problems found (also logged):
 * each one means a fold falls back (correct, slower) until pg-boss and this file agree again.
 */
export async function checkJobShapes(boss: PgBoss, queue: QueueName, log: Pick<Logger, 'warn'>): Promise<string[]> {
  const probe: Statement = { text: `with probe as (select $1::int as n)\n  select n from probe`, params: [1] };
  const job = await capture(queue, [], (db) => boss.insert(queue, [{ data: { probe: true } }], { db, returnId: true }));
  const fold = foldOf(probe, job);
  const problems: string[] = [];
  if (!fold) problems.push('the job INSERT no longer folds into our statements (two statements per write)');
  else {
    if (!fold.deferred) problems.push("the job INSERT's NOTIFY can no longer be deferred past the commit (creates serialise on the notification lock)");
    if (!filteredFold(fold, 'true')) problems.push('the job rows can no longer be filtered in SQL (conditional jobs take a second round trip)');
  }
  for (const problem of problems) log.warn({ queue, pgBoss: 'fold' }, `pg-boss shape changed: ${problem}`);
  return problems;
}

/** Creates (or updates) every queue of the catalog; run at boot, before any send, so `send` never misses pg-boss's cache. */
export async function createQueues(boss: PgBoss): Promise<void> {
  const existing = new Set((await boss.getQueues()).map((q) => q.name));
  for (const [name, { options }] of Object.entries(catalog)) {
    if (existing.has(name)) await boss.updateQueue(name, options);
    else await boss.createQueue(name, options);
  }
}

/**
 * What the domain may do with jobs, without knowing pg-boss: build the statement that enqueues
 * them (to run inside its own transaction), fold conditional jobs into a statement, wake workers
 * after a commit, and bring a delayed job forward.
 */
export interface Jobs {
  /** One job's INSERT, for a transaction of ours. */
  send<Q extends QueueName>(queue: Q, data: PayloadOf<Q>, options?: JobOptions): Promise<Statement>;
  /** Many jobs of one queue in one INSERT. */
  insert<Q extends QueueName>(queue: Q, jobs: JobSpec<Q>[]): Promise<Statement>;
  /** `statement` with jobs written only for what it changed (see `foldJobsWhere`). */
  where<Q extends QueueName>(statement: Statement, conditional: ConditionalJobs<Q>): Promise<Plan>;
  /** Sends a wake-up deferred out of a commit (see `foldJobDeferringNotify`). */
  wake(wake: Wake | undefined): void;
  /** Makes a delayed job due now (a job already started or done is left as it is). */
  bringForward(queue: QueueName, id: string): Promise<void>;
}

export function createJobs(boss: PgBoss, sql: postgres.Sql, onWakeError: (error: unknown) => void): Jobs {
  return {
    send: (queue, data, options) => jobStatement(boss, queue, data, options),
    insert: (queue, jobs) => jobsStatement(boss, queue, jobs),
    where: (statement, conditional) => foldJobsWhere(boss, statement, conditional),
    wake: createWaker(sql, onWakeError),
    async bringForward(queue, id) {
      await boss.update(queue, undefined, { id, startAfter: 0 });
    },
  };
}
