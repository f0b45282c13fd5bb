/**
 * The two measured phases. Both drive their server with the same loader, the same
 * concurrency and the same request bodies; only the relay phase then waits for the
 * lifecycle (dispatch → provider callback → onComplete webhook) to finish.
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

export async function measureRelay(
  root: string,
  databaseUrl: string,
  opts: BenchOptions,
  body: (n: number) => string,
  keys: RelayKeys,
  fakes: Fakes,
) {
  const relay = await startRelay(root, databaseUrl, keys);
  const loader = createLoader({
    origin: relay.origin,
    concurrency: opts.concurrency,
    headers: { 'x-api-key': keys.apiKey },
    body,
  });
  try {
    // Let warm-up lifecycles finish so their dispatches and webhooks do not load the measured phase.
    const phase = await drive('relay', loader, opts, async (ok) => {
      await waitForDeliveries(fakes, 'deliveredWarmup', ok, opts.drainS * 1000);
    });
    const created = phase.samples.filter((s) => s.status === 201).length;
    const drain = await waitForDeliveries(fakes, 'delivered', created, opts.drainS * 1000);
    log(`relay: ${drain.got}/${created} webhooks arrived, ${Math.round(drain.waitedMs)} ms after the last create`);
    const report = await fakes.report();
    const rssMaxMb = relay.rssMaxMb();
    const relayExit = await relay.stop();
    if (relayExit !== 0) log(`relay exited with ${relayExit} after SIGTERM\n${relay.tail()}`);
    return { phase, report, rssMaxMb, relayExit, drainMs: drain.waitedMs };
  } finally {
    await loader.close();
    await relay.stop();
  }
}
