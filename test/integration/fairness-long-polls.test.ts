import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import postgres from 'postgres';
import { Agent, request } from 'undici';
import { HttpFake } from '../fakes/http-fake.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { addTenant, apiRequest, startTestRelay, type TestRelay, type TestTenant, waitForStatus } from '../helpers/relay.ts';

/*
 * Issue 15 item 3: each `GET /v1/tasks/:id?wait=` re-read its task every 100 ms with no cap per
 * key; 2,000 of them on one key took every tenant's create and signal latency from 5–19 ms to
 * 290–445 ms. Long-polls now wait on one change feed per process (LISTEN/NOTIFY, db/change-feed.ts).
 */

let database: TestDatabase;
let relay: TestRelay;
/** A second relay process on the same database (same keys), API only, with a cap of 3 long-polls per key. */
let second: TestRelay;
let other: TestTenant;
let target: HttpFake;
let sql: postgres.Sql;

before(async () => {
  database = await createTestDatabase('long_polls');
  relay = await startTestRelay({ database, env: { RELAY_LONG_POLLS_PER_KEY: '1000' } });
  second = await startTestRelay({
    database,
    env: { RELAY_ENCRYPTION_KEY: relay.encryptionKey, RELAY_WEBHOOK_SECRET: relay.webhookSecret, RELAY_API_KEYS: relay.apiKey, RELAY_ROLE: 'api', RELAY_LONG_POLLS_PER_KEY: '3' },
  });
  other = await addTenant(relay, 'tenant-b');
  target = await HttpFake.start();
  sql = postgres(database.url, { max: 1, onnotice: () => {} });
});

after(async () => {
  await sql.end();
  await Promise.all([relay.stop(), second.stop()]);
  await target.close();
  await database.drop();
});

async function waitingTask(on: TestRelay = relay): Promise<{ id: string; token: string }> {
  const created = await on.api('POST', '/v1/tasks', { targetUrl: `${target.url}/submit`, waitForSignal: true });
  assert.equal(created.status, 201);
  await waitForStatus(on, created.body.task.id, 'waiting');
  return { id: created.body.task.id, token: created.body.signalToken };
}

async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Requests to the second relay: the relays share one database, so the first relay's key is everyone's. */
const onSecond = (method: string, path: string, body?: unknown, key = relay.apiKey) => apiRequest(second.baseUrl, method, path, body, { 'x-api-key': key });

const transactions = async () => Number((await sql`select xact_commit + xact_rollback as n from pg_stat_database where datname = current_database()`)[0].n);

test("400 long-polls open on one key: the database is not polled, and another project's creates and signals stay fast", async () => {
  const tasks = await Promise.all(Array.from({ length: 10 }, () => waitingTask()));
  const agent = new Agent({ connections: null });
  const polls = Array.from({ length: 400 }, (_, i) =>
    request(`${relay.baseUrl}/v1/tasks/${tasks[i % tasks.length].id}?wait=20&seenStatus=waiting`, { dispatcher: agent, headers: { 'x-api-key': relay.apiKey } }),
  );
  // The long-polls of the other tasks are cut when the test ends.
  for (const poll of polls) poll.catch(() => {});
  try {
    await until(() => relay.running.relay.changes.watching === 400, 'the 400 long-polls to wait');
    // Two seconds with nothing but the long-polls (and the two relays' pg-boss workers, about 30
    // transactions/s here): 400 waiters that polled every 100 ms were 4,000 reads a second.
    const before = await transactions();
    const started = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const perSecond = ((await transactions()) - before) / ((Date.now() - started) / 1000);
    assert.ok(perSecond < 200, `${Math.round(perSecond)} transactions/s with 400 long-polls open`);

    const latencies: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t0 = Date.now();
      const created = await other.api('POST', '/v1/tasks', { targetUrl: `${target.url}/b`, waitForSignal: true });
      const t1 = Date.now();
      const signalled = await other.api('POST', `/v1/signals/${created.body.signalToken}`, { status: 'completed' });
      latencies.push(t1 - t0, Date.now() - t1);
      assert.deepEqual([created.status, signalled.status], [201, 200]);
    }
    assert.ok(Math.max(...latencies) < 1000, `tenant B's create/signal latencies: ${latencies.join(', ')} ms`);

    // A change answers every long-poll of that task, with the new status.
    await second.api('POST', `/v1/signals/${tasks[0].token}`, { status: 'completed' });
    const answers = await Promise.all(polls.filter((_, i) => i % tasks.length === 0));
    for (const answer of answers) {
      assert.equal(answer.statusCode, 200);
      assert.equal(((await answer.body.json()) as { task: { status: string } }).task.status, 'completed');
    }
  } finally {
    await agent.destroy().catch(() => {});
  }
});

test('a long-poll answers within ~100 ms of a change made by another relay process on the same database', async () => {
  for (let round = 0; round < 3; round++) {
    const task = await waitingTask();
    const polled = relay.api('GET', `/v1/tasks/${task.id}?wait=10&seenStatus=waiting`);
    await until(() => relay.running.relay.changes.watching === 1, 'the long-poll to wait');
    const signalled = await second.api('POST', `/v1/signals/${task.token}`, { status: 'completed' });
    const signalledAt = Date.now();
    assert.equal(signalled.status, 200);
    const answer = await polled;
    const ms = Date.now() - signalledAt;
    assert.equal(answer.body.task.status, 'completed');
    assert.ok(ms < 500, `answered ${ms} ms after the other process's signal`);
  }
});

test("a claim made by another process's worker reaches a long-poll on an api-only process", async () => {
  // Delayed: the long-poll is in before a worker (only the first relay runs them) can dispatch it.
  const created = await onSecond('POST', '/v1/tasks', { targetUrl: `${target.url}/submit`, waitForSignal: true, delayUntil: new Date(Date.now() + 3000).toISOString() });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const polled = onSecond('GET', `/v1/tasks/${created.body.task.id}?wait=15&seenStatus=delayed`);
  await until(() => second.running.relay.changes.watching === 1, 'the long-poll to wait');
  const answer = await polled;
  assert.notEqual(answer.body.task.status, 'delayed');
  const events = await sql`select at from task_events where task_id = ${created.body.task.id} and type = 'status.changed' order by id limit 1`;
  const lagMs = Date.now() - new Date(events[0].at).getTime();
  assert.ok(lagMs < 1000, `answered ${lagMs} ms after the claim`);
});

test('past RELAY_LONG_POLLS_PER_KEY a long-poll is refused with 429 at once; other keys, plain reads and later long-polls are not', async () => {
  const { id, token } = await waitingTask();
  const open = [1, 2, 3].map(() => onSecond('GET', `/v1/tasks/${id}?wait=5&seenStatus=waiting`));
  await until(() => second.running.relay.changes.watching === 3, 'three long-polls to wait');
  const started = Date.now();
  const refused = await onSecond('GET', `/v1/tasks/${id}?wait=5&seenStatus=waiting`);
  assert.equal(refused.status, 429);
  assert.ok(Date.now() - started < 1000, 'refused at once');
  assert.equal(refused.headers.get('retry-after'), '5', 'come back after the wait asked for: no more requests than long-polling');
  assert.equal(refused.body.code, 'rate_limited');
  assert.equal((await onSecond('GET', `/v1/tasks/${id}`)).status, 200, 'a read without wait is not a long-poll');
  assert.equal((await onSecond('GET', `/v1/tasks/${id}?wait=1`, undefined, other.apiKey)).status, 404, 'another key is counted on its own (and sees no foreign task)');
  await onSecond('POST', `/v1/signals/${token}`, { status: 'completed' });
  for (const answer of await Promise.all(open)) assert.equal(answer.body.task.status, 'completed');
  assert.equal((await onSecond('GET', `/v1/tasks/${id}?wait=5`)).status, 200, 'the slots are free again');
});
