/**
 * Secrets at rest (DESIGN §7): after a full lifecycle, a dump of every table of the database,
 * pg-boss's included, cast to text, holds no callback token, no API key, no provider credential
 * and no signing secret; logs neither. Nor does it hold anything a guess could be tested against
 * offline: no SHA-256 of an API key (they are HMACs under a server secret that is itself sealed),
 * no more of a key than its 7-character prefix, no unkeyed hash of an idempotent request.
 * Then the encryption key rotates and old blobs still open.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import pino from 'pino';
import postgres from 'postgres';
import { sha256Hex } from '../../src/callbacks/token.ts';
import { CreateTaskInput } from '../../src/tasks/schemas.ts';
import { createKeyring } from '../../src/secrets/keyring.ts';
import { canonicalJson } from '../../src/tasks/create-task.ts';
import { HttpFake } from '../fakes/http-fake.ts';
import { Receiver } from '../fakes/receiver.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { apiRequest, startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';

const secret = (label: string) => `${label}_${randomBytes(12).toString('hex')}`;
const CREDENTIALS = {
  bearer: secret('bearer'),
  apiKeyHeader: secret('xkey'),
  cookie: secret('cookie'),
  queryKey: secret('qkey'),
  password: secret('pw'),
  pollQueryKey: secret('pollq'),
  pollHeader: secret('pollh'),
};
const oldKey = randomBytes(32).toString('base64');
const newKey = randomBytes(32).toString('base64');
const logLines: string[] = [];
const logSink = new Writable({ write(chunk, _enc, done) { logLines.push(String(chunk)); done(); } });

let database: TestDatabase;
let relay: TestRelay;
let provider: HttpFake;
let receiver: Receiver;
const tokens: string[] = [];
let waitingId: string;
let idempotentRequest: ReturnType<typeof credentialedTask>;
/** A key stored the way releases before the server secret stored keys: plain SHA-256, 10-character prefix. */
const legacyKey = `legacy_${randomBytes(16).toString('hex')}`;

before(async () => {
  database = await createTestDatabase('secrets');
  relay = await startTestRelay({ database, env: { RELAY_ENCRYPTION_KEY: `k1:${oldKey}` }, log: pino({ level: 'trace' }, logSink) });
  provider = await HttpFake.start(() => ({ status: 202, body: { accepted: true } }));
  receiver = await Receiver.start(relay.webhookSecret);
});
after(async () => {
  await relay.stop();
  await provider.close();
  await receiver.close();
  await database.drop();
});

function credentialedTask(path: string, extra: Record<string, unknown> = {}) {
  return {
    targetUrl: `http://u:${CREDENTIALS.password}@127.0.0.1:${provider.port}/${path}?api_key=${CREDENTIALS.queryKey}&cb={asyncqueue_callback_url}`,
    headers: { Authorization: `Bearer ${CREDENTIALS.bearer}`, 'x-api-key': CREDENTIALS.apiKeyHeader, Cookie: CREDENTIALS.cookie, 'x-trace': 'visible' },
    body: { prompt: 'hello', webhook: '{asyncqueue_callback_url}' },
    onCompleteUrl: receiver.url,
    ...extra,
  };
}

async function dumpDatabase(): Promise<{ text: string; tables: string[] }> {
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    const tables = await sql<{ schema: string; name: string }[]>`
      select table_schema as schema, table_name as name from information_schema.tables
      where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema')`;
    const parts: string[] = [];
    for (const t of tables) {
      const rows = await sql.unsafe(`select t::text as row from "${t.schema}"."${t.name}" t`);
      parts.push(...rows.map((r) => String(r.row)));
    }
    return { text: parts.join('\n'), tables: tables.map((t) => `${t.schema}.${t.name}`) };
  } finally {
    await sql.end();
  }
}

test('the provider gets the real credentials; views show them redacted', async () => {
  idempotentRequest = credentialedTask('submit');
  const created = await relay.api('POST', '/v1/tasks', idempotentRequest, { 'idempotency-key': 'idem-1' });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  tokens.push(created.body.signalToken);
  const [submit] = await provider.waitForRequests(1, (r) => r.path === '/submit');
  // An explicit Authorization header wins over the URL's userinfo (see the unit test for the other case).
  assert.equal(submit.headers.authorization, `Bearer ${CREDENTIALS.bearer}`);
  assert.equal(submit.headers['x-api-key'], CREDENTIALS.apiKeyHeader);
  assert.equal(submit.url.searchParams.get('api_key'), CREDENTIALS.queryKey);
  assert.match(submit.url.searchParams.get('cb') ?? '', new RegExp(`/v1/callbacks/${created.body.signalToken}$`));

  const view = (await relay.api('GET', `/v1/tasks/${created.body.task.id}`)).body.task;
  assert.deepEqual(view.headers, { Authorization: '[redacted]', 'x-api-key': '[redacted]', Cookie: '[redacted]', 'x-trace': 'visible', 'content-type': 'application/json' });
  assert.equal(view.targetUrl, `http://[redacted]@127.0.0.1:${provider.port}/submit?api_key=[redacted]&cb={asyncqueue_callback_url}`);

  // The provider calls back: completed, webhook delivered and verified.
  await waitForStatus(relay, created.body.task.id, 'waiting');
  const callback = await apiRequest(relay.baseUrl, 'POST', `/v1/callbacks/${created.body.signalToken}`, { status: 'OK' });
  assert.equal(callback.status, 200);
  const [delivery] = await receiver.waitForDeliveries(created.body.task.id);
  assert.ok(delivery.payload, delivery.verifyError);
  assert.equal((delivery.payload.task as any).targetUrl, view.targetUrl);

  // Another one left waiting (its token still live), and one delayed for long after this test.
  const waiting = await relay.api('POST', '/v1/tasks', credentialedTask('waiting'));
  tokens.push(waiting.body.signalToken);
  waitingId = waiting.body.task.id;
  await waitForStatus(relay, waitingId, 'waiting');
  const delayed = await relay.api('POST', '/v1/tasks', credentialedTask('delayed', { delayUntil: new Date(Date.now() + 3_600_000).toISOString() }));
  tokens.push(delayed.body.signalToken);
  assert.equal(delayed.body.task.status, 'delayed');
});

test('a poll URL template carrying a credential is refused; forwardAuth polls send the sealed header', async () => {
  const pollConfig = { urlTemplate: `${provider.url}/status/{startResult.body.id}`, statusPath: 'status', doneValues: ['done'], interval: 1, initialDelay: 0 };
  const refused = await relay.api('POST', '/v1/tasks', {
    targetUrl: `${provider.url}/poll-submit`,
    pollConfig: { ...pollConfig, urlTemplate: `${pollConfig.urlTemplate}?api_key=${CREDENTIALS.pollQueryKey}` },
  });
  assert.equal(refused.status, 400, JSON.stringify(refused.body));
  assert.match(refused.body.detail, /^pollConfig\.urlTemplate: must not carry credentials/);

  provider.setHandler((req) => {
    if (req.path === '/poll-submit') return { status: 200, body: { id: 'j1' } };
    if (req.path === '/status/j1') return { status: 200, body: { status: 'done', output: 'x' } };
    return { status: 202, body: { accepted: true } };
  });
  const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/poll-submit`, headers: { 'x-api-key': CREDENTIALS.pollHeader }, pollConfig: { ...pollConfig, forwardAuth: true } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  await waitForStatus(relay, created.body.task.id, 'completed');
  const [poll] = await provider.waitForRequests(1, (r) => r.path === '/status/j1');
  assert.equal(poll.headers['x-api-key'], CREDENTIALS.pollHeader);
  const view = (await relay.api('GET', `/v1/tasks/${created.body.task.id}`)).body.task;
  assert.equal(view.pollConfig.urlTemplate, pollConfig.urlTemplate);
  assert.equal(view.headers['x-api-key'], '[redacted]');
});

test('a key stored as a plain SHA-256 by an older release works, and its first use replaces the hash by the HMAC', async () => {
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    await sql`insert into api_keys (id, project_id, name, key_hash, prefix) values ('key_legacy', 'default', 'legacy', ${sha256Hex(legacyKey)}, ${legacyKey.slice(0, 10)})`;
    // The first use is a create: the path that trusts the key cache and re-checks the key by hash in its INSERT.
    const created = await apiRequest(relay.baseUrl, 'POST', '/v1/tasks', { targetUrl: `${provider.url}/legacy`, delayUntil: '2999-01-01T00:00:00Z' }, { 'x-api-key': legacyKey });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const [row] = await sql`select key_hash, prefix from api_keys where id = 'key_legacy'`;
    assert.equal(row.key_hash, relay.running.relay.hashes.apiKey(legacyKey));
    assert.equal(row.prefix, legacyKey.slice(0, 7));
    assert.equal((await apiRequest(relay.baseUrl, 'GET', `/v1/tasks/${created.body.task.id}`, undefined, { 'x-api-key': legacyKey })).status, 200);
  } finally {
    await sql.end();
  }
});

test('a dump of every table, pg-boss included, holds no token, key or credential', async () => {
  const { text, tables } = await dumpDatabase();
  assert.ok(tables.includes('public.tasks') && tables.includes('pgboss.job'), tables.join(', '));
  assert.ok(text.includes(waitingId), 'the dump does contain the tasks');
  assert.ok(text.includes('task.dispatch'), 'the dump does contain pg-boss jobs');
  assert.ok(text.includes('[redacted]'));
  const forbidden: Record<string, string> = {
    ...CREDENTIALS,
    apiKey: relay.apiKey,
    webhookSecret: relay.webhookSecret,
    webhookSecretBody: relay.webhookSecret.slice('whsec_'.length),
    encryptionKey: oldKey,
    ...Object.fromEntries(tokens.map((t, i) => [`token${i}`, t])),
  };
  assert.equal(tokens.length, 3);
  for (const [what, value] of Object.entries(forbidden)) {
    assert.ok(!text.includes(value), `${what} appears in the database dump`);
    assert.ok(!logLines.join('').includes(value), `${what} appears in the logs`);
  }

  // Nothing a guess could be tested against offline: keys are HMACs, prefixes 7 characters.
  const offline: Record<string, string> = {
    apiKeySha256: sha256Hex(relay.apiKey),
    legacyKeySha256: sha256Hex(legacyKey),
    apiKeyPrefix8: relay.apiKey.slice(0, 8),
    legacyKeyPrefix8: legacyKey.slice(0, 8),
    // The idempotency fingerprint covers the request's credentials: keyed too.
    fingerprintSha256: sha256Hex(canonicalJson(CreateTaskInput.parse(idempotentRequest))),
    legacyKey,
  };
  for (const [what, value] of Object.entries(offline)) assert.ok(!text.includes(value), `${what} appears in the database dump`);
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    const keys = await sql<{ key_hash: string; prefix: string }[]>`select key_hash, prefix from api_keys`;
    assert.equal(keys.length, 2);
    for (const k of keys) {
      assert.match(k.key_hash, /^hmac:[0-9a-f]{64}$/);
      assert.equal(k.prefix.length, 7);
    }
    // The HMAC key is in the database only sealed; opened with the encryption key it is 32 bytes
    // that appear nowhere in the dump or the logs.
    const [setting] = await sql<{ sealed: string }[]>`select sealed_value as sealed from settings where name = 'server-secret'`;
    assert.match(setting.sealed, /^v1\.k1\./);
    const serverSecret = Buffer.from(createKeyring([{ kid: 'k1', key: Buffer.from(oldKey, 'base64') }]).open(setting.sealed), 'base64');
    assert.equal(serverSecret.length, 32);
    for (const encoding of ['hex', 'base64', 'base64url'] as const) {
      assert.ok(!text.includes(serverSecret.toString(encoding)), `the server secret (${encoding}) appears in the dump`);
      assert.ok(!logLines.join('').includes(serverSecret.toString(encoding)), `the server secret (${encoding}) appears in the logs`);
    }
  } finally {
    await sql.end();
  }
});

test('after rotating the key (new first, old kept) old blobs open and new ones use the new key', async () => {
  await relay.stop();
  relay = await startTestRelay({
    database,
    env: { RELAY_ENCRYPTION_KEY: `k2:${newKey},k1:${oldKey}`, RELAY_WEBHOOK_SECRET: relay.webhookSecret },
  });
  // The waiting task's view opens its k1 body; its signal completes it and the webhook is signed
  // with the project secret sealed under k1.
  const view = (await relay.api('GET', `/v1/tasks/${waitingId}`)).body.task;
  assert.equal(view.body, '{"prompt":"hello","webhook":"{asyncqueue_callback_url}"}');
  const signal = await apiRequest(relay.baseUrl, 'POST', `/v1/signals/${tokens[1]}`, { status: 'completed', result: 'done' });
  assert.equal(signal.status, 200, JSON.stringify(signal.body));
  const [delivery] = await receiver.waitForDeliveries(waitingId);
  assert.ok(delivery.payload, delivery.verifyError);

  const fresh = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/fresh`, headers: { authorization: 'Bearer x' } });
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql<{ id: string; sealed: string }[]>`select id, request_sealed as sealed from tasks`;
    const kids = new Map(rows.map((r) => [r.id, r.sealed.split('.')[1]]));
    assert.equal(kids.get(fresh.body.task.id), 'k2');
    assert.equal(kids.get(waitingId), 'k1');
  } finally {
    await sql.end();
  }
});
