import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import postgres from 'postgres';
import { CHANGE_CHANNEL, type ChangeFeed, createChangeFeed } from '../../src/db/change-feed.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';

/*
 * The change feed on its own, against real PostgreSQL: versions live in a scratch table, a second
 * feed that never listens plays another process, and the listening feed reaches PostgreSQL
 * through a TCP proxy the test can cut (a database restart as its LISTEN connection sees it).
 */

let database: TestDatabase;
let sql: postgres.Sql;
let proxy: TcpProxy;
let notifies = 0;
let listener: ChangeFeed;
let publisher: ChangeFeed;
const errors: string[] = [];

const versions = async (ids: string[]) => {
  const rows = await sql`select id::text, v from feed_versions where id = any(${ids}::uuid[])`;
  return new Map(rows.map((r) => [r.id as string, r.v as string]));
};

before(async () => {
  database = await createTestDatabase('feed');
  sql = postgres(database.url, {
    max: 4,
    onnotice: () => {},
    debug: (_conn, query) => {
      if (query.includes('pg_notify')) notifies++;
    },
  });
  await sql`create table feed_versions (id uuid primary key, v text not null)`;
  proxy = await startTcpProxy({ host: new URL(database.url).hostname, port: Number(new URL(database.url).port || 5432) });
  const onError = (_err: unknown, what: string) => void errors.push(what);
  listener = createChangeFeed({ sql, listenUrl: proxy.via(database.url), versions, recheckMs: 60_000, fallbackRecheckMs: 200, onError });
  publisher = createChangeFeed({ sql, versions, onError });
  await Promise.all([listener.start(), publisher.start()]);
});

after(async () => {
  await Promise.all([listener.close(), publisher.close()]);
  await sql.end();
  await proxy.close();
  await database.drop();
});

/** A watched row: resolves with the ms between `change()` and the watcher's call. */
async function watched(feed: ChangeFeed) {
  const id = randomUUID();
  await sql`insert into feed_versions values (${id}, 'a')`;
  let changedAt = 0;
  const fired = new Promise<number>((resolve) => feed.watch(id, 'a', () => resolve(Date.now() - changedAt)));
  return {
    id,
    fired,
    async change(publish = true) {
      await sql`update feed_versions set v = 'b' where id = ${id}`;
      changedAt = Date.now();
      if (publish) publisher.publish([id]);
    },
  };
}

async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test("another process's publish reaches a watcher within milliseconds; a publish of an unchanged row calls no one", async () => {
  assert.equal(listener.listening, true);
  const unchanged = await watched(listener);
  publisher.publish([unchanged.id]);
  const row = await watched(listener);
  await row.change();
  const ms = await row.fired;
  assert.ok(ms < 500, `the watcher was called ${ms} ms after the change`);
  let calledEarly = false;
  void unchanged.fired.then(() => (calledEarly = true));
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(calledEarly, false, 'a notification is a hint: the version had not moved');
});

test('a burst of publishes is a couple of NOTIFY statements, payloads split under the size limit, every id delivered', async () => {
  const rows = await Promise.all(Array.from({ length: 700 }, () => watched(listener)));
  await sql`update feed_versions set v = 'b' where id = any(${rows.map((r) => r.id)}::uuid[])`;
  const before = notifies;
  for (const row of rows) publisher.publish([row.id]);
  await Promise.all(rows.map((r) => r.fired));
  assert.ok(notifies - before <= 2, `${notifies - before} NOTIFY statements for 700 publishes`);
});

test('a lost LISTEN connection: watchers are found by re-reading meanwhile, and once PostgreSQL is reachable again the feed listens again', async () => {
  proxy.cut();
  await until(() => !listener.listening, 'the feed to notice its LISTEN connection is gone');
  const during = await watched(listener);
  await during.change();
  // The notification is lost (nobody listens): the fallback re-check (every 200 ms here) finds it.
  const ms = await during.fired;
  assert.ok(ms < 2000, `found ${ms} ms after the change`);
  // Stay unreachable past a failed LISTEN attempt (they are a second apart): postgres.js's own
  // listen gives up after one; this feed keeps trying.
  await until(() => errors.some((e) => e.includes('LISTEN failed')), 'a failed LISTEN attempt');
  await proxy.restore();
  await until(() => listener.listening, 'the feed to listen again', 15_000);

  const after = await watched(listener);
  await after.change();
  assert.ok((await after.fired) < 500, 'notifications flow again (the re-check is a minute away)');
});

test('an unpublished change is found by the safety re-check; closing the feed calls every watcher', async () => {
  const feed = createChangeFeed({ sql, listenUrl: database.url, versions, recheckMs: 300, onError: () => {} });
  await feed.start();
  try {
    const silent = await watched(feed);
    await silent.change(false);
    assert.ok((await silent.fired) < 1500);
    const pending = await watched(feed);
    await feed.close();
    await pending.fired;
    let late = false;
    feed.watch(randomUUID(), 'a', () => (late = true));
    await until(() => late, 'a watch on a closed feed to be answered');
  } finally {
    await feed.close();
  }
});

test('the channel carries nothing but task ids', async () => {
  const heard: string[] = [];
  const raw = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    await raw.listen(CHANGE_CHANNEL, (payload) => heard.push(payload));
    const ids = [randomUUID(), randomUUID()];
    publisher.publish(ids);
    await until(() => heard.length > 0, 'the notification');
    assert.deepEqual(heard.join(',').split(',').sort(), [...ids].sort());
  } finally {
    await raw.end();
  }
});
