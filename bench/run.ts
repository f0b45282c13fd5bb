/**
 * `npm run bench` — DESIGN §9. In one run on one machine: the floor (bare hono + one
 * INSERT), the relay, a fake provider and an onComplete receiver (one child process),
 * and this process as the load generator. Prints exactly one JSON line of figures on
 * stdout; progress goes to stderr.
 *
 * Phases, one after the other (nothing else measured runs during any of them):
 *   1. fakes up (provider + receiver) and a fresh database A;
 *   2. floor: the floor server on A, warm-up, measured creates → floorRps/P50/P99; stopped;
 *   3. create: the relay with RELAY_ROLE=api on a fresh database B of its own, the same
 *      warm-up, count, concurrency and bodies → createRps/P50/P99 and
 *      ratio = createRps / floorRps; stopped, B dropped;
 *   4. lifecycle: the whole relay (RELAY_ROLE unset = all) on A, the same creates, then
 *      every dispatch → provider callback → onComplete webhook → lifecycleTps, latencies,
 *      lost, rssMaxMb, and lifecycleCreateRps/P99 (creates under full load, for
 *      information); stopped, A dropped.
 * Why createRps is measured API-only: the floor is an HTTP API doing one insert with
 * nothing else running, so ratio compares like with like only if the relay's figure is
 * also just its API and its inserts (task + pg-boss job). A relay that also dispatches,
 * takes callbacks and delivers webhooks for the tasks being created shares the CPU
 * and the database with that work; that figure is lifecycleCreateRps. Database B is
 * separate because the jobs the api-only relay leaves must never reach a worker.
 */
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { log, onCleanup, runCleanups } from './children.ts';
import { openBenchServer } from './database.ts';
import { parseOptions, usage, type BenchOptions } from './options.ts';
import { measureCreate, measureFloor, measureLifecycle, startFakes } from './phases.ts';
import { assertRelayPresent, generateKeys } from './relay.ts';
import { round, summarizeCreates, summarizeLifecycle } from './stats.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

async function main(opts: BenchOptions): Promise<Record<string, unknown>> {
  if (!opts.floorOnly) assertRelayPresent(root);
  const phases = [
    'fakes up, database A',
    'floor (bare hono + INSERT, database A)',
    ...(opts.floorOnly
      ? []
      : ['create (relay RELAY_ROLE=api, database B, then dropped)', 'lifecycle (relay RELAY_ROLE=all, database A)']),
  ];
  log(`phases: ${phases.map((p, i) => `${i + 1}. ${p}`).join(' → ')}`);
  const phase = (i: number) => log(`— phase ${i}/${phases.length}: ${phases[i - 1]}`);

  phase(1);
  const keys = generateKeys();
  const server = await openBenchServer();
  onCleanup(server.close);
  const db = await server.createDatabase();
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
  phase(2);
  const floorPhase = await measureFloor(root, db.url, opts, body);
  const floor = summarizeCreates(floorPhase.samples, floorPhase.startedAt, floorPhase.finishedAt);
  const floorFigures = {
    floorRps: floor.okRps,
    floorP50Ms: floor.p50Ms,
    floorP99Ms: floor.p99Ms,
    floorErrors: floor.errors + floorPhase.notSent,
  };
  if (opts.floorOnly) return { ...params, ...floorFigures, database: server.kind };

  phase(3);
  const createDb = await server.createDatabase();
  const createRun = await measureCreate(root, createDb.url, opts, body, keys, fakes);
  await createDb.drop();
  const create = summarizeCreates(createRun.phase.samples, createRun.phase.startedAt, createRun.phase.finishedAt);

  phase(4);
  const relay = await measureLifecycle(root, db.url, opts, body, keys, fakes);
  const lifeCreate = summarizeCreates(relay.phase.samples, relay.phase.startedAt, relay.phase.finishedAt);
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
    lifecycleCreateRps: lifeCreate.okRps,
    lifecycleCreateP50Ms: lifeCreate.p50Ms,
    lifecycleCreateP99Ms: lifeCreate.p99Ms,
    createErrors: create.errors + createRun.phase.notSent,
    lifecycleCreateErrors: lifeCreate.errors + relay.phase.notSent,
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
    lifecycleCreateSeconds: lifeCreate.seconds,
    floorSeconds: floor.seconds,
    drainMs: Math.round(relay.drainMs),
    createRssMaxMb: createRun.rssMaxMb,
    createRelayExit: createRun.relayExit,
    relayExit: relay.relayExit,
    database: server.kind,
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
    log(`${signal}: stopping children and dropping the databases`);
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
