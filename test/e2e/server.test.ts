import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, test } from 'node:test';
import postgres from 'postgres';
import { HttpFake } from '../fakes/http-fake.ts';
import { Receiver } from '../fakes/receiver.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { externalDeployment, killSpawnedRelays, RelayProcess } from '../helpers/process.ts';
import { freePort } from '../helpers/relay.ts';

// The real `node src/cli.ts serve` process, as an operator runs it (DESIGN §2, §3, §8).

const cleanups: Array<() => Promise<unknown>> = [];
after(async () => {
  await killSpawnedRelays();
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
});

test('serve: ready, one full lifecycle with a signed onComplete, then SIGTERM exits 0', async () => {
  const database: TestDatabase = await createTestDatabase('e2e_server');
  cleanups.push(() => database.drop());
  const deployment = await externalDeployment(database.url);
  const provider = await HttpFake.start(() => ({ status: 200, body: { request_id: 'req_1', status: 'IN_QUEUE' } }));
  const receiver = await Receiver.start(deployment.webhookSecret);
  cleanups.push(() => provider.close(), () => receiver.close());

  const relay = RelayProcess.start(deployment);
  await relay.waitForReady(60_000);
  const health = await relay.api('GET', '/healthz');
  assert.equal(health.status, 200);
  assert.deepEqual(health.body, { status: 'ok' });
  assert.deepEqual((await relay.api('GET', '/readyz')).body, { status: 'ready' });
  // The bootstrap key came from RELAY_API_KEYS, so no key is minted and printed.
  assert.doesNotMatch(relay.stdout, /created API key/);

  const created = await relay.api('POST', '/v1/tasks', {
    targetUrl: `${provider.url}/fal-ai/flux?fal_webhook={asyncqueue_callback_url}`,
    headers: { authorization: 'Key provider-secret-123' },
    body: { prompt: 'a lighthouse' },
    waitForSignal: true,
    onCompleteUrl: receiver.url,
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const { task, callbackUrl, signalToken } = created.body;
  assert.equal(callbackUrl, `${deployment.baseUrl}/v1/callbacks/${signalToken}`);
  assert.equal(task.headers.authorization, '[redacted]');

  const [submit] = await provider.waitForRequests(1, () => true, 30_000);
  assert.equal(submit.url.searchParams.get('fal_webhook'), callbackUrl);
  assert.equal(submit.headers.authorization, 'Key provider-secret-123');
  assert.deepEqual(JSON.parse(submit.text), { prompt: 'a lighthouse' });
  await relay.waitForStatus(task.id, 'waiting');

  const output = '{"status":"OK","payload":{"images":[{"url":"https://example.com/a.png"}]}}';
  const callback = await fetch(callbackUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: output });
  assert.equal(callback.status, 200);

  const [delivery] = await receiver.waitForDeliveries(task.id, 1, 30_000);
  assert.ok(delivery.payload, `standardwebhooks rejected the delivery: ${delivery.verifyError}`);
  assert.equal(delivery.payload.event, 'task.completed');
  assert.equal(delivery.payload.task.id, task.id);
  assert.equal((delivery.payload.task as any).result.body, output);
  assert.equal(delivery.request.headers['webhook-id'], `msg_${task.id.replaceAll('-', '')}`);
  const [, t, v1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(delivery.request.headers['x-asyncqueue-signature']))!;
  assert.equal(v1, createHmac('sha256', deployment.webhookSecret).update(`${t}.${delivery.request.text}`).digest('hex'));
  assert.ok(!delivery.request.text.includes(signalToken), 'the token never leaves in a webhook');
  assert.ok(!delivery.request.text.includes('provider-secret-123'), 'provider credentials never leave in a webhook');

  const done = await relay.waitForDelivery(task.id, 'delivered');
  assert.equal(done.status, 'completed');
  assert.deepEqual(done.delivery, { status: 'delivered', attempts: 1, nextAttemptAt: null });

  const exit = await relay.stop('SIGTERM', 25_000);
  assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null }, relay.output());
  await assert.rejects(fetch(`${deployment.baseUrl}/healthz`), 'nothing listens after the exit');
  // Secrets never reach the logs.
  for (const secret of [deployment.apiKey, deployment.webhookSecret, signalToken, 'provider-secret-123']) {
    assert.ok(!relay.stdout.includes(secret) && !relay.stderr.includes(secret), 'a secret was logged');
  }
});

test('SIGTERM stops accepting, lets an in-flight dispatch finish, then exits 0', async () => {
  const database = await createTestDatabase('e2e_drain');
  cleanups.push(() => database.drop());
  const deployment = await externalDeployment(database.url);
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let arrived!: () => void;
  const arrival = new Promise<void>((resolve) => (arrived = resolve));
  // The provider holds its answer until the test opens the gate (the fake announces a request
  // only once its handler returns, hence the separate arrival signal).
  const provider = await HttpFake.start(async () => {
    arrived();
    await gate;
    return { status: 200, body: 'generated' };
  });
  cleanups.push(() => provider.close());
  const relay = RelayProcess.start(deployment);
  await relay.waitForReady(60_000);

  const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/slow`, timeout: 120 });
  assert.equal(created.status, 201);
  await arrival;
  relay.child.kill('SIGTERM');
  // Start-up probe in reverse: the listener closes first (connection refused), the process stays.
  for (const deadline = Date.now() + 15_000; ; await new Promise((r) => setTimeout(r, 50))) {
    const refused = await fetch(`${deployment.baseUrl}/healthz`).then(() => false, () => true);
    if (refused) break;
    assert.ok(Date.now() < deadline, 'the relay kept accepting requests after SIGTERM');
  }
  assert.equal(relay.exit, undefined, 'the process waits for its in-flight dispatch');
  release();
  const { code, signal } = await relay.waitForExit(25_000);
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, relay.output());

  // The dispatch finished and was recorded before the exit.
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql`select status, result from tasks where id = ${created.body.task.id}`;
    assert.equal(row.status, 'completed');
    assert.equal(row.result.body, 'generated');
  } finally {
    await sql.end();
  }
});

test('a bad configuration exits non-zero and lists every problem at once', async () => {
  const port = await freePort();
  const relay = RelayProcess.spawn({
    baseUrl: `http://127.0.0.1:${port}`,
    env: {
      PORT: 'abc',
      RELAY_WEBHOOK_SECRET: 'nope',
      DATABASE_URL: 'postgres://relay:hunter2-db-password@127.0.0.1:1/relay',
      LOG_LEVEL: 'warn',
    },
  });
  const exit = await relay.waitForExit(30_000);
  assert.equal(exit.signal, null);
  assert.notEqual(exit.code, 0);
  for (const variable of ['PORT', 'RELAY_WEBHOOK_SECRET', 'RELAY_ENCRYPTION_KEY']) {
    assert.match(relay.stderr, new RegExp(`^\\s*${variable}: `, 'm'), `stderr names ${variable}:\n${relay.stderr}`);
  }
  assert.doesNotMatch(relay.stderr, /^\s*DATABASE_URL:/m, 'the valid DATABASE_URL is not reported');
  assert.ok(!relay.stderr.includes('hunter2-db-password'), 'the database password is not echoed');
  assert.ok(!relay.stderr.includes('nope'), 'the bad secret value is not echoed');
  assert.equal(relay.stdout, '');
});
