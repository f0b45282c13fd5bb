/**
 * API keys over HTTP (issue 15, items 5 and 8): a revoked key is refused at once, idempotent
 * replays included, on every replica.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import postgres from 'postgres';
import { createApiKey } from '../../src/projects/api-keys.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { apiRequest, startTestRelay, type TestRelay } from '../helpers/relay.ts';

let database: TestDatabase;
let one: TestRelay;
let two: TestRelay;
let sql: postgres.Sql;

before(async () => {
  database = await createTestDatabase('api_keys');
  // API-only relays: the tasks stay pending, nothing is dispatched to the (closed) target.
  one = await startTestRelay({ database, env: { RELAY_ROLE: 'api' } });
  two = await startTestRelay({ database, env: { RELAY_ROLE: 'api', RELAY_ENCRYPTION_KEY: one.encryptionKey, RELAY_WEBHOOK_SECRET: one.webhookSecret } });
  sql = postgres(database.url, { max: 2, onnotice: () => {} });
});
after(async () => {
  await sql.end();
  await one.stop();
  await two.stop();
  await database.drop();
});

const task = { targetUrl: 'http://127.0.0.1:9/submit', waitForSignal: true };

test('a revoked key cannot replay its Idempotency-Key (401 at once, on every replica), and learns no token', async () => {
  const { id, key } = await createApiKey(one.running.relay.db, 'default', 'replayer');
  const as = (relay: TestRelay) => (idem: string) => apiRequest(relay.baseUrl, 'POST', '/v1/tasks', task, { 'x-api-key': key, 'idempotency-key': idem });
  const created = await as(one)('idem-revoked');
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.match(created.body.signalToken, /^[0-9a-f]{64}$/);
  // Both replicas have the key in their cache, and each has answered a replay from it.
  for (const relay of [one, two]) {
    const replay = await as(relay)('idem-revoked');
    assert.equal(replay.status, 200);
    assert.equal(replay.body.signalToken, created.body.signalToken);
  }

  await sql`update api_keys set revoked_at = now() where id = ${id}`;
  for (const relay of [one, two]) {
    const replay = await as(relay)('idem-revoked');
    assert.equal(replay.status, 401, JSON.stringify(replay.body));
    assert.equal(replay.body.code, 'unauthorized');
    assert.ok(!JSON.stringify(replay.body).includes(created.body.signalToken), 'no token in the refusal');
    // A new key is refused as well, and nothing is written for it.
    assert.equal((await as(relay)(`idem-new-${relay.baseUrl}`)).status, 401);
  }
  const [{ n }] = await sql`select count(*)::int as n from tasks where idempotency_key like 'idem-new-%'`;
  assert.equal(n, 0);
  // The task itself is untouched and still visible to the project's other keys.
  const view = await one.api('GET', `/v1/tasks/${created.body.task.id}`);
  assert.equal(view.status, 200);
  assert.equal(view.body.task.status, 'pending');
});
