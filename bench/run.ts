/**
 * `npm run bench` — DESIGN §9. In one run on one machine: a fresh database, the
 * floor (bare hono + one INSERT), the relay, a fake provider and an onComplete
 * receiver (one child process), and this process as the load generator.
 * Prints exactly one JSON line of figures on stdout; progress goes to stderr.
 *
 * Order: fakes up → floor measured and stopped → relay started, warmed up, measured,
 * drained, stopped → database dropped. Nothing runs concurrently with the floor, and
 * the relay's create phase runs with its own dispatch/callback/delivery work going on,
 * which is what a real deployment sees.
 */
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { log, onCleanup, runCleanups } from './children.ts';
import { openBenchDatabase } from './database.ts';
import { parseOptions, usage, type BenchOptions } from './options.ts';
import { measureFloor, measureRelay, startFakes } from './phases.ts';
import { assertRelayPresent, generateKeys } from './relay.ts';
import { round, summarizeCreates, summarizeLifecycle } from './stats.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

async function main(opts: BenchOptions): Promise<Record<string, unknown>> {
  if (!opts.floorOnly) assertRelayPresent(root);
  const keys = generateKeys();
  const db = await openBenchDatabase();
  onCleanup(db.close);
  const fakes = await startFakes(root, opts.delayMs, keys.webhookSecret);
  log(`fakes: provider on ${fakes.providerPort}, receiver on ${fakes.receiverPort}`);

  // The same body for the floor and the relay: a Replicate-style submit whose
  // `webhook` the relay replaces with its minted callback URL.
  const body = (n: number) =>
    JSON.stringify({
      targetUrl: `http://127.0.0.1:${fakes.providerPort}/submit`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: { input: 'bench', webhook: '{asyncqueue_callback_url}', n },
      onCompleteUrl: `http://127.0.0.1:${fakes.receiverPort}/hook`,
      metadata: { n: String(n) },
    });

  const params = { tasks: opts.tasks, concurrency: opts.concurrency, delayMs: opts.delayMs, warmup: opts.warmup };
  const floorPhase = await measureFloor(root, db.url, opts, body);
  const floor = summarizeCreates(floorPhase.samples, floorPhase.startedAt, floorPhase.finishedAt);
  const floorFigures = {
    floorRps: floor.okRps,
    floorP50Ms: floor.p50Ms,
    floorP99Ms: floor.p99Ms,
    floorErrors: floor.errors + floorPhase.notSent,
  };
  if (opts.floorOnly) return { ...params, ...floorFigures, database: db.kind };

  const relay = await measureRelay(root, db.url, opts, body, keys, fakes);
  const create = summarizeCreates(relay.phase.samples, relay.phase.startedAt, relay.phase.finishedAt);
  const life = summarizeLifecycle(relay.phase.samples, {
    submitAt: new Map(relay.report.submits),
    callbackSentAt: new Map(relay.report.callbacks),
    deliveredAt: new Map(relay.report.deliveries.map(([n, at, taskId, event]) => [n, { at, taskId, event }])),
  });
  const c = relay.report.counters;
  return {
    ...params,
    // Only 201s count as created; errors are reported apart, never as throughput.
    createRps: create.okRps,
    createP50Ms: create.p50Ms,
    createP99Ms: create.p99Ms,
    lifecycleTps: life.lifecycleTps,
    callbackToNotifyP50Ms: life.callbackToNotifyP50Ms,
    callbackToNotifyP99Ms: life.callbackToNotifyP99Ms,
    dispatchLagP50Ms: life.dispatchLagP50Ms,
    dispatchLagP99Ms: life.dispatchLagP99Ms,
    rssMaxMb: relay.rssMaxMb,
    ...floorFigures,
    ratio: create.okRps && floor.okRps ? round(create.okRps / floor.okRps, 3) : null,
    lost: life.lost,
    createErrors: create.errors + relay.phase.notSent,
    badSignatures: c.badSignatures,
    duplicates: c.duplicates,
    delivered: life.delivered,
    notCompleted: life.notCompleted,
    dispatched: life.dispatched,
    duplicateTasks: c.duplicateTasks,
    duplicateSubmits: c.duplicateSubmits,
    badSubmits: c.badSubmits,
    callbackRetries: c.callbackRetries,
    callbacksGivenUp: c.callbacksGivenUp,
    taskIdMismatches: life.idMismatches,
    createSeconds: create.seconds,
    floorSeconds: floor.seconds,
    drainMs: Math.round(relay.drainMs),
    relayExit: relay.relayExit,
    database: db.kind,
    node: process.version,
    cpus: availableParallelism(),
  };
}

let opts: BenchOptions | null;
try {
  opts = parseOptions(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(2);
}
if (!opts) {
  process.stderr.write(`${usage}\n`);
  process.exit(0);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping children and dropping the database`);
    void runCleanups().finally(() => process.exit(130));
  });
}

let exitCode = 0;
try {
  const figures = await main(opts);
  process.stdout.write(`${JSON.stringify(figures)}\n`);
} catch (err) {
  // An expected failure (no relay, relay does not start) reads better without a stack.
  const expected = err instanceof Error && err.message.startsWith('the relay is not runnable');
  log(`failed: ${err instanceof Error ? (expected ? err.message : (err.stack ?? err.message)) : String(err)}`);
  exitCode = 1;
} finally {
  await runCleanups();
}
// Pools and timers of finished phases must not keep the process alive.
process.exit(exitCode);
