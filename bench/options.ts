/** Command-line flags of `npm run bench` (all optional; see `npm run bench -- --help`). */
import { parseArgs } from 'node:util';

export interface BenchOptions {
  /** measured creates against each server */
  tasks: number;
  /** requests in flight at all times during a create phase */
  concurrency: number;
  /** how long the fake provider takes before it calls back */
  delayMs: number;
  /** creates sent to each server before measuring, excluded from every figure */
  warmup: number;
  /** how long to wait for the last webhooks after the last create */
  drainS: number;
  /** upper bound on one create phase; creates not sent by then are reported as not sent */
  phaseTimeoutS: number;
  /** measure the floor only (no relay needed); prints floor figures only */
  floorOnly: boolean;
}

export const usage = `usage: npm run bench -- [--tasks 3000] [--concurrency 64] [--delay-ms 200]
       [--warmup 200] [--drain-s 60] [--phase-timeout-s 600] [--floor-only]
Phases: floor, create (relay RELAY_ROLE=api), lifecycle (whole relay); see bench/run.ts.
Prints one JSON line of figures on stdout; progress goes to stderr.
Uses DATABASE_URL's server (two fresh relay_bench_<random> databases, dropped at the end)
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
      tasks: { type: 'string', default: '3000' },
      concurrency: { type: 'string', default: '64' },
      'delay-ms': { type: 'string', default: '200' },
      warmup: { type: 'string', default: '200' },
      'drain-s': { type: 'string', default: '60' },
      'phase-timeout-s': { type: 'string', default: '600' },
      'floor-only': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return null;
  return {
    tasks: int('tasks', values.tasks, 1, 1_000_000),
    concurrency: int('concurrency', values.concurrency, 1, 4096),
    delayMs: int('delay-ms', values['delay-ms'], 0, 600_000),
    warmup: int('warmup', values.warmup, 0, 100_000),
    drainS: int('drain-s', values['drain-s'], 1, 3600),
    phaseTimeoutS: int('phase-timeout-s', values['phase-timeout-s'], 1, 86_400),
    floorOnly: values['floor-only'],
  };
}
