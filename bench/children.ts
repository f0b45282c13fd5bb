/**
 * Child-process plumbing for the benchmark: every process it starts is tracked so
 * that no exit path (normal end, thrown error, SIGINT/SIGTERM) leaves one behind.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

// A closed pipe (`npm run bench 2>&1 | head`) must not abort the cleanup that follows.
process.stderr.on('error', () => {});
process.stdout.on('error', () => {});

/** Progress goes to stderr; stdout carries only the final JSON line. */
export function log(...parts: unknown[]): void {
  try {
    process.stderr.write(`[bench] ${parts.map(String).join(' ')}\n`);
  } catch {
    // stderr is gone; progress is not worth failing the run for
  }
}

/** Wall-clock milliseconds comparable across processes (see DESIGN §9 / bench README). */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const live = new Set<ChildProcess>();
const cleanups: Array<() => Promise<void>> = [];

// Last resort: a synchronous kill of whatever is still running when we exit.
process.on('exit', () => {
  for (const child of live) if (isRunning(child)) child.kill('SIGKILL');
});

/** Registers an async cleanup; they run in reverse order of registration. */
export function onCleanup(fn: () => Promise<void>): void {
  cleanups.push(fn);
}

export async function runCleanups(): Promise<void> {
  for (let fn = cleanups.pop(); fn; fn = cleanups.pop()) {
    try {
      await fn();
    } catch (err) {
      log('cleanup failed:', err instanceof Error ? err.message : err);
    }
  }
}

export function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Tracks a child so that the exit hook kills it; keeps the last lines it printed. */
export function track(child: ChildProcess, name: string): { tail: () => string } {
  live.add(child);
  child.once('exit', () => live.delete(child));
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      lines.push(`[${name}] ${line}`);
      if (lines.length > 60) lines.shift();
    }
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return { tail: () => lines.join('\n') };
}

/** Starts a bench child (an IPC-connected TypeScript module) and waits for its `ready` message. */
export async function forkReady<T>(
  script: string,
  args: string[],
  env: Record<string, string>,
  timeoutMs: number,
): Promise<{ child: ChildProcess; ready: T; tail: () => string }> {
  const child = fork(script, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    serialization: 'advanced',
  });
  const { tail } = track(child, script.split('/').pop() ?? script);
  const ready = await reply<T>(child, 'ready', timeoutMs).catch((err: Error) => {
    child.kill('SIGKILL');
    throw new Error(`${script} did not start: ${err.message}\n${tail()}`);
  });
  return { child, ready, tail };
}

/** Sends `message` (when given) and waits for the child's next message of `type`. */
export function reply<T>(child: ChildProcess, type: string, timeoutMs: number, message?: object): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`no '${type}' message within ${timeoutMs} ms`)), timeoutMs);
    const onMessage = (msg: { type?: string }) => {
      if (msg?.type === type) done(null, msg as T);
    };
    const onExit = (code: number | null, signal: string | null) =>
      done(new Error(`exited (code ${code}, signal ${signal}) before '${type}'`));
    function done(err: Error | null, value?: T) {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(value as T);
    }
    child.on('message', onMessage);
    child.once('exit', onExit);
    if (message) child.send(message);
  });
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code (or signal name). */
export async function stop(child: ChildProcess, graceMs = 15_000): Promise<number | string | null> {
  if (isRunning(child)) {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
  return child.exitCode ?? child.signalCode;
}

/** A port that was free a moment ago (the relay must be told its port before it listens). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
