import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import postgres from 'postgres';
import { startEmbeddedPostgres } from '../../src/db/embedded.ts';

let dataDir: string;
const logs: string[] = [];
const log = (msg: string) => logs.push(msg);

before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'relay-embedded-pg-'));
});
after(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

async function query<T extends object>(url: string, run: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return await run(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

test('first start initialises the cluster, creates the relay database and leaves signals alone', async () => {
  const signalListeners = ['SIGINT', 'SIGTERM', 'SIGHUP'].map((s) => process.listenerCount(s));
  const server = await startEmbeddedPostgres({ dataDir, log });
  try {
    assert.match(server.url, /^postgres:\/\/postgres:[0-9a-f]+@127\.0\.0\.1:\d+\/relay$/);
    assert.deepEqual(['SIGINT', 'SIGTERM', 'SIGHUP'].map((s) => process.listenerCount(s)), signalListeners);
    const rows = await query(server.url, (sql) => sql`select 1 as one, current_database() as db`);
    assert.deepEqual([...rows], [{ one: 1, db: 'relay' }]);
    // A new database gets its first statistics within seconds (embedded-process.ts).
    const [naptime] = await query(server.url, (sql) => sql`select current_setting('autovacuum_naptime') as value`);
    assert.equal(naptime.value, '10s');
    await query(server.url, (sql) => sql`create table survivor (note text)`);
    await query(server.url, (sql) => sql`insert into survivor values ('kept')`);
  } finally {
    await server.stop();
  }
  assert.ok(logs.some((l) => l.includes('initialising')));
});

test('a second start on the same dir reuses the cluster and its data', async () => {
  logs.length = 0;
  const server = await startEmbeddedPostgres({ dataDir, log });
  try {
    const rows = await query(server.url, (sql) => sql`select note from survivor`);
    assert.deepEqual([...rows], [{ note: 'kept' }]);
  } finally {
    await server.stop();
    await server.stop(); // idempotent
  }
  assert.ok(!logs.some((l) => l.includes('initialising')));
});

test('a postmaster.pid naming a live unrelated PID does not block the start', async () => {
  // PID 1 is always alive and never our postmaster: what a container restart leaves behind.
  await writeFile(join(dataDir, 'pg', 'postmaster.pid'), `1\n${join(dataDir, 'pg')}\n`);
  const server = await startEmbeddedPostgres({ dataDir, log });
  try {
    const rows = await query(server.url, (sql) => sql`select count(*)::int as n from survivor`);
    assert.equal(rows[0].n, 1);
  } finally {
    await server.stop();
  }
});

test('a postmaster orphaned by a kill -9 of its node process is stopped and replaced', async () => {
  const script = `import { startEmbeddedPostgres } from ${JSON.stringify(new URL('../../src/db/embedded.ts', import.meta.url).href)};
    const s = await startEmbeddedPostgres({ dataDir: ${JSON.stringify(dataDir)}, log: () => {} });
    console.log(s.url); setInterval(() => {}, 1 << 30);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [firstLine] = await once(createInterface({ input: child.stdout! }), 'line');
  assert.match(firstLine, /@127\.0\.0\.1:\d+\/relay$/);
  const orphanPid = Number((await readFile(join(dataDir, 'pg', 'postmaster.pid'), 'utf8')).split('\n')[0]);
  child.kill('SIGKILL');
  await once(child, 'exit');
  assert.doesNotThrow(() => process.kill(orphanPid, 0), 'the postmaster outlives its killed parent');

  const server = await startEmbeddedPostgres({ dataDir, log });
  try {
    assert.notEqual(server.url, firstLine);
    assert.throws(() => process.kill(orphanPid, 0), /ESRCH/);
    const rows = await query(server.url, (sql) => sql`select note from survivor`);
    assert.deepEqual([...rows], [{ note: 'kept' }]);
  } finally {
    await server.stop();
  }
});
