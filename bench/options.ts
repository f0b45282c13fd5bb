/** Command-line flags of `npm run bench` (all optional; see `npm run bench -- --help`). */
import { parseArgs } from 'node:util';
import type { LoaderKind } from './load.ts';

export interface BenchOptions {
  /** length of each measured phase (sustained load; the warm-up is not part of it) */
  seconds: number;
  /** load before each measured phase, on the same server, excluded from every figure */
  warmupS: number;
  /** connections of the load generator, each with one request in flight at all times */
  clients: number;
  /** how long the fake provider takes before it calls back */
  delayMs: number;
  /** how long to wait, after the lifecycle phase, for the last webhooks before counting the lost */
  drainS: number;
  /** `auto`: wrk when it is installed, else the in-process undici loader */
  loader: LoaderKind | 'auto';
  /** the peer's measure script, run right before the relay's phases (its JSON goes under `peer`) */
  withPeer: string | null;
  /** ANALYZE each phase's database after the warm-up (`--no-analyze`: a relay's first minute; see phases.ts) */
  analyze: boolean;
  /** measure the floor only (no relay needed); prints floor figures only */
  floorOnly: boolean;
  /** > 0: the waiting-tasks run (bench/waiting.ts) with this many waiting tasks instead */
  waiting: number;
  /** waiting run: seconds over which the relay's idle CPU is measured */
  idleS: number;
  /** waiting run: creates (and as many callbacks) behind each latency figure */
  ops: number;
}

export const usage = `usage: npm run bench -- [--seconds 10] [--warmup-s 3] [--clients 32] [--delay-ms 50]
       [--drain-s 60] [--loader auto|wrk|undici] [--with-peer <measure.sh>] [--floor-only]
       [--no-analyze]
       npm run bench -- --waiting 100000 [--idle-s 30] [--ops 300] [--delay-ms 50]
Phases (each --seconds of sustained load after --warmup-s): floor (bare hono + one INSERT),
relay creates (the whole relay; the provider holds its callbacks), lifecycle (the whole relay;
the provider calls back after --delay-ms). See bench/run.ts; --waiting: see bench/waiting.ts.
Prints one JSON line of figures on stdout; progress goes to stderr.
Uses DATABASE_URL's server (fresh relay_bench_<random> databases, dropped at the end)
or an embedded PostgreSQL.`;

function int(name: string, raw: string, min: number, max: number): number {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`--${name} must be an integer in ${min}…${max}, got '${raw}'\n${usage}`);
  }
  return value;
}

export function parseOptions(argv: string[]): BenchOptions | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string', default: '10' },
      'warmup-s': { type: 'string', default: '3' },
      clients: { type: 'string', default: '32' },
      concurrency: { type: 'string' },
      'delay-ms': { type: 'string', default: '50' },
      'drain-s': { type: 'string', default: '60' },
      loader: { type: 'string', default: 'auto' },
      'with-peer': { type: 'string' },
      'floor-only': { type: 'boolean', default: false },
      'no-analyze': { type: 'boolean', default: false },
      waiting: { type: 'string', default: '0' },
      'idle-s': { type: 'string', default: '30' },
      ops: { type: 'string', default: '300' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return null;
  if (!['auto', 'wrk', 'undici'].includes(values.loader)) throw new Error(`--loader must be auto, wrk or undici, got '${values.loader}'\n${usage}`);
  return {
    seconds: int('seconds', values.seconds, 1, 3600),
    warmupS: int('warmup-s', values['warmup-s'], 0, 600),
    // --concurrency is the old name of --clients.
    clients: int('clients', values.concurrency ?? values.clients, 1, 4096),
    delayMs: int('delay-ms', values['delay-ms'], 0, 600_000),
    drainS: int('drain-s', values['drain-s'], 1, 3600),
    loader: values.loader as BenchOptions['loader'],
    withPeer: values['with-peer'] ?? null,
    analyze: !values['no-analyze'],
    floorOnly: values['floor-only'],
    waiting: int('waiting', values.waiting, 0, 10_000_000),
    idleS: int('idle-s', values['idle-s'], 1, 3600),
    ops: int('ops', values.ops, 10, 100_000),
  };
}
