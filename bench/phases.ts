/**
 * The three measured phases (see bench/run.ts for their order). All drive their
 * server with the same loader, warm-up, count, concurrency and request bodies:
 * - floor: the bare hono + one INSERT server;
 * - create: the relay with RELAY_ROLE=api on a database of its own, so that only
 *   its HTTP API and its inserts run, as in the floor;
 * - lifecycle: the whole relay, which then also dispatches, takes the provider's
 *   callbacks and delivers the webhooks; the phase waits for those to finish.
 */
import { join } from 'node:path';
import { forkReady, log, now, onCleanup, reply, sleep, stop } from './children.ts';
import type { FakesReady, FakesReport } from './fakes.ts';
import type { FloorReady } from './floor.ts';
import { createLoader, errorSummary, type PhaseResult } from './load.ts';
import type { BenchOptions } from './options.ts';
import { startRelay, type RelayKeys } from './relay.ts';

export interface Fakes {
  providerPort: number;
  receiverPort: number;
  count: () => Promise<{ delivered: number; deliveredWarmup: number }>;
  report: () => Promise<FakesReport>;
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
  };
}

/** Warm-up (negative n, excluded from figures), then the measured creates n = 0 … tasks-1. */
async function drive(
  name: string,
  loader: ReturnType<typeof createLoader>,
  opts: BenchOptions,
  afterWarmup: (ok: number) => Promise<void>,
): Promise<PhaseResult> {
  if (opts.warmup > 0) {
    const warm = await loader.run(opts.warmup, -opts.warmup, opts.phaseTimeoutS * 1000);
    const ok = warm.samples.filter((s) => s.status === 201).length;
    log(`${name}: warm-up ${ok}/${opts.warmup} created ${ok < opts.warmup ? `(${errorSummary(warm.samples)})` : ''}`);
    await afterWarmup(ok);
  }
  log(`${name}: measuring ${opts.tasks} creates at concurrency ${opts.concurrency}`);
  const phase = await loader.run(opts.tasks, 0, opts.phaseTimeoutS * 1000);
  const ok = phase.samples.filter((s) => s.status === 201).length;
  const seconds = ((phase.finishedAt - phase.startedAt) / 1000).toFixed(2);
  log(`${name}: ${ok}/${opts.tasks} created in ${seconds} s${ok < opts.tasks ? ` — ${errorSummary(phase.samples)}` : ''}`);
  return phase;
}

export async function measureFloor(root: string, databaseUrl: string, opts: BenchOptions, body: (n: number) => string) {
  const { child, ready } = await forkReady<FloorReady>(
    join(root, 'bench/floor.ts'),
    [],
    { BENCH_DATABASE_URL: databaseUrl },
    30_000,
  );
  onCleanup(async () => void (await stop(child, 5_000)));
  const loader = createLoader({ origin: `http://127.0.0.1:${ready.port}`, concurrency: opts.concurrency, headers: {}, body });
  try {
    return await drive('floor', loader, opts, async () => {});
  } finally {
    await loader.close();
    await stop(child, 5_000);
  }
}

/** Polls the receiver's count until `expected` tasks arrived or `timeoutMs` passed. */
async function waitForDeliveries(fakes: Fakes, key: 'delivered' | 'deliveredWarmup', expected: number, timeoutMs: number) {
  const start = now();
  let lastLog = start;
  for (;;) {
    const got = (await fakes.count())[key];
    if (got >= expected) return { got, waitedMs: now() - start };
    if (now() - start > timeoutMs) {
      log(`${key}: gave up after ${Math.round(timeoutMs / 1000)} s with ${got}/${expected} webhooks`);
      return { got, waitedMs: now() - start };
    }
    if (now() - lastLog > 5_000) {
      log(`${key}: ${got}/${expected} webhooks so far`);
      lastLog = now();
    }
    await sleep(100);
  }
}

/**
 * The relay's create path alone: `RELAY_ROLE=api` runs no worker, so each create is
 * its HTTP handling plus the insert of the task and its pg-boss job, and nothing
 * else competes for the CPU or the database. `databaseUrl` must be a database of
 * its own: the jobs it leaves behind must never reach a worker.
 */
export async function measureCreate(
  root: string,
  databaseUrl: string,
  opts: BenchOptions,
  body: (n: number) => string,
  keys: RelayKeys,
  fakes: Fakes,
) {
  const relay = await startRelay(root, databaseUrl, keys, 'api');
  const loader = createLoader({
    origin: relay.origin,
    concurrency: opts.concurrency,
    headers: { 'x-api-key': keys.apiKey },
    body,
  });
  try {
    const phase = await drive('create', loader, opts, async () => {});
    const rssMaxMb = relay.rssMaxMb();
    const relayExit = await relay.stop();
    if (relayExit !== 0) log(`create: relay exited with ${relayExit} after SIGTERM\n${relay.tail()}`);
    // An api-only relay must not have called the provider; if it did, the lifecycle
    // figures (keyed by the same n) would mix both phases.
    const submits = (await fakes.report()).submits.length;
    if (submits > 0) log(`create: WARNING the api-only relay dispatched ${submits} tasks to the fake provider`);
    return { phase, rssMaxMb, relayExit };
  } finally {
    await loader.close();
    await relay.stop();
  }
}

/** The whole relay (RELAY_ROLE unset = all): creates, then every lifecycle to its webhook. */
export async function measureLifecycle(
  root: string,
  databaseUrl: string,
  opts: BenchOptions,
  body: (n: number) => string,
  keys: RelayKeys,
  fakes: Fakes,
) {
  const relay = await startRelay(root, databaseUrl, keys, 'all');
  const loader = createLoader({
    origin: relay.origin,
    concurrency: opts.concurrency,
    headers: { 'x-api-key': keys.apiKey },
    body,
  });
  try {
    // Let warm-up lifecycles finish so their dispatches and webhooks do not load the measured phase.
    const phase = await drive('lifecycle', loader, opts, async (ok) => {
      await waitForDeliveries(fakes, 'deliveredWarmup', ok, opts.drainS * 1000);
    });
    const created = phase.samples.filter((s) => s.status === 201).length;
    const drain = await waitForDeliveries(fakes, 'delivered', created, opts.drainS * 1000);
    log(`lifecycle: ${drain.got}/${created} webhooks arrived, ${Math.round(drain.waitedMs)} ms after the last create`);
    const report = await fakes.report();
    const rssMaxMb = relay.rssMaxMb();
    const relayExit = await relay.stop();
    if (relayExit !== 0) log(`lifecycle: relay exited with ${relayExit} after SIGTERM\n${relay.tail()}`);
    return { phase, report, rssMaxMb, relayExit, drainMs: drain.waitedMs };
  } finally {
    await loader.close();
    await relay.stop();
  }
}
