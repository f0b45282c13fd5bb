/**
 * postgres.js 3.4.9 crashes the process when a connection dies under a reserved handle
 * (porsager/postgres#1208): the next write runs from setImmediate on a null socket, a TypeError
 * no promise can catch. patches/postgres+3.4.9.patch (applied by `npm install`) fixes the
 * driver; these tests kill real backends and prove the process survives, every query settles,
 * and the pool keeps working.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import postgres from 'postgres';
import { isDriverPatched } from '../../src/db/client.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';

let database: TestDatabase;
let killer: postgres.Sql;
const uncaught: unknown[] = [];
const onUncaught = (error: unknown) => uncaught.push(error);

before(async () => {
  database = await createTestDatabase('driver_patch');
  killer = postgres(database.url, { max: 1, onnotice: () => {} });
  process.on('uncaughtException', onUncaught);
});
after(async () => {
  process.off('uncaughtException', onUncaught);
  await killer.end();
  await database.drop();
});

/** How a query on a killed backend may fail: the reset, the server's FATAL, or the close. */
const CONNECTION_LOST = new Set(['ECONNRESET', 'CONNECTION_CLOSED', '57P01']);

/** A query's outcome within 3 s: its first row's value, the error code, or "hang". */
function settle(query: Promise<Array<{ v: number }>>): Promise<number | string> {
  const hang = new Promise<string>((resolve) => setTimeout(() => resolve('hang'), 3000).unref());
  return Promise.race([query.then((rows) => rows[0].v, (error: { code?: string }) => error.code ?? 'error'), hang]);
}

test('the installed postgres.js carries the patch', () => {
  assert.equal(isDriverPatched(), true, 'run npm install: it applies patches/ with patch-package');
});

test('a reserved connection whose backend is terminated fails its queries and does not poison the pool', async () => {
  for (let round = 0; round < 10; round++) {
    const sql = postgres(database.url, { max: 2, onnotice: () => {} });
    try {
      const reserved = await sql.reserve();
      const [{ pid }] = await reserved<Array<{ pid: number }>>`select pg_backend_pid() as pid`;
      await killer`select pg_terminate_backend(${pid})`;
      // Unpatched: the first or second of these hangs forever, then the process dies.
      const first = await settle(reserved`select 1 as v`);
      const second = await settle(reserved`select 2 as v`);
      assert.ok(CONNECTION_LOST.has(String(first)), `round ${round}: first ${first}`);
      assert.ok(CONNECTION_LOST.has(String(second)), `round ${round}: second ${second}`);
      reserved.release();
      // The dead connection went back to the pool as closed, not as open: every query works.
      const after = await Promise.all([3, 4, 5, 6].map((v) => settle(sql`select ${v}::int as v`)));
      assert.deepEqual(after, [3, 4, 5, 6], `round ${round}`);
    } finally {
      await sql.end({ timeout: 1 });
    }
  }
  assert.deepEqual(uncaught, []);
});

test('a transaction pipelined on a reserved connection that dies mid-way rejects, and the next one commits', async () => {
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    await sql`create table if not exists driver_patch (n int)`;
    const conn = await sql.reserve();
    const [{ pid }] = await conn<Array<{ pid: number }>>`select pg_backend_pid() as pid`;
    const pipelined = Promise.all([conn`begin`, conn`select pg_sleep(0.3)`, conn`insert into driver_patch values (1)`, conn`commit`]);
    await killer`select pg_terminate_backend(${pid})`;
    await assert.rejects(pipelined);
    // What our transaction helper does after a failure: a rollback that cannot be sent, then release.
    await assert.rejects(conn`rollback`);
    conn.release();
    await sql.begin((tx) => [tx`insert into driver_patch values (2)`]);
    const rows = await sql<Array<{ n: number }>>`select n from driver_patch order by n`;
    assert.deepEqual(rows.map((r) => r.n), [2]);
  } finally {
    await sql.end({ timeout: 1 });
  }
  assert.deepEqual(uncaught, []);
});

test('reservations made while the database is unreachable all settle, and none takes a connection with it', async () => {
  const target = new URL(database.url);
  const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
  const sql = postgres(proxy.via(database.url), { max: 3, onnotice: () => {}, backoff: () => 0.2, connect_timeout: 2 });
  try {
    await Promise.all([1, 2, 3].map(() => sql`select pg_sleep(0.05)`));
    proxy.cut();
    await assert.rejects(sql`select 1`);
    // Twenty transactions while nothing answers: each fails or waits for the database. Unpatched,
    // a reservation that a failed attempt took off the queue as its next `initial` was dropped
    // when that attempt succeeded: it waited forever, and the connection went with it.
    const outcomes = Array.from({ length: 20 }, async () => {
      const conn = await sql.reserve();
      try {
        await conn`select 1`;
        return 'ok';
      } finally {
        conn.release();
      }
    }).map((p) => p.catch((error: { code?: string }) => error.code ?? 'error'));
    await new Promise((resolve) => setTimeout(resolve, 500));
    await proxy.restore();
    const settled = await Promise.all(outcomes.map((o) => Promise.race([o, new Promise((resolve) => setTimeout(() => resolve('hang'), 5000).unref())])));
    assert.ok(!settled.includes('hang'), JSON.stringify(settled));
    assert.ok(settled.includes('ok'), JSON.stringify(settled));
    // All three connections are back in the pool: three transactions at once.
    const held = await Promise.all([1, 2, 3].map(() => Promise.race([sql.reserve(), new Promise<never>((_, reject) => setTimeout(() => reject(new Error('a connection was lost')), 3000).unref())])));
    for (const conn of held) conn.release();
  } finally {
    await sql.end({ timeout: 1 });
    await proxy.close();
  }
  assert.deepEqual(uncaught, []);
});
