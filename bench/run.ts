/**
 * `npm run bench` — DESIGN §9 and §14. In one run on one machine: the floor (bare hono + one
 * INSERT), the relay as `npm start` runs it (role `all`, the same Node flags), a fake provider
 * and an onComplete receiver (one child process), and a load generator (wrk when installed,
 * else undici in this process: bench/load.ts). Prints exactly one JSON line of figures on
 * stdout; progress goes to stderr.
 *
 * Phases, one after the other, each on a fresh database, each `--seconds` (default 10) of
 * sustained load by `--clients` (default 32) connections after `--warmup-s` of warm-up and an
 * ANALYZE of the database (what autovacuum does in a relay's first minute; see phases.ts):
 *   1. floor: bare hono + one INSERT → floorRps, floorP50/P99;
 *   (the peer's measure script, with --with-peer;)
 *   2. relay creates: the whole relay, dispatching every task to the fake provider, which
 *      holds its callbacks → createRps, createP50/P99, ratio = createRps / floorRps;
 *   3. lifecycle: the whole relay, the provider calling back after --delay-ms (default 50):
 *      create → dispatch → callback → signed webhook, under the same sustained creates →
 *      lifecycleTps (webhooks per second while the creates go on), callback→webhook and
 *      dispatch lag, the creates' own rate and latency under that load, rssMaxMb; then a
 *      drain, and lost = stored tasks that never got their webhook.
 * Every phase reports where the CPU went (loader, server, its database sessions, fakes,
 * machine, in % of one core): a figure taken with the loader saturated is not a figure.
 */
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { log, onCleanup, runCleanups } from './children.ts';
import { openBenchServer } from './database.ts';
import { N_PLACEHOLDER, wrkInstalled, type LoaderKind } from './load.ts';
import { parseOptions, usage, type BenchOptions } from './options.ts';
import { runPeer } from './peer.ts';
import { measureFloor, measureLifecycle, measureRelayCreates, startFakes, type LoadFigures, type PhaseContext } from './phases.ts';
import { assertRelayPresent, generateKeys } from './relay.ts';
import { round } from './stats.ts';
import { runWaiting } from './waiting.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Below this a phase's figure is not one (DESIGN §14); shorter runs are for checking the bench. */
const MIN_FIGURE_SECONDS = 5;
/** A loader at this share of a core may be what limits the rate. */
const LOADER_SATURATED_PCT = 90;
/** CPU (% of a core) the machine spent on processes outside the run: a shared machine was busy. */
const OTHER_BUSY_PCT = 25;

function chooseLoader(wanted: BenchOptions['loader']): LoaderKind {
  if (wanted === 'undici') return 'undici';
  if (wrkInstalled()) return 'wrk';
  if (wanted === 'wrk') throw new Error('--loader wrk: wrk is not installed (apt-get install -y wrk)');
  log('wrk is not installed: the load generator is undici in this process (its CPU is reported)');
  return 'undici';
}

/**
 * The create request, with the loader's number in `body.n` (the fake provider's key) and in
 * `metadata.n` (the receiver's): a Replicate-style submit whose `webhook` the relay replaces
 * with its minted callback URL.
 */
function bodyTemplate(providerPort: number, receiverPort: number, hold: boolean): string {
  return JSON.stringify({
    targetUrl: `http://127.0.0.1:${providerPort}/submit`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: { input: 'bench', webhook: '{asyncqueue_callback_url}', n: '__N__', ...(hold ? { hold: true } : {}) },
    onCompleteUrl: `http://127.0.0.1:${receiverPort}/hook`,
    metadata: { n: '__N__' },
  })
    .replace('"__N__"', N_PLACEHOLDER) // body.n: a number
    .replace('__N__', N_PLACEHOLDER); // metadata.n: a string
}

function warningsOf(phases: Record<string, LoadFigures>): string[] {
  const warnings: string[] = [];
  for (const [name, f] of Object.entries(phases)) {
    if (f.seconds < MIN_FIGURE_SECONDS) warnings.push(`${name}: ${f.seconds} s measured, under ${MIN_FIGURE_SECONDS} s: a check, not a figure`);
    if (f.loaderCpuPct >= LOADER_SATURATED_PCT) warnings.push(`${name}: the loader used ${f.loaderCpuPct}% of a core: it may be what limits the rate`);
    if (f.errors > 0) warnings.push(`${name}: ${f.errors} creates failed`);
    if ((f.otherCpuPct ?? 0) >= OTHER_BUSY_PCT) warnings.push(`${name}: ${f.otherCpuPct}% of a core went to processes outside the run: the machine was not quiet`);
  }
  return warnings;
}

async function main(opts: BenchOptions): Promise<Record<string, unknown>> {
  if (!opts.floorOnly) assertRelayPresent(root);
  const loader = chooseLoader(opts.loader);
  const names = ['floor', ...(opts.withPeer ? ['peer (its measure script)'] : []), ...(opts.floorOnly ? [] : ['relay creates', 'lifecycle'])];
  log(`phases: ${names.join(' → ')}; ${opts.seconds} s each after ${opts.warmupS} s of warm-up, ${opts.clients} clients, loader ${loader}`);

  const keys = generateKeys();
  const server = await openBenchServer();
  onCleanup(server.close);
  const fakes = await startFakes(root, opts.delayMs, keys.webhookSecret);
  log(`fakes: provider on ${fakes.providerPort}, receiver on ${fakes.receiverPort}`);
  const ctx: PhaseContext = {
    root,
    opts,
    loader,
    server,
    fakes,
    keys,
    bodyTemplate: (hold) => bodyTemplate(fakes.providerPort, fakes.receiverPort, hold),
  };
  const params = { seconds: opts.seconds, warmupS: opts.warmupS, clients: opts.clients, delayMs: opts.delayMs, loader, analyzedAfterWarmup: opts.analyze };
  const env = { database: server.kind, node: process.version, cpus: availableParallelism() };

  log('— floor (bare hono + one INSERT)');
  const floor = await measureFloor(ctx);
  if (opts.floorOnly) {
    return { ...params, floorRps: floor.okRps, floorP50Ms: floor.p50Ms, floorP99Ms: floor.p99Ms, floorSeconds: floor.seconds, floorLoaderCpuPct: floor.loaderCpuPct, warnings: warningsOf({ floor }), phases: { floor }, ...env };
  }

  let peer: Record<string, unknown> | undefined;
  if (opts.withPeer) {
    log(`— peer: ${opts.withPeer}`);
    peer = await runPeer(opts.withPeer);
    log(`peer: ${JSON.stringify(peer)}`);
  }

  log('— relay creates (the whole relay; the provider holds its callbacks)');
  const create = await measureRelayCreates(ctx);
  log(`— lifecycle (the whole relay; the provider calls back after ${opts.delayMs} ms)`);
  const lifecycle = await measureLifecycle(ctx);
  const life = lifecycle.life;

  return {
    ...params,
    createRps: create.okRps,
    createP50Ms: create.p50Ms,
    createP99Ms: create.p99Ms,
    lifecycleTps: life.lifecycleTps,
    callbackToNotifyP50Ms: life.callbackToNotifyP50Ms,
    callbackToNotifyP99Ms: life.callbackToNotifyP99Ms,
    dispatchLagP50Ms: life.dispatchLagP50Ms,
    dispatchLagP99Ms: life.dispatchLagP99Ms,
    // The relay's highest RSS in either phase (each phase's own is under phases).
    rssMaxMb: Math.max(create.rssMaxMb, lifecycle.rssMaxMb),
    floorRps: floor.okRps,
    ratio: create.okRps && floor.okRps ? round(create.okRps / floor.okRps, 3) : null,
    lost: life.lost,
    // The creates while every task also runs its lifecycle, and their rate against the floor's.
    lifecycleCreateRps: lifecycle.creates.okRps,
    lifecycleCreateP50Ms: lifecycle.creates.p50Ms,
    lifecycleCreateP99Ms: lifecycle.creates.p99Ms,
    lifecycleRatio: lifecycle.creates.okRps && floor.okRps ? round(lifecycle.creates.okRps / floor.okRps, 3) : null,
    floorP50Ms: floor.p50Ms,
    floorP99Ms: floor.p99Ms,
    floorSeconds: floor.seconds,
    createSeconds: create.seconds,
    lifecycleSeconds: lifecycle.creates.seconds,
    floorLoaderCpuPct: floor.loaderCpuPct,
    createLoaderCpuPct: create.loaderCpuPct,
    lifecycleLoaderCpuPct: lifecycle.creates.loaderCpuPct,
    warnings: warningsOf({ floor, create, lifecycle: lifecycle.creates }),
    phases: {
      floor,
      create,
      lifecycle: {
        ...lifecycle.creates,
        completedInWindow: life.completedInWindow,
        createdInWindow: life.createdInWindow,
        backlogAtEnd: lifecycle.backlogAtEnd,
        drainMs: lifecycle.drainMs,
        rssMaxMb: lifecycle.rssMaxMb,
        stored: life.stored,
        dispatched: life.dispatched,
        delivered: life.delivered,
        notCompleted: life.notCompleted,
        taskIdMismatches: life.idMismatches,
        callbackAnswerP50Ms: lifecycle.callbackAnswerP50Ms,
        callbackAnswerP99Ms: lifecycle.callbackAnswerP99Ms,
        ...lifecycle.counters,
      },
    },
    ...(peer ? { peer } : {}),
    ...env,
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
  const figures = opts.waiting > 0 ? await runWaiting(root, opts) : await main(opts);
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
