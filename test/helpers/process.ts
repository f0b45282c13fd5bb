import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { RELAY_NODE_FLAGS } from '../../src/node-flags.ts';
import { type ApiAnswer, apiRequest, freePort } from './relay.ts';

/** The repository root: the spawned relay runs from there, as `npm start` would. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Node 24 from node_modules (the system node may be older). */
export const NODE_BIN = fileURLToPath(new URL('../../node_modules/.bin/node', import.meta.url));

/**
 * Only these variables pass from the test process to the relay, so the test runner's own
 * DATABASE_URL (or anything RELAY_*) never leaks into a process that should not have it.
 */
const INHERITED = ['PATH', 'HOME', 'TMPDIR', 'LANG', 'TZ', 'USER'];

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The settings one relay deployment keeps across restarts. */
export interface RelayDeployment {
  port: number;
  baseUrl: string;
  apiKey: string;
  webhookSecret: string;
  env: Record<string, string>;
}

/** Env for a relay on an external database, with fresh secrets and a free port (DESIGN §3). */
export async function externalDeployment(databaseUrl: string, extra: Record<string, string> = {}): Promise<RelayDeployment> {
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const apiKey = `e2e_${randomBytes(16).toString('hex')}`;
  const webhookSecret = `whsec_${randomBytes(24).toString('base64')}`;
  return {
    port,
    baseUrl,
    apiKey,
    webhookSecret,
    env: {
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      HOST: '127.0.0.1',
      RELAY_PUBLIC_URL: baseUrl,
      RELAY_API_KEYS: apiKey,
      RELAY_WEBHOOK_SECRET: webhookSecret,
      RELAY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      RELAY_ALLOWED_NETWORKS: '127.0.0.0/8',
      LOG_LEVEL: 'warn',
      ...extra,
    },
  };
}

/** A real `node src/cli.ts serve` process, its output captured. */
export class RelayProcess {
  readonly child: ChildProcess;
  readonly baseUrl: string;
  apiKey: string | undefined;
  stdout = '';
  stderr = '';
  /** Settles when the process has exited (never rejects). */
  readonly exited: Promise<Exit>;
  exit: Exit | undefined;

  private constructor(child: ChildProcess, baseUrl: string, apiKey?: string) {
    this.child = child;
    this.baseUrl = baseUrl;
    this.apiKey = apiKey;
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk;
      child.emit('output');
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
      child.emit('output');
    });
    this.exited = once(child, 'exit').then(([code, signal]) => (this.exit = { code, signal }));
  }

  /** Spawns the relay with exactly `env` (plus PATH/HOME…) and `args` after `src/cli.ts`. */
  static spawn(opts: { env: Record<string, string>; baseUrl: string; apiKey?: string; args?: string[] }): RelayProcess {
    const env: Record<string, string> = {};
    for (const name of INHERITED) if (process.env[name] !== undefined) env[name] = process.env[name]!;
    const child = spawn(NODE_BIN, [...RELAY_NODE_FLAGS, 'src/cli.ts', ...(opts.args ?? ['serve'])], {
      cwd: REPO_ROOT,
      env: { ...env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(child);
    child.once('exit', () => running.delete(child));
    return new RelayProcess(child, opts.baseUrl, opts.apiKey);
  }

  /** Spawns a relay of `deployment` (same database, keys and port every time). */
  static start(deployment: RelayDeployment): RelayProcess {
    return RelayProcess.spawn({ env: deployment.env, baseUrl: deployment.baseUrl, apiKey: deployment.apiKey });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /**
   * Start-up probe: polls GET /readyz until it answers 200. Fails at once if the process exits,
   * and after `timeoutMs`, with the process output in the message.
   */
  async waitForReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.exit) throw new Error(`relay exited (${JSON.stringify(this.exit)}) before it was ready:\n${this.output()}`);
      const status = await fetch(`${this.baseUrl}/readyz`, { signal: AbortSignal.timeout(2000) }).then((r) => r.status, () => 0);
      if (status === 200) return;
      if (Date.now() > deadline) throw new Error(`relay not ready after ${timeoutMs} ms (last /readyz: ${status}):\n${this.output()}`);
      await Promise.race([new Promise((r) => setTimeout(r, 200)), this.exited]);
    }
  }

  /** Waits until stdout matches `pattern` (event-driven on output), returning the match. */
  async waitForStdout(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    const signal = AbortSignal.timeout(timeoutMs);
    for (;;) {
      const match = this.stdout.match(pattern);
      if (match) return match;
      if (this.exit) throw new Error(`relay exited before printing ${pattern}:\n${this.output()}`);
      try {
        await Promise.race([once(this.child, 'output', { signal }), this.exited]);
      } catch {
        throw new Error(`no ${pattern} on stdout after ${timeoutMs} ms:\n${this.output()}`);
      }
    }
  }

  /** Waits for the process to exit on its own; fails after `timeoutMs`. */
  async waitForExit(timeoutMs = 30_000): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`relay did not exit within ${timeoutMs} ms:\n${this.output()}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends `signal` and waits for the exit; fails after `timeoutMs`. `ms` is how long it took. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 25_000): Promise<Exit & { ms: number }> {
    const started = Date.now();
    if (!this.exit) this.child.kill(signal);
    const exit = await this.waitForExit(timeoutMs);
    return { ...exit, ms: Date.now() - started };
  }

  /** kill -9: no shutdown code runs. */
  async crash(): Promise<void> {
    const exit = await this.stop('SIGKILL', 10_000);
    if (exit.signal !== 'SIGKILL') throw new Error(`expected death by SIGKILL, got ${JSON.stringify(exit)}`);
  }

  /** A JSON request to this relay with its API key. */
  api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiAnswer> {
    return apiRequest(this.baseUrl, method, path, body, { ...(this.apiKey ? { 'x-api-key': this.apiKey } : {}), ...headers });
  }

  /** Long-polls GET /v1/tasks/:id?wait= until the task reaches `status` (event-driven). */
  async waitForStatus(taskId: string, status: string, timeoutMs = 30_000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    let seen: string | undefined;
    for (;;) {
      const left = deadline - Date.now();
      const wait = seen === undefined ? 0 : Math.max(0, Math.min(10, Math.floor(left / 1000)));
      const answer = await this.api('GET', `/v1/tasks/${taskId}?wait=${wait}${seen ? `&seenStatus=${seen}` : ''}`);
      if (answer.status !== 200) throw new Error(`GET task answered ${answer.status}: ${JSON.stringify(answer.body)}`);
      const task = answer.body.task;
      if (task.status === status) return task;
      if (['completed', 'failed', 'timeout', 'cancelled'].includes(task.status)) {
        throw new Error(`task ended as ${task.status}, expected ${status}: ${JSON.stringify(task)}`);
      }
      if (left <= 0) throw new Error(`task ${taskId} still ${task.status} after ${timeoutMs} ms, expected ${status}`);
      seen = task.status;
    }
  }

  /** Delivery state does not wake the status long-poll: re-reads the task until `check` holds (bounded). */
  async waitForDelivery(taskId: string, status: string, timeoutMs = 30_000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { body } = await this.api('GET', `/v1/tasks/${taskId}`);
      if (body.task.delivery?.status === status) return body.task;
      if (Date.now() > deadline) throw new Error(`delivery of ${taskId} is ${JSON.stringify(body.task.delivery)}, expected ${status}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  output(): string {
    return `--- stdout ---\n${this.stdout.slice(-4000)}\n--- stderr ---\n${this.stderr.slice(-4000)}`;
  }
}

const running = new Set<ChildProcess>();

/** For `after` hooks: SIGKILLs every relay process this file spawned that is still alive. */
export async function killSpawnedRelays(): Promise<void> {
  await Promise.all(
    [...running].map(async (child) => {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }),
  );
}
