import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { locateBinaries } from './embedded-binaries.ts';
import { initCluster, startPostmaster } from './embedded-process.ts';
import { binariesFor, clusterDirFor, giveTo, postgresUser, type SystemUser } from './embedded-root.ts';

const run = promisify(execFile);
const DATABASE = 'relay';
// Failures worth another attempt on a fresh port: the port was taken between our probe
// and postgres binding it, or backends of a killed postmaster still hold shared memory.
const RETRYABLE = /could not bind|could not create any TCP\/IP sockets|already in use|still in use/i;

/** Options of {@link startEmbeddedPostgres}. */
export interface EmbeddedOptions {
  /** RELAY_DATA_DIR: the cluster lives in `<dataDir>/pg` (for root, possibly a symlink), its password in `<dataDir>/pg.password`. */
  dataDir: string;
  /** PostgreSQL's output and routine steps. */
  log: (msg: string) => void;
  /** What an operator should know: where root's binaries or cluster were put, a user created. Defaults to `log`. */
  notice?: (msg: string) => void;
  /**
   * Root only: where the binaries are copied, and clusters placed, when the "postgres" user
   * cannot reach the checkout or the data dir. Must be root's and writable by no one else.
   */
  systemDir?: string;
}

/** Root's place for what the "postgres" user must reach; see {@link EmbeddedOptions.systemDir}. */
export const DEFAULT_SYSTEM_DIR = '/var/lib/asyncrelay';

/**
 * Starts (initialising on first use) a persistent PostgreSQL cluster in
 * `<dataDir>/pg`, listening on a free 127.0.0.1 port, and returns the URL of its
 * `relay` database. Used only when DATABASE_URL is unset. `stop()` is a fast
 * shutdown; call it last, after everything that uses the database has closed.
 * As root, PostgreSQL runs as the "postgres" user, from a copy of the binaries and with
 * the cluster in `systemDir` when that user cannot reach the checkout or the data dir.
 */
export async function startEmbeddedPostgres(opts: EmbeddedOptions): Promise<{ url: string; stop(): Promise<void> }> {
  const dataDir = resolve(opts.dataDir);
  const notice = opts.notice ?? opts.log;
  await mkdir(dataDir, { recursive: true });
  let bins = await locateBinaries();
  let pgDir = join(dataDir, 'pg');
  let user: SystemUser | undefined;
  if (process.getuid?.() === 0) {
    // PostgreSQL refuses to run as root: it runs as "postgres", which must reach both.
    const systemDir = opts.systemDir ?? DEFAULT_SYSTEM_DIR;
    user = await postgresUser(notice);
    bins = await binariesFor(user, bins, systemDir, notice);
    pgDir = await clusterDirFor(user, dataDir, systemDir, notice);
    await giveTo(user, pgDir, opts.log);
  }
  const password = await loadOrCreatePassword(join(dataDir, 'pg.password'), pgDir);
  await clearStaleServer(pgDir, opts.log);

  const recent: string[] = [];
  const onLine = (line: string) => {
    recent.push(line);
    if (recent.length > 20) recent.shift();
    opts.log(line);
  };
  if (!(await exists(join(pgDir, 'PG_VERSION')))) {
    opts.log(`initialising a new PostgreSQL cluster in ${pgDir}`);
    await initCluster(bins, pgDir, password, user, onLine).catch((err: Error) => {
      throw new Error(`embedded PostgreSQL could not initialise ${pgDir}: ${err.message}\n${recent.join('\n')}`);
    });
  }

  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    recent.length = 0;
    let server;
    try {
      server = await startPostmaster(bins, pgDir, port, user, onLine);
    } catch (err) {
      if (attempt < 3 && RETRYABLE.test(recent.join('\n'))) {
        await new Promise((r) => setTimeout(r, 200 * attempt));
        continue;
      }
      throw new Error(`embedded PostgreSQL did not start (${(err as Error).message}):\n${recent.join('\n')}`);
    }
    // If this process dies without calling stop() (a crash, process.exit), the postmaster
    // gets a fast-shutdown signal on the way out instead of being left orphaned.
    const { child } = server;
    const onExit = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    };
    process.on('exit', onExit);
    const stop = async () => {
      await server.stop();
      process.off('exit', onExit);
    };
    try {
      await ensureDatabase(port, password);
    } catch (err) {
      await stop();
      throw err;
    }
    opts.log(`embedded PostgreSQL ready on 127.0.0.1:${port}`);
    let stopping: Promise<void> | undefined;
    return { url: `postgres://postgres:${password}@127.0.0.1:${port}/${DATABASE}`, stop: () => (stopping ??= stop()) };
  }
}

/** A random password per data dir, so other local users cannot log in on the loopback port. */
async function loadOrCreatePassword(file: string, pgDir: string): Promise<string> {
  const existing = await readFile(file, 'utf8').catch(() => undefined);
  if (existing?.trim()) return existing.trim();
  if (await exists(join(pgDir, 'PG_VERSION'))) {
    throw new Error(`${pgDir} holds a cluster but ${file} is missing; restore it, or delete ${pgDir} to start over`);
  }
  const password = randomBytes(24).toString('hex');
  await writeFile(file, `${password}\n`, { mode: 0o600 });
  return password;
}

/**
 * A postmaster.pid left by a kill -9 blocks the next start when its PID is alive:
 * either our old postmaster, orphaned when its node process was killed (stop it),
 * or an unrelated process that reused the PID, common in containers (drop the file).
 */
async function clearStaleServer(pgDir: string, log: (msg: string) => void): Promise<void> {
  const pidFile = join(pgDir, 'postmaster.pid');
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return;
  if (!isAlive(pid)) return; // PostgreSQL itself discards a lock file whose PID is dead
  const command = await readFile(`/proc/${pid}/cmdline`, 'utf8').then((c) => c.replaceAll('\0', ' '))
    .catch(() => run('ps', ['-o', 'command=', '-p', String(pid)]).then((r) => r.stdout))
    .catch(() => undefined);
  if (command === undefined) return; // cannot tell: let PostgreSQL decide
  if (!command.includes(pgDir)) {
    log(`removing ${pidFile}: its PID ${pid} now belongs to another process`);
    await rm(pidFile, { force: true });
    return;
  }
  log(`stopping an orphaned PostgreSQL (PID ${pid}) left running on ${pgDir}`);
  process.kill(pid, 'SIGINT');
  // Not our child, so there is no exit event to wait on: poll until it is gone.
  for (const deadline = Date.now() + 60_000; isAlive(pid); await new Promise((r) => setTimeout(r, 100))) {
    if (Date.now() > deadline) throw new Error(`PostgreSQL PID ${pid} on ${pgDir} did not stop`);
  }
}

async function ensureDatabase(port: number, password: string): Promise<void> {
  const sql = postgres({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres', max: 1, onnotice: () => {} });
  try {
    const rows = await sql`select 1 from pg_database where datname = ${DATABASE}`;
    if (rows.length === 0) await sql.unsafe(`create database ${DATABASE}`);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const exists = (path: string) => stat(path).then(() => true, () => false);

/** A port the kernel just handed out; the tiny race until postgres binds it is retried above. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}
