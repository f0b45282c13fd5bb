/**
 * API keys over HTTP (issue 15, items 5 and 8 and the unknown-key cache): a revoked key is refused
 * at once, idempotent replays included, on every replica; keys and fingerprints stored by an older
 * release keep working and are upgraded; an unknown key is answered from memory for a few seconds.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import postgres from 'postgres';
import { sha256Hex } from '../../src/callbacks/token.ts';
import { CreateTaskInput } from '../../src/tasks/schemas.ts';
import { createApiKey, storeApiKey } from '../../src/projects/api-keys.ts';
import { UNKNOWN_KEY_TTL_MS } from '../../src/projects/key-cache.ts';
import { canonicalJson } from '../../src/tasks/create-task.ts';
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
  const { id, key } = await createApiKey(one.running.relay.db, one.running.relay.hashes, 'default', 'replayer');
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

test('a task created before fingerprints were keyed (plain SHA-256) is still replayed, not refused as a different body', async () => {
  const body = { ...task, metadata: { legacy: 'yes' } };
  const created = await one.api('POST', '/v1/tasks', body, { 'idempotency-key': 'idem-legacy' });
  assert.equal(created.status, 201);
  const canonical = canonicalJson(CreateTaskInput.parse(body));
  const [row] = await sql`select idempotency_fingerprint as f from tasks where id = ${created.body.task.id}`;
  assert.equal(row.f, one.running.relay.hashes.fingerprint(canonical));
  assert.notEqual(row.f, sha256Hex(canonical));
  // As an older release stored it:
  await sql`update tasks set idempotency_fingerprint = ${sha256Hex(canonical)} where id = ${created.body.task.id}`;
  const replay = await one.api('POST', '/v1/tasks', body, { 'idempotency-key': 'idem-legacy' });
  assert.equal(replay.status, 200, JSON.stringify(replay.body));
  assert.equal(replay.body.task.id, created.body.task.id);
  const different = await one.api('POST', '/v1/tasks', { ...body, metadata: { legacy: 'no' } }, { 'idempotency-key': 'idem-legacy' });
  assert.equal(different.status, 422);
});

test('RELAY_API_KEYS stored as a plain SHA-256 by an older release are upgraded to the HMAC at boot', async () => {
  const key = `old_${randomBytes(20).toString('hex')}`;
  await sql`insert into api_keys (id, project_id, name, key_hash, prefix) values ('key_oldenv', 'default', 'RELAY_API_KEYS', ${sha256Hex(key)}, ${key.slice(0, 10)})`;
  const third = await startTestRelay({ database, env: { RELAY_ROLE: 'api', RELAY_API_KEYS: key, RELAY_ENCRYPTION_KEY: one.encryptionKey, RELAY_WEBHOOK_SECRET: one.webhookSecret } });
  try {
    const rows = await sql`select id, key_hash, prefix from api_keys where key_hash in (${sha256Hex(key)}, ${third.running.relay.hashes.apiKey(key)})`;
    assert.deepEqual(rows.map((r) => [r.id, r.key_hash, r.prefix]), [['key_oldenv', third.running.relay.hashes.apiKey(key), key.slice(0, 7)]]);
    assert.equal((await apiRequest(third.baseUrl, 'GET', '/v1/tasks', undefined, { 'x-api-key': key })).status, 200);
  } finally {
    await third.stop();
  }
});

test('an unknown key is answered from memory for a few seconds: a key stored meanwhile works once that has passed', async () => {
  const key = `late_${randomBytes(20).toString('hex')}`;
  const get = () => apiRequest(two.baseUrl, 'GET', '/v1/tasks', undefined, { 'x-api-key': key });
  const refusedAt = Date.now();
  assert.equal((await get()).status, 401);
  await storeApiKey(two.running.relay.db, two.running.relay.hashes, 'default', 'late', key);
  // Stored now, but this replica refused it a moment ago: it answers from memory, no query.
  assert.equal((await get()).status, 401);
  // The other replica never saw it refused: it works there at once.
  assert.equal((await apiRequest(one.baseUrl, 'GET', '/v1/tasks', undefined, { 'x-api-key': key })).status, 200);
  let status = 401;
  while (status === 401 && Date.now() - refusedAt < UNKNOWN_KEY_TTL_MS + 2_000) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    status = (await get()).status;
  }
  const after = Date.now() - refusedAt;
  assert.equal(status, 200, `still refused ${after} ms after the first refusal`);
  assert.ok(after >= UNKNOWN_KEY_TTL_MS - 100, `accepted after ${after} ms: the refusal was not remembered`);
});
