/**
 * `npm run bench -- --waiting 100000` — what waiting tasks cost (DESIGN §8: "a waiting task
 * holds no worker, no memory and no connection … a million waiting tasks must cost nothing but
 * disk"). The same measurement on two fresh databases, an empty one and one holding N waiting
 * tasks, each with the relay as `npm start` runs it, started after the database is ready:
 *
 * - the relay's idle CPU over `--idle-s` (and its database sessions'), RSS before and after;
 * - `--ops` creates one at a time, each called back by the fake provider after `--delay-ms`:
 *   create latency, how long the relay takes to answer a callback, callback → webhook;
 * - `GET /v1/tasks`: the first page, a status every task has, a status no task has.
 *
 * The waiting tasks are copies of a real one: the relay creates a task whose provider never
 * calls back, and once it is `waiting` its row, its timeline and its pg-boss jobs (the completed
 * dispatch, the pending deadline) are copied N times in SQL, each copy with its own id (UUID v7,
 * created over the last N ms), callback hash and deadline. Prints one JSON line.
 */
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { request } from 'undici';
import { log, now, onCleanup, sleep } from './children.ts';
import { cpuMeter } from './cpu.ts';
import { openBenchServer, type BenchDatabase } from './database.ts';
import { N_PLACEHOLDER } from './load.ts';
import type { BenchOptions } from './options.ts';
import { startFakes, type Fakes } from './phases.ts';
import { generateKeys, startRelay, type Relay, type RelayKeys } from './relay.ts';
import { percentile, round } from './stats.ts';

/** Copies per statement: a batch commits in well under a second and keeps the WAL of one modest. */
const FILL_BATCH = 20_000;
/** After start-up, pg-boss's first maintenance and the JIT settle before the idle measurement. */
const SETTLE_MS = 5_000;
/** Creates sent before the measured ones, so that cold code is not what the latency shows. */
const WARMUP_OPS = 50;
const LIST_REQUESTS = 50;

interface Ctx {
  root: string;
  opts: BenchOptions;
  keys: RelayKeys;
  fakes: Fakes;
  body: (n: number, hold: boolean) => string;
  admin: postgres.Sql;
  /** the relay is started twice on the database it filled: the second must open what the first sealed */
  relayEnv: Record<string, string>;
}

const stats = (ms: number[]) => ({ p50Ms: round(percentile(ms, 50)), p99Ms: round(percentile(ms, 99)) });

async function timed(fn: () => Promise<void>): Promise<number> {
  const start = now();
  await fn();
  return now() - start;
}

async function create(relay: Relay, ctx: Ctx, n: number, hold: boolean): Promise<string> {
  const res = await request(`${relay.origin}/v1/tasks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': ctx.keys.apiKey },
    body: ctx.body(n, hold),
  });
  const text = await res.body.text();
  if (res.statusCode !== 201) throw new Error(`create answered ${res.statusCode}: ${text.slice(0, 200)}`);
  return (JSON.parse(text) as { task: { id: string } }).task.id;
}

/** The column list of a table, with the expression each copy takes (timestamps moved back by `c.delta`). */
async function copyColumns(sql: postgres.Sql, schema: string, table: string, overrides: Record<string, string>, source: string) {
  const cols = await sql<{ column_name: string; data_type: string; is_generated: string; identity_generation: string | null }[]>`
    select column_name, data_type, is_generated, identity_generation from information_schema.columns
    where table_schema = ${schema} and table_name = ${table} order by ordinal_position`;
  const kept = cols.filter((c) => c.is_generated !== 'ALWAYS' && c.identity_generation !== 'ALWAYS');
  const names = kept.map((c) => `"${c.column_name}"`).join(', ');
  const exprs = kept
    .map((c) => overrides[c.column_name] ?? (c.data_type === 'timestamp with time zone' ? `${source}."${c.column_name}" - c.delta` : `${source}."${c.column_name}"`))
    .join(', ');
  return { names, exprs };
}

/** N copies of the waiting task `sampleId`: its row, its events and its jobs. */
async function fillWaiting(db: BenchDatabase, sampleId: string, count: number) {
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    const [{ schema }] = await sql<{ schema: string }[]>`select table_schema as schema from information_schema.tables where table_name = 'job' and table_schema like 'pgboss%' limit 1`;
    const taskCols = await copyColumns(sql, 'public', 'tasks', {
      id: 'c.id',
      callback_hash: "encode(sha256(uuid_send(gen_random_uuid())), 'hex')",
      metadata: `jsonb_build_object('n', 'waiting-' || c.g)`,
    }, 's');
    const eventCols = await copyColumns(sql, 'public', 'task_events', { task_id: 'c.id' }, 'e');
    const jobCols = await copyColumns(sql, schema, 'job', {
      id: 'gen_random_uuid()',
      data: `jsonb_set(j.data, '{taskId}', to_jsonb(c.id::text))`,
    }, 'j');
    const jobs = await sql.unsafe(`select count(*)::int as n from "${schema}".job where data->>'taskId' = $1`, [sampleId]);
    log(`fill: copying task ${sampleId} with its ${jobs[0].n} pg-boss jobs, ${count} times`);
    for (let first = 1; first <= count; first += FILL_BATCH) {
      const last = Math.min(count, first + FILL_BATCH - 1);
      await sql.begin(async (tx) => {
        // Copy g was created (count - g) ms before the sample; its id is a UUID v7 of that moment.
        await tx.unsafe('create temp table c (g int, delta interval, id uuid) on commit drop');
        await tx.unsafe(
          `insert into c
           select g, delta,
             encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing
               substring(int8send((extract(epoch from s.created_at - delta) * 1000)::bigint) from 3) from 1 for 6), 52, 1), 53, 1), 'hex')::uuid
           from generate_series($1::int, $2::int) g
           cross join lateral (select ($3::int - g) * interval '1 millisecond' as delta) d
           cross join tasks s where s.id = $4`,
          [first, last, count, sampleId],
        );
        await tx.unsafe(`insert into tasks (${taskCols.names}) select ${taskCols.exprs} from c cross join tasks s where s.id = $1`, [sampleId]);
        await tx.unsafe(`insert into task_events (${eventCols.names}) select ${eventCols.exprs} from c cross join task_events e where e.task_id = $1`, [sampleId]);
        await tx.unsafe(`insert into "${schema}".job (${jobCols.names}) select ${jobCols.exprs} from c cross join "${schema}".job j where j.data->>'taskId' = $1`, [sampleId]);
      });
    }
    await sql`vacuum analyze tasks`;
    await sql`vacuum analyze task_events`;
    await sql.unsafe(`vacuum analyze "${schema}".job`);
    // What the relay will find: every copy waiting, each with a deadline job of its own still to run.
    const [tasks] = await sql<{ waiting: number; hashes: number }[]>`
      select count(*) filter (where status = 'waiting')::int as waiting, count(distinct callback_hash)::int as hashes from tasks`;
    const [deadlines] = await sql.unsafe(
      `select count(distinct data->>'taskId')::int as tasks, min(start_after) as first from "${schema}".job where name = 'task.deadline' and state = 'created'`,
    );
    return { waitingTasks: tasks.waiting, callbackHashes: tasks.hashes, deadlineJobs: deadlines.tasks as number, firstDeadline: (deadlines.first as Date).toISOString() };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** A real waiting task: created through the API, dispatched, its provider holding the callback. */
async function sampleWaitingTask(ctx: Ctx, db: BenchDatabase): Promise<string> {
  const relay = await startRelay(ctx.root, db.url, ctx.keys, 'all', ctx.relayEnv);
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    const id = await create(relay, ctx, -1, true);
    for (let i = 0; i < 200; i++) {
      const [row] = await sql<{ status: string }[]>`select status from tasks where id = ${id}`;
      if (row?.status === 'waiting') return id;
      await sleep(50);
    }
    throw new Error(`the sample task ${id} never became waiting`);
  } finally {
    await sql.end({ timeout: 5 });
    await relay.stop();
  }
}

async function measure(ctx: Ctx, db: BenchDatabase) {
  await ctx.fakes.reset();
  const startedAt = now();
  const relay = await startRelay(ctx.root, db.url, ctx.keys, 'all', ctx.relayEnv);
  try {
    const startupMs = Math.round(now() - startedAt);
    await sleep(SETTLE_MS);
    const rssBeforeMb = relay.rssNowMb();
    log(`idle: ${ctx.opts.idleS} s`);
    const meter = cpuMeter({ serverPid: relay.pid, admin: ctx.admin, database: db.name });
    await meter.start();
    await sleep(ctx.opts.idleS * 1000);
    const idle = await meter.stop();
    const rssIdleMb = relay.rssNowMb();

    log(`latency: ${WARMUP_OPS} + ${ctx.opts.ops} creates, one at a time`);
    for (let n = -WARMUP_OPS; n < 0; n++) await create(relay, ctx, n, false);
    const createMs: number[] = [];
    for (let n = 0; n < ctx.opts.ops; n++) createMs.push(await timed(async () => void (await create(relay, ctx, n, false))));
    for (let i = 0; i < 300 && (await ctx.fakes.count()).delivered < ctx.opts.ops; i++) await sleep(100);
    const report = await ctx.fakes.report();
    const measured = <T extends [number, ...unknown[]]>(rows: T[]) => rows.filter(([n]) => n >= 0);
    const sentAt = new Map(report.callbacks);
    const callbackToNotify = measured(report.deliveries.map(([n, at]) => [n, at] as [number, number]))
      .filter(([n]) => sentAt.has(n))
      .map(([n, at]) => at - sentAt.get(n)!);

    const list = async (query: string) => {
      const ms: number[] = [];
      for (let i = 0; i < LIST_REQUESTS; i++) {
        ms.push(
          await timed(async () => {
            const res = await request(`${relay.origin}/v1/tasks${query}`, { headers: { 'x-api-key': ctx.keys.apiKey } });
            await res.body.text();
            if (res.statusCode !== 200) throw new Error(`GET /v1/tasks${query} answered ${res.statusCode}`);
          }),
        );
      }
      return stats(ms);
    };
    const listFirstPage = await list('');
    const listAllWaiting = await list('?status=waiting');
    const listNoneFailed = await list('?status=failed');
    return {
      startupMs,
      idleRelayCpuPct: idle.serverCpuPct,
      idleDatabaseCpuPct: idle.databaseCpuPct,
      rssBeforeMb,
      rssIdleMb,
      rssAfterMb: relay.rssNowMb(),
      rssMaxMb: relay.rssMaxMb(),
      create: stats(createMs),
      callbackAnswer: stats(measured(report.callbackMs).map(([, ms]) => ms)),
      callbackToNotify: stats(callbackToNotify),
      delivered: measured(report.deliveries).length,
      listFirstPage,
      listStatusWaiting: listAllWaiting,
      listStatusFailed: listNoneFailed,
    };
  } finally {
    await relay.stop();
  }
}

export async function runWaiting(root: string, opts: BenchOptions): Promise<Record<string, unknown>> {
  const keys = generateKeys();
  const server = await openBenchServer();
  onCleanup(server.close);
  const fakes = await startFakes(root, opts.delayMs, keys.webhookSecret);
  const template = (hold: boolean) =>
    JSON.stringify({
      targetUrl: `http://127.0.0.1:${fakes.providerPort}/submit`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: { input: 'bench', webhook: '{asyncqueue_callback_url}', n: '__N__', ...(hold ? { hold: true } : {}) },
      onCompleteUrl: `http://127.0.0.1:${fakes.receiverPort}/hook`,
      metadata: { n: '__N__' },
    })
      .replace('"__N__"', N_PLACEHOLDER)
      .replace('__N__', N_PLACEHOLDER);
  const templates = { hold: template(true), call: template(false) };
  const ctx: Ctx = {
    root,
    opts,
    keys,
    fakes,
    admin: server.admin,
    relayEnv: { RELAY_ENCRYPTION_KEY: randomBytes(32).toString('base64') },
    body: (n, hold) => (hold ? templates.hold : templates.call).split(N_PLACEHOLDER).join(String(n)),
  };

  log('— empty database');
  const emptyDb = await server.createDatabase();
  const empty = await measure(ctx, emptyDb);
  await emptyDb.drop();

  log(`— ${opts.waiting} waiting tasks`);
  const db = await server.createDatabase();
  const sampleId = await sampleWaitingTask(ctx, db);
  const fillStart = now();
  const filled = await fillWaiting(db, sampleId, opts.waiting);
  const fillMs = now() - fillStart;
  log(`fill: ${opts.waiting} copies in ${Math.round(fillMs)} ms: ${JSON.stringify(filled)}`);
  const waiting = await measure(ctx, db);
  await db.drop();

  return {
    waiting: opts.waiting,
    idleS: opts.idleS,
    ops: opts.ops,
    delayMs: opts.delayMs,
    fillSeconds: round(fillMs / 1000, 1),
    filled,
    empty,
    withWaiting: waiting,
    database: server.kind,
    node: process.version,
  };
}
