/**
 * The relay under test: `node src/cli.ts serve` as a child process with a fresh
 * key set and the Node flags of `npm start`, its resident memory sampled from /proc
 * while it runs. The bench runs it as `npm start` does, RELAY_ROLE unset (= `all`);
 * scripts/fairness may ask for `api`.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { RELAY_NODE_FLAGS } from '../src/node-flags.ts';
import { freePort, isRunning, log, onCleanup, sleep, stop, track } from './children.ts';

export interface Relay {
  origin: string;
  /** the relay's process id (its CPU is read from /proc) */
  pid: number;
  /** highest resident set size seen so far, in MB (the relay and any process it started) */
  rssMaxMb: () => number;
  /** resident set size now, in MB (the relay and any process it started) */
  rssNowMb: () => number;
  /** SIGTERM, wait for exit; resolves with the exit code or signal */
  stop: () => Promise<number | string | null>;
  /** the relay's last output lines, for diagnosing a failed run */
  tail: () => string;
}

/** VmRSS of a process and its descendants, in kB (0 once it is gone). */
export function treeRssKb(pid: number): number {
  let total = 0;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    total += Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    for (const child of children ? children.split(/\s+/) : []) total += treeRssKb(Number(child));
  } catch {
    // the process exited between two reads
  }
  return total;
}

/** Credentials the bench hands the relay; the receiver verifies with the same secret. */
export interface RelayKeys {
  apiKey: string;
  webhookSecret: string;
}

/** Fresh random credentials in the formats of DESIGN §3. */
export function generateKeys(): RelayKeys {
  return {
    apiKey: `bench_${randomBytes(24).toString('hex')}`,
    webhookSecret: `whsec_${randomBytes(24).toString('base64')}`,
  };
}

/** Fails fast, before minutes of floor measurement, when there is no relay to start. */
export function assertRelayPresent(root: string): void {
  const cli = join(root, 'src/cli.ts');
  if (!existsSync(cli)) throw new Error(`the relay is not runnable: ${cli} does not exist`);
}

/** `api` serves HTTP only (creates write the task and its pg-boss job, nothing runs them); `all` is HTTP and workers. */
export type RelayRole = 'api' | 'all';

/** `env` is added last: scripts/fairness sets its own RELAY_* variables (an encryption key it knows, limits). */
export async function startRelay(root: string, databaseUrl: string, keys: RelayKeys, role: RelayRole, env: Record<string, string> = {}): Promise<Relay> {
  assertRelayPresent(root);
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  // The run must not depend on RELAY_* settings of whoever starts it.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RELAY_')));
  const child = spawn(join(root, 'node_modules/.bin/node'), [...RELAY_NODE_FLAGS, 'src/cli.ts', 'serve'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...inherited,
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      HOST: '127.0.0.1',
      RELAY_PUBLIC_URL: origin,
      RELAY_API_KEYS: keys.apiKey,
      RELAY_WEBHOOK_SECRET: keys.webhookSecret,
      RELAY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      RELAY_ALLOWED_NETWORKS: '127.0.0.0/8',
      LOG_LEVEL: 'warn',
      // One fake provider on one address: the callback ceiling stays on (its cost is measured)
      // but far above what a run sends.
      RELAY_CALLBACK_IP_CEILING: '1000000000',
      // One load generator on one API key: a per-key limit would measure the limit (0 = off).
      RELAY_API_RATE_LIMIT: '0',
      // `all` is the relay's default: leave RELAY_ROLE unset, as a plain `npm start` does.
      ...(role === 'api' ? { RELAY_ROLE: 'api' } : {}),
      ...env,
    },
  });
  const { tail } = track(child, `relay ${role}`);
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  await spawned;
  const pid = child.pid as number;

  let maxKb = 0;
  const sampler = setInterval(() => {
    maxKb = Math.max(maxKb, treeRssKb(pid));
  }, 200);
  const stopRelay = async () => {
    clearInterval(sampler);
    return stop(child, 20_000);
  };
  onCleanup(async () => void (await stopRelay()));

  // Start-up probe: GET /readyz every 50 ms for at most 60 s.
  const deadline = Date.now() + 60_000;
  let last = 'no answer yet';
  for (;;) {
    if (!isRunning(child)) {
      throw new Error(`the relay is not runnable: it exited (code ${child.exitCode}, signal ${child.signalCode}) during start-up\n${tail()}`);
    }
    try {
      const res = await request(`${origin}/readyz`, { headersTimeout: 1_000, bodyTimeout: 1_000 });
      const text = await res.body.text();
      if (res.statusCode === 200) break;
      last = `${res.statusCode} ${text.slice(0, 200)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) {
      throw new Error(`the relay is not runnable: GET /readyz did not answer 200 within 60 s (last: ${last})\n${tail()}`);
    }
    await sleep(50);
  }
  log(`relay (role ${role}) ready on ${origin} (pid ${pid}), start-up RSS ${Math.round(treeRssKb(pid) / 1024)} MB`);
  return {
    origin,
    pid,
    rssMaxMb: () => Math.round((Math.max(maxKb, treeRssKb(pid)) / 1024) * 10) / 10,
    rssNowMb: () => Math.round((treeRssKb(pid) / 1024) * 10) / 10,
    stop: stopRelay,
    tail,
  };
}
