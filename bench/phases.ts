/**
 * The measured phases (see bench/run.ts for their order). Each runs on a fresh database of its
 * own, starts its server, loads it for `--warmup-s` (excluded), runs ANALYZE (see `analyze`),
 * then loads it for `--seconds` with the same loader, clients and request bodies, and reads
 * where the CPU went meanwhile:
 * - floor: the bare hono + one INSERT server;
 * - relay creates: the whole relay (as `npm start` runs it), dispatching every task it creates
 *   to the fake provider, which holds its callback (a generation longer than the run);
 * - lifecycle: the whole relay, the provider calling back after `--delay-ms`, every task ending
 *   in a signed webhook; then a drain, after which every stored task must have had its webhook.
 */
import { join } from 'node:path';
import postgres from 'postgres';
import { forkReady, log, now, onCleanup, reply, sleep, stop } from './children.ts';
import { cpuMeter, type CpuProbes, type CpuShares } from './cpu.ts';
import type { BenchDatabase, BenchServer } from './database.ts';
import type { FakesReady, FakesReport } from './fakes.ts';
import type { FloorReady } from './floor.ts';
import { createLoader, type LoaderKind, type LoadResult, type LoadSpec } from './load.ts';
import type { BenchOptions } from './options.ts';
import { startRelay, type RelayKeys } from './relay.ts';
import { percentile, round, summarizeLifecycle, type StoredTask } from './stats.ts';

/** Warm-up creates are numbered from here up (negative: the fakes keep them out of the counts). */
const WARMUP_FIRST_N = -1_000_000_000;

export interface Fakes {
  providerPort: number;
  receiverPort: number;
  count: () => Promise<{ delivered: number; deliveredWarmup: number; submitted: number }>;
  report: () => Promise<FakesReport>;
  /** the fakes process's CPU so far, in ms */
  cpuMs: () => Promise<number>;
  /** forgets every task: the next phase's numbers start again at the warm-up's */
  reset: () => Promise<void>;
}

export async function startFakes(root: string, delayMs: number, webhookSecret: string): Promise<Fakes> {
  const { child, ready } = await forkReady<FakesReady>(
    join(root, 'bench/fakes.ts'),
    ['--delay-ms', String(delayMs)],
    { BENCH_WEBHOOK_SECRET: webhookSecret },
    15_000,
  );
  onCleanup(async () => void (await stop(child, 5_000)));
  return {
    providerPort: ready.providerPort,
    receiverPort: ready.receiverPort,
    count: () => reply(child, 'count', 10_000, { type: 'count' }),
    report: () => reply(child, 'report', 30_000, { type: 'report' }),
    cpuMs: async () => (await reply<{ ms: number }>(child, 'cpu', 10_000, { type: 'cpu' })).ms,
    reset: async () => void (await reply(child, 'reset', 10_000, { type: 'reset' })),
  };
}

/** What every phase needs. */
export interface PhaseContext {
  root: string;
  opts: BenchOptions;
  loader: LoaderKind;
  server: BenchServer;
  fakes: Fakes;
  keys: RelayKeys;
  /** the create body (see run.ts); `hold` asks the fake provider never to call back */
  bodyTemplate: (hold: boolean) => string;
}

/** The figures of one load run, as the JSON line shows them per phase. */
function loadFigures(r: LoadResult, cpu: CpuShares) {
  // What the machine did besides the loader, the server, its database sessions and the fakes:
  // PostgreSQL's background writers, and whatever else runs on a shared machine.
  const known = r.loaderCpuPct + (cpu.serverCpuPct ?? 0) + (cpu.databaseCpuPct ?? 0) + (cpu.fakesCpuPct ?? 0);
  return {
    seconds: r.seconds,
    okRps: r.okRps,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    maxMs: r.maxMs,
    ok: r.ok,
    errors: r.errors,
    loaderCpuPct: r.loaderCpuPct,
    ...cpu,
    otherCpuPct: cpu.machineCpuPct === null ? null : Math.round(Math.max(0, cpu.machineCpuPct - known) * 10) / 10,
  };
}

export type LoadFigures = ReturnType<typeof loadFigures>;

/**
 * Statistics for every table of the phase's database, as autovacuum gathers them within a minute
 * of a relay's start. A fresh database has none, and a statement a connection prepared while its
 * tables were empty keeps the plan it got then — measured: a sequential scan of tasks about 70
 * times a second, growing with the table — until an ANALYZE invalidates it. A phase of 10 s ends
 * before autovacuum's first pass (60 s), so without this the figures are those of a relay's first
 * minute, not of one that has been running (`--no-analyze` measures that first minute).
 */
async function analyze(db: BenchDatabase): Promise<void> {
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    await sql`analyze`;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Warm-up (then ANALYZE), then the measured run inside a CPU meter. */
async function drive(name: string, ctx: PhaseContext, db: BenchDatabase, spec: LoadSpec, probes: CpuProbes) {
  const loader = createLoader(ctx.loader, spec);
  try {
    if (ctx.opts.warmupS > 0) {
      const warm = await loader.run(ctx.opts.warmupS, WARMUP_FIRST_N);
      log(`${name}: warm-up ${warm.ok} created in ${warm.seconds} s${warm.errors ? `, ${warm.errors} errors (${warm.errorSample})` : ''}`);
    }
    if (ctx.opts.analyze) await analyze(db);
    const meter = cpuMeter(probes);
    await meter.start();
    const run = await loader.run(ctx.opts.seconds, 0);
    const cpu = await meter.stop();
    const figures = loadFigures(run, cpu);
    log(
      `${name}: ${run.ok} created in ${run.seconds} s = ${run.okRps}/s, p50 ${run.p50Ms} ms, p99 ${run.p99Ms} ms` +
        `${run.errors ? `, ${run.errors} errors (${run.errorSample})` : ''}; CPU % of a core: loader ${run.loaderCpuPct}, ` +
        `server ${cpu.serverCpuPct}, database ${cpu.databaseCpuPct}, fakes ${cpu.fakesCpuPct}, other ${figures.otherCpuPct}, machine ${cpu.machineCpuPct}`,
    );
    return { run, figures };
  } finally {
    await loader.close();
  }
}

export async function measureFloor(ctx: PhaseContext) {
  const db = await ctx.server.createDatabase();
  const { child, ready } = await forkReady<FloorReady>(join(ctx.root, 'bench/floor.ts'), [], { BENCH_DATABASE_URL: db.url }, 30_000);
  onCleanup(async () => void (await stop(child, 5_000)));
  try {
    const spec = { origin: `http://127.0.0.1:${ready.port}`, clients: ctx.opts.clients, headers: {}, bodyTemplate: ctx.bodyTemplate(false) };
    const { figures } = await drive('floor', ctx, db, spec, { serverPid: child.pid, admin: ctx.server.admin, database: db.name });
    return figures;
  } finally {
    await stop(child, 5_000);
    await db.drop();
  }
}

/** Every task the relay stored, with its bench number. */
async function storedTasks(db: BenchDatabase): Promise<StoredTask[]> {
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql<{ n: string; id: string; created_ms: string }[]>`
      select metadata->>'n' as n, id, extract(epoch from created_at) * 1000 as created_ms from tasks`;
    return rows.map((r) => ({ n: Number(r.n), id: r.id, createdAt: Number(r.created_ms) }));
  } finally {
    await sql.end({ timeout: 5 });
  }
}

async function countStored(db: BenchDatabase): Promise<number> {
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<{ count: string }[]>`select count(*) from tasks`;
    return Number(row.count);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Waits until the fakes saw `what` for every stored task (re-counted: creates cut off by the loader may still land), or the drain time is up. */
async function drain(ctx: PhaseContext, db: BenchDatabase, what: 'submitted' | 'delivered') {
  const start = now();
  let lastLog = start;
  for (;;) {
    const stored = await countStored(db);
    const c = await ctx.fakes.count();
    const got = what === 'submitted' ? c.submitted : c.delivered + c.deliveredWarmup;
    if (got >= stored) return { stored, got, ms: Math.round(now() - start) };
    if (now() - start > ctx.opts.drainS * 1000) {
      log(`drain: gave up after ${ctx.opts.drainS} s with ${got}/${stored} ${what}`);
      return { stored, got, ms: Math.round(now() - start) };
    }
    if (now() - lastLog > 5_000) {
      log(`drain: ${got}/${stored} ${what} so far`);
      lastLog = now();
    }
    await sleep(200);
  }
}

/** A relay as `npm start` runs it on a fresh database, the fakes forgetting the previous phase. */
async function withRelay<T>(ctx: PhaseContext, run: (relay: Awaited<ReturnType<typeof startRelay>>, db: BenchDatabase) => Promise<T>) {
  const db = await ctx.server.createDatabase();
  await ctx.fakes.reset();
  const relay = await startRelay(ctx.root, db.url, ctx.keys, 'all');
  try {
    return await run(relay, db);
  } finally {
    const exit = await relay.stop();
    if (exit !== 0) log(`relay exited with ${exit} after SIGTERM\n${relay.tail()}`);
    await db.drop();
  }
}

/**
 * Creates against the whole relay: its workers dispatch each task to the fake provider while the
 * creates go on, but the provider holds every callback, so what is measured is the create path
 * and the dispatch it sets off, without the callbacks and webhooks of the lifecycle phase.
 */
export async function measureRelayCreates(ctx: PhaseContext) {
  return withRelay(ctx, async (relay, db) => {
    const spec = { origin: relay.origin, clients: ctx.opts.clients, headers: { 'x-api-key': ctx.keys.apiKey }, bodyTemplate: ctx.bodyTemplate(true) };
    const probes = { serverPid: relay.pid, fakesCpuMs: ctx.fakes.cpuMs, admin: ctx.server.admin, database: db.name };
    const { run, figures } = await drive('relay creates', ctx, db, spec, probes);
    const drained = await drain(ctx, db, 'submitted');
    const report = await ctx.fakes.report();
    const life = summarizeLifecycle(await storedTasks(db), events(report), { from: run.startedAt, to: run.finishedAt });
    return {
      ...figures,
      dispatched: life.dispatched,
      stored: life.stored,
      dispatchLagP50Ms: life.dispatchLagP50Ms,
      dispatchLagP99Ms: life.dispatchLagP99Ms,
      dispatchDrainMs: drained.ms,
      rssMaxMb: relay.rssMaxMb(),
    };
  });
}

function events(report: FakesReport) {
  return {
    submitAt: new Map(report.submits),
    callbackSentAt: new Map(report.callbacks),
    deliveredAt: new Map(report.deliveries.map(([n, at, taskId, event]) => [n, { at, taskId, event }])),
  };
}

/** Sustained creates against the whole relay, every one a lifecycle ending in a signed webhook. */
export async function measureLifecycle(ctx: PhaseContext) {
  return withRelay(ctx, async (relay, db) => {
    const spec = { origin: relay.origin, clients: ctx.opts.clients, headers: { 'x-api-key': ctx.keys.apiKey }, bodyTemplate: ctx.bodyTemplate(false) };
    const probes = { serverPid: relay.pid, fakesCpuMs: ctx.fakes.cpuMs, admin: ctx.server.admin, database: db.name };
    const { run, figures } = await drive('lifecycle', ctx, db, spec, probes);
    const atEnd = await ctx.fakes.count();
    const drained = await drain(ctx, db, 'delivered');
    log(`lifecycle: ${drained.got}/${drained.stored} webhooks, the last ${drained.ms} ms after the load stopped`);
    const report = await ctx.fakes.report();
    const life = summarizeLifecycle(await storedTasks(db), events(report), { from: run.startedAt, to: run.finishedAt });
    const c = report.counters;
    return {
      life,
      creates: figures,
      /** stored tasks without their webhook yet when the load stopped */
      backlogAtEnd: drained.stored - (atEnd.delivered + atEnd.deliveredWarmup),
      drainMs: drained.ms,
      rssMaxMb: relay.rssMaxMb(),
      counters: {
        badSignatures: c.badSignatures,
        duplicates: c.duplicates,
        duplicateTasks: c.duplicateTasks,
        duplicateSubmits: c.duplicateSubmits,
        badSubmits: c.badSubmits,
        callbackRetries: c.callbackRetries,
        callbacksGivenUp: c.callbacksGivenUp,
      },
      ...callbackAnswers(report, run),
    };
  });
}

/** How long the relay took to answer the provider's callbacks sent in the measured window. */
function callbackAnswers(report: FakesReport, run: LoadResult) {
  const sentAt = new Map(report.callbacks);
  const ms = report.callbackMs.filter(([n]) => {
    const at = sentAt.get(n);
    return at !== undefined && at >= run.startedAt && at <= run.finishedAt;
  }).map(([, d]) => d);
  return { callbackAnswerP50Ms: round(percentile(ms, 50)), callbackAnswerP99Ms: round(percentile(ms, 99)) };
}
