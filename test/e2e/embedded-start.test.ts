import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { HttpFake } from '../fakes/http-fake.ts';
import { Receiver } from '../fakes/receiver.ts';
import { RelayProcess } from '../helpers/process.ts';
import { freePort } from '../helpers/relay.ts';

// `npm start` with nothing configured (DESIGN §2): no DATABASE_URL, no keys. The relay starts an
// embedded PostgreSQL in RELAY_DATA_DIR, generates its encryption key, and prints a first API key
// once. Run for real: initdb takes ~5–15 s on these machines.

const STARTUP_MS = 90_000;
let dataDir: string;
let port: number;
let provider: HttpFake;
let relay: RelayProcess | undefined;
/** Carried from the first start to the second. */
let apiKey: string;
let webhookSecret: string;
let taskId: string;

function spawnEmbedded(): RelayProcess {
  return RelayProcess.spawn({
    baseUrl: `http://127.0.0.1:${port}`,
    env: { PORT: String(port), HOST: '127.0.0.1', RELAY_DATA_DIR: dataDir, RELAY_ALLOWED_NETWORKS: '127.0.0.0/8', LOG_LEVEL: 'warn' },
  });
}

/** The postmaster of the data dir, when one is running (PostgreSQL removes the file on a clean stop). */
function postmasterPid(): number | undefined {
  const file = join(dataDir, 'pg', 'postmaster.pid');
  return existsSync(file) ? Number(readFileSync(file, 'utf8').split('\n')[0]) : undefined;
}

before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'asyncrelay-e2e-embedded-'));
  port = await freePort();
  provider = await HttpFake.start(() => ({ status: 200, body: { text: 'hello from the model' } }));
});
after(async () => {
  // On failure: stop what we started (a SIGTERM stops the embedded PostgreSQL too), then the orphan, if any.
  if (relay && !relay.exit) await relay.stop('SIGTERM', 30_000).catch(() => relay!.stop('SIGKILL', 10_000));
  const orphan = postmasterPid();
  if (orphan) {
    try {
      process.kill(orphan, 'SIGINT');
    } catch {}
  }
  await provider.close();
  // As root the pg folder belongs to the "postgres" user; root removes it all the same.
  await rm(dataDir, { recursive: true, force: true });
});

test('first start: embedded PostgreSQL, a one-time API key, a task completes, SIGTERM exits 0', async () => {
  relay = spawnEmbedded();
  await relay.waitForReady(STARTUP_MS);
  const [, key] = await relay.waitForStdout(/created API key \(shown once[^)]*\): (ar_[A-Za-z0-9]+)\n/, 5_000);
  const [, secret] = await relay.waitForStdout(/webhook signing secret[^:]*: (whsec_[A-Za-z0-9+/=]+)\n/, 5_000);
  apiKey = key;
  webhookSecret = secret;
  relay.apiKey = apiKey;
  assert.match(apiKey, /^ar_[A-Za-z0-9]{40}$/);

  // The generated encryption key lives in the data dir, readable by its owner only.
  const keyFile = join(dataDir, 'encryption.key');
  assert.ok(existsSync(keyFile), 'encryption.key was generated');
  assert.equal(statSync(keyFile).mode & 0o077, 0, 'encryption.key is not readable by others');
  assert.ok(existsSync(join(dataDir, 'pg', 'PG_VERSION')), 'the cluster lives in RELAY_DATA_DIR/pg');

  assert.equal((await relay.api('GET', '/v1/tasks', undefined, { 'x-api-key': 'ar_not_the_key_0000000000' })).status, 401);
  const receiver = await Receiver.start(webhookSecret);
  try {
    const created = await relay.api('POST', '/v1/tasks', {
      targetUrl: `${provider.url}/v1/messages`,
      headers: { 'x-api-key': 'sk-ant-test' },
      body: { model: 'claude', messages: [{ role: 'user', content: 'hi' }] },
      onCompleteUrl: receiver.url,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    taskId = created.body.task.id;
    const done = await relay.waitForStatus(taskId, 'completed', 30_000);
    assert.equal(done.result.body, '{"text":"hello from the model"}');
    const [submit] = provider.requests;
    assert.equal(submit.headers['x-api-key'], 'sk-ant-test');
    // The printed secret is the one that signs the default project's webhooks.
    const [delivery] = await receiver.waitForDeliveries(taskId, 1, 30_000);
    assert.ok(delivery.payload, `the printed secret does not verify the delivery: ${delivery.verifyError}`);
    assert.equal(delivery.payload.event, 'task.completed');
  } finally {
    await receiver.close();
  }

  const postmaster = postmasterPid();
  assert.ok(postmaster, 'an embedded postmaster is running');
  const exit = await relay.stop('SIGTERM', 30_000);
  assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null }, relay.output());
  assert.equal(postmasterPid(), undefined, 'PostgreSQL was shut down cleanly with the relay');
  assert.throws(() => process.kill(postmaster, 0), /ESRCH/, 'no orphaned postmaster');
});

test('second start on the same data dir: no new key, the old key and the task are still there', async () => {
  assert.ok(apiKey && taskId, 'the first start ran');
  const keyFileBefore = readFileSync(join(dataDir, 'encryption.key'), 'utf8');
  relay = spawnEmbedded();
  relay.apiKey = apiKey;
  await relay.waitForReady(STARTUP_MS);
  assert.doesNotMatch(relay.stdout, /created API key|shown once/, 'nothing is minted or printed again');

  const { status, body } = await relay.api('GET', `/v1/tasks/${taskId}`);
  assert.equal(status, 200);
  assert.equal(body.task.status, 'completed');
  assert.equal(body.task.result.body, '{"text":"hello from the model"}');
  // The sealed body opens: the same encryption key was reused, not regenerated.
  assert.equal(body.task.body, '{"model":"claude","messages":[{"role":"user","content":"hi"}]}');
  assert.equal(body.task.headers['x-api-key'], '[redacted]');
  assert.equal(readFileSync(join(dataDir, 'encryption.key'), 'utf8'), keyFileBefore);
  assert.equal(body.task.delivery.status, 'delivered');

  const exit = await relay.stop('SIGTERM', 30_000);
  assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null }, relay.output());
  assert.equal(postmasterPid(), undefined);
});
