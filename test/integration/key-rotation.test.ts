/**
 * Rotating RELAY_ENCRYPTION_KEY (issue 15, item 9). Following the README — add the new key first,
 * restart (the boot re-seals the server secret and the project secrets), `asyncrelay reseal` (the
 * tasks, in batches), then drop the old key — loses nothing. Dropping the old key too early used to
 * stop the boot (`sealed secret uses unknown key id`); now the relay boots, says what cannot be
 * opened, fails only what needs it, and heals when the key is put back.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import pino from 'pino';
import postgres from 'postgres';
import { createApiKey } from '../../src/projects/api-keys.ts';
import { ensureProject } from '../../src/projects/projects.ts';
import { HttpFake } from '../fakes/http-fake.ts';
import { Receiver } from '../fakes/receiver.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { NODE_BIN, REPO_ROOT } from '../helpers/process.ts';
import { apiRequest, startTestRelay, type TestRelay } from '../helpers/relay.ts';
import { waitForEvent } from '../helpers/wait.ts';

const k1 = randomBytes(32).toString('base64');
const k2 = randomBytes(32).toString('base64');
const webhookSecret = `whsec_${randomBytes(24).toString('base64')}`;
let provider: HttpFake;
let receiver: Receiver;

before(async () => {
  provider = await HttpFake.start(() => ({ status: 202, body: { accepted: true } }));
  receiver = await Receiver.start(webhookSecret);
});
after(async () => {
  await provider.close();
  await receiver.close();
});

/** Log lines, as text, with an event per line so a test can wait for one. */
function capturedLog() {
  const lines: string[] = [];
  const events = new EventEmitter();
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      events.emit('line');
      done();
    },
  });
  return { lines, events, log: pino({ level: 'info' }, sink), has: (text: string) => lines.some((l) => l.includes(text)) };
}

function start(database: TestDatabase, keys: string, log?: pino.Logger): Promise<TestRelay> {
  return startTestRelay({ database, log, env: { RELAY_ENCRYPTION_KEY: keys, RELAY_WEBHOOK_SECRET: webhookSecret } });
}

function reseal(database: TestDatabase, keys: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(NODE_BIN, ['src/cli.ts', 'reseal', ...args], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: database.url, RELAY_ENCRYPTION_KEY: keys },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr })));
}

/** Key ids of every sealed blob: `settings`, `project:<id>`, `task`. */
async function kids(database: TestDatabase): Promise<Record<string, string[]>> {
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    const out: Record<string, string[]> = {};
    const add = (what: string, blob: string) => (out[what] ??= []).push(blob.split('.')[1]);
    for (const r of await sql`select sealed_value from settings`) add('settings', r.sealed_value);
    for (const r of await sql`select id, webhook_secret_sealed from projects order by id`) add(`project:${r.id}`, r.webhook_secret_sealed);
    for (const r of await sql`select request_sealed from tasks`) add('task', r.request_sealed);
    return out;
  } finally {
    await sql.end();
  }
}

/** A second project with its own secret, key and receiver; a task of each project waiting for its callback. */
async function seed(relay: TestRelay) {
  const { db, keyring, hashes } = relay.running.relay;
  const acme = await ensureProject(db, keyring, 'acme');
  const acmeKey = (await createApiKey(db, hashes, 'acme', 'acme')).key;
  const acmeReceiver = await Receiver.start(acme.webhookSecret!);
  const create = async (key: string, extra: Record<string, unknown>) => {
    const answer = await apiRequest(relay.baseUrl, 'POST', '/v1/tasks', { targetUrl: `${provider.url}/submit`, waitForSignal: true, body: { prompt: 'hi' }, ...extra }, { 'x-api-key': key });
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    return answer.body;
  };
  const waiting = await create(relay.apiKey, { onCompleteUrl: receiver.url });
  const acmeWaiting = await create(acmeKey, { onCompleteUrl: acmeReceiver.url });
  for (let i = 0; i < 4; i++) await create(relay.apiKey, { delayUntil: '2999-01-01T00:00:00Z' });
  return { acmeKey, acmeReceiver, waiting, acmeWaiting };
}

test('the README rotation: new key first, restart, reseal, drop the old key — nothing is lost', async () => {
  const database = await createTestDatabase('rotation');
  let relay = await start(database, `k1:${k1}`);
  const seeded = await seed(relay);
  try {
    await relay.stop();

    // 1. The new key goes first, the old one stays: the boot re-seals what it needs under k2.
    relay = await start(database, `k2:${k2},k1:${k1}`);
    let now = await kids(database);
    assert.deepEqual(now.settings, ['k2']);
    assert.deepEqual([now['project:acme'], now['project:default']], [['k2'], ['k2']]);
    assert.deepEqual(now.task, Array(6).fill('k1'), 'tasks are left to the reseal command');

    // 2. `asyncrelay reseal`, two tasks per statement, while the relay runs.
    const run = await reseal(database, `k2:${k2},k1:${k1}`, '--batch', '2');
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /^project secrets: 0 re-sealed, 0 cannot be opened$/m);
    assert.match(run.stdout, /^tasks: 6 re-sealed, 0 cannot be opened$/m);
    assert.match(run.stdout, /everything is sealed under "k2": the other keys can be dropped/);
    assert.equal(run.stderr.trim().split('\n').length, 3, `one progress line per batch of 2: ${run.stderr}`);
    now = await kids(database);
    assert.deepEqual(Object.values(now).flat().filter((kid) => kid !== 'k2'), []);
    // Run again (as after an interruption): nothing left to do.
    assert.match((await reseal(database, `k2:${k2},k1:${k1}`)).stdout, /^tasks: 0 re-sealed, 0 cannot be opened$/m);
    await relay.stop();

    // 3. The old key is dropped: the relay boots, keys work, tasks open, both projects' webhooks are signed.
    relay = await start(database, `k2:${k2}`);
    assert.equal((await relay.api('GET', '/v1/tasks')).status, 200);
    const acmeView = await apiRequest(relay.baseUrl, 'GET', `/v1/tasks/${seeded.acmeWaiting.task.id}`, undefined, { 'x-api-key': seeded.acmeKey });
    assert.equal(acmeView.status, 200);
    assert.equal(acmeView.body.task.body, '{"prompt":"hi"}');
    for (const t of [seeded.waiting, seeded.acmeWaiting]) {
      const signal = await apiRequest(relay.baseUrl, 'POST', `/v1/signals/${t.signalToken}`, { status: 'completed', result: 'ok' });
      assert.equal(signal.status, 200, JSON.stringify(signal.body));
    }
    const [delivery] = await receiver.waitForDeliveries(seeded.waiting.task.id);
    assert.ok(delivery.payload, delivery.verifyError);
    const [acmeDelivery] = await seeded.acmeReceiver.waitForDeliveries(seeded.acmeWaiting.task.id);
    assert.ok(acmeDelivery.payload, acmeDelivery.verifyError);
  } finally {
    await relay.stop();
    await seeded.acmeReceiver.close();
    await database.drop();
  }
});

test('the old key dropped too early: the relay still boots, says why, fails only what needs the key, and heals once it is back', async () => {
  const database = await createTestDatabase('rotation_early');
  let relay = await start(database, `k1:${k1}`);
  const seeded = await seed(relay);
  const captured = capturedLog();
  try {
    await relay.stop();
    relay = await start(database, `k2:${k2}`, captured.log);

    // It says what cannot be opened and what that stops.
    assert.ok(captured.has('the server secret (settings \\"server-secret\\") cannot be opened: sealed secret uses unknown key id \\"k1\\"'), captured.lines.join(''));
    assert.ok(captured.has('the webhook signing secret of project \\"acme\\" cannot be opened'), captured.lines.join(''));
    // The default project's secret comes from RELAY_WEBHOOK_SECRET: re-sealed from it, not lost.
    assert.deepEqual((await kids(database))['project:default'], ['k2']);

    // API keys need the server secret: 503, a problem that says so, and no 500.
    const refused = await relay.api('GET', '/v1/tasks');
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
    assert.equal(refused.body.code, 'unavailable');
    assert.match(refused.body.detail, /server secret cannot be opened/);
    assert.equal((await apiRequest(relay.baseUrl, 'GET', '/healthz')).status, 200);
    // A provider's result is still accepted and kept: nothing is lost while the key is missing.
    // (An answer that carries the task's view needs its sealed request: 503, and the provider retries.)
    const callback = await apiRequest(relay.baseUrl, 'POST', `/v1/callbacks/${seeded.waiting.signalToken}`, { output: 'kept' });
    assert.ok(callback.status === 200 || callback.status === 503, `${callback.status} ${JSON.stringify(callback.body)}`);
    const sql = postgres(database.url, { max: 1, onnotice: () => {} });
    try {
      const [row] = await sql`select status, result->>'body' as body from tasks where id = ${seeded.waiting.task.id}`;
      assert.deepEqual({ ...row }, { status: 'completed', body: '{"output":"kept"}' });
    } finally {
      await sql.end();
    }
    // Its webhook needs the task's sealed request (k1): that attempt fails, with the reason logged.
    const failedDelivery = () => captured.lines.find((l) => l.includes('delivery') && l.includes('sealed request cannot be opened: sealed secret uses unknown key id'));
    await waitForEvent(captured.events, 'line', failedDelivery, 15_000, 'the failed delivery in the log');

    // reseal cannot open them either, says so, and exits 1: the old key must not be dropped yet.
    const run = await reseal(database, `k2:${k2}`);
    assert.equal(run.code, 1, run.stdout);
    assert.match(run.stdout, /^tasks: 0 re-sealed, 6 cannot be opened$/m);
    assert.match(run.stdout, /still sealed under other key ids: k1 \(8\); keep those keys/);
    await relay.stop();

    // The old key is put back (second): everything opens, is re-sealed, and the webhook goes out.
    relay = await start(database, `k2:${k2},k1:${k1}`);
    assert.equal((await relay.api('GET', '/v1/tasks')).status, 200);
    assert.equal((await reseal(database, `k2:${k2},k1:${k1}`)).code, 0);
    assert.equal((await relay.api('POST', `/v1/tasks/${seeded.waiting.task.id}/redeliver`)).status, 202);
    const deliveries = await receiver.waitForDeliveries(seeded.waiting.task.id);
    assert.ok(deliveries.some((d) => d.payload?.task.status === 'completed'), JSON.stringify(deliveries.map((d) => d.verifyError)));
  } finally {
    await relay.stop();
    await seeded.acmeReceiver.close();
    await database.drop();
  }
});
