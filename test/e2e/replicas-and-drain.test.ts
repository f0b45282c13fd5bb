/**
 * DESIGN §8, two processes against one database: a replica killed with -9 in the middle of a
 * dispatch loses nothing (the other picks the job up once its heartbeat lapses), and SIGTERM
 * drains: a request in flight is answered (with `Connection: close`), not reset, and the process
 * exits 0.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, test } from 'node:test';
import postgres from 'postgres';
import { HttpFake } from '../fakes/http-fake.ts';
import { Receiver } from '../fakes/receiver.ts';
import { createTestDatabase } from '../helpers/database.ts';
import { externalDeployment, killSpawnedRelays, RelayProcess } from '../helpers/process.ts';
import { freePort } from '../helpers/relay.ts';

const cleanups: Array<() => Promise<unknown>> = [];
after(async () => {
  await killSpawnedRelays();
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
});

test('kill -9 of the replica that is dispatching: the other one dispatches again within ~25 s, one webhook', async (t) => {
  const database = await createTestDatabase('e2e_replica_kill');
  cleanups.push(() => database.drop());
  const a = await externalDeployment(database.url);
  // B shares A's database and secrets; both mint callback URLs on B (standing in for the load balancer).
  const bPort = await freePort();
  const bUrl = `http://127.0.0.1:${bPort}`;
  const b = { ...a, port: bPort, baseUrl: bUrl, env: { ...a.env, PORT: String(bPort), RELAY_PUBLIC_URL: bUrl } };
  a.env.RELAY_PUBLIC_URL = bUrl;

  // The first submit is held until A is dead; the second answers and calls back.
  const provider = await HttpFake.start(async (req, index) => {
    if (index === 0) return { hang: true };
    const { webhook } = JSON.parse(req.text) as { webhook: string };
    setTimeout(() => void fetch(webhook, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"status":"succeeded"}' }), 50);
    return { status: 200, body: { id: 'pred_1', status: 'starting' } };
  });
  const receiver = await Receiver.start(a.webhookSecret);
  cleanups.push(() => provider.close(), () => receiver.close());

  const relayA = RelayProcess.start(a);
  await relayA.waitForReady(60_000);
  const created = await relayA.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/submit`, body: { webhook: '{asyncqueue_callback_url}' }, onCompleteUrl: receiver.url });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.task.id as string;
  await provider.waitForRequests(1);

  const relayB = RelayProcess.start(b);
  await relayB.waitForReady(60_000);
  const killedAt = Date.now();
  await relayA.crash();

  const [, second] = await provider.waitForRequests(2, () => true, 60_000);
  const pickupMs = second.at - killedAt;
  assert.ok(pickupMs < 40_000, `picked up after ${pickupMs} ms`);
  const task = await relayB.waitForStatus(id, 'completed', 30_000);
  assert.equal(task.result.body, '{"status":"succeeded"}');
  const deliveries = await receiver.waitForDeliveries(id, 1, 30_000);
  assert.equal(deliveries.length, 1);
  assert.equal(deliveries[0].payload?.task.status, 'completed');
  t.diagnostic(`kill -9 → second dispatch by the other replica after ${pickupMs} ms`);
  assert.equal((await relayB.stop('SIGTERM')).code, 0);
});

/** A POST on its own connection (no agent pooling), to read the `connection` header it is answered with. */
function rawPost(url: string, apiKey: string, body: object): Promise<{ status: number; connection?: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'x-api-key': apiKey } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body: text }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

test('SIGTERM while a create is in flight: it is answered (Connection: close), not reset, and the process exits 0', async () => {
  const database = await createTestDatabase('e2e_drain');
  cleanups.push(() => database.drop());
  const deployment = await externalDeployment(database.url, { LOG_LEVEL: 'info' });
  const relay = RelayProcess.start(deployment);
  await relay.waitForReady(60_000);

  // The create blocks on a table lock held here, so it is still in flight when SIGTERM arrives.
  const locker = postgres(database.url, { max: 2, onnotice: () => {} });
  const conn = await locker.reserve();
  try {
    await conn`begin`;
    await conn`lock table tasks in access exclusive mode`;
    const answer = rawPost(`${deployment.baseUrl}/v1/tasks`, deployment.apiKey, { targetUrl: 'http://127.0.0.1:9/x', delayUntil: new Date(Date.now() + 3_600_000).toISOString() });
    for (let i = 0; ; i++) {
      const [row] = await locker<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`;
      if (row.n > 0) break;
      assert.ok(i < 100, 'the create never reached the database');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    relay.child.kill('SIGTERM');
    await relay.waitForStdout(/"msg":"draining"/, 10_000);
    // The listener closes as the drain begins: new connections are refused from then on.
    for (let i = 0; ; i++) {
      const refused = await fetch(`${deployment.baseUrl}/healthz`, { signal: AbortSignal.timeout(2000) }).then((r) => (r.body?.cancel(), false), () => true);
      if (refused) break;
      assert.ok(i < 50, 'new connections still accepted 5 s after SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await conn`commit`;
    const created = await answer;
    assert.equal(created.status, 201, created.body);
    assert.equal(created.connection, 'close');
  } finally {
    conn.release();
    await locker.end();
  }
  const exit = await relay.waitForExit(30_000);
  assert.equal(exit.code, 0);
});
