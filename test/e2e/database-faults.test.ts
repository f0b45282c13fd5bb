/**
 * DESIGN §8: PostgreSQL restarts, crashes or goes away for a while, and the relay stays up,
 * answers 503 with Retry-After meanwhile (never 500, never a hang past 10 s), resumes by itself
 * within seconds of the database's return, and loses nothing it accepted with a 2xx.
 *
 * A private cluster (test/helpers/private-postgres.ts) is restarted, crashed (`-m immediate`) and
 * stopped while a client creates tasks (retrying 503s with the same Idempotency-Key, as a client
 * should) and a fake provider calls back (retrying until a 2xx, as providers do). Then every
 * accepted task must be completed with its webhook delivered under one webhook-id.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as pause } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import postgres from 'postgres';
import { Receiver } from '../fakes/receiver.ts';
import { PrivatePostgres } from '../helpers/private-postgres.ts';
import { externalDeployment, killSpawnedRelays, RelayProcess } from '../helpers/process.ts';

let pg: PrivatePostgres;
const cleanups: Array<() => Promise<unknown>> = [];
before(async () => {
  pg = await PrivatePostgres.create();
});
after(async () => {
  await killSpawnedRelays();
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  await pg.destroy();
});

/** One HTTP exchange as a client saw it. */
interface Seen {
  at: number;
  status: number; // 0: network error
  ms: number;
}

/**
 * A provider that answers the submit at once and calls back 100 ms later, retrying every 250 ms
 * until the relay answers 2xx (fal and Replicate retry failed webhooks).
 */
async function startProvider(): Promise<{ url: string; callbacks: Seen[]; server: Server; pending: () => number }> {
  const callbacks: Seen[] = [];
  let pending = 0;
  const callBack = async (url: string, body: string) => {
    pending++;
    try {
      for (;;) {
        const started = Date.now();
        const status = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(15_000) })
          .then(async (r) => (await r.text(), r.status), () => 0);
        callbacks.push({ at: started, status, ms: Date.now() - started });
        if (status >= 200 && status < 300) return;
        await pause(250);
      }
    } finally {
      pending--;
    }
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const { n, webhook } = JSON.parse(Buffer.concat(chunks).toString()) as { n: number; webhook: string };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: `pred_${n}`, status: 'starting' }));
      setTimeout(() => void callBack(webhook, JSON.stringify({ id: `pred_${n}`, status: 'succeeded', output: n })), 100);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, callbacks, server, pending: () => pending };
}

test('restart, crash and outage of PostgreSQL under load: no exit, no 500, no hang, nothing lost, one webhook-id per task', async (t) => {
  const url = await pg.createDatabase('faults');
  const deployment = await externalDeployment(url, { RELAY_CALLBACK_IP_CEILING: '0', RELAY_CALLBACK_REJECT_LIMIT: '0' });
  const provider = await startProvider();
  const receiver = await Receiver.start(deployment.webhookSecret);
  cleanups.push(() => receiver.close(), () => new Promise((r) => provider.server.close(r)));
  const relay = RelayProcess.start(deployment);
  await relay.waitForReady(60_000);

  // The client: ~40 creates a second, each retried with its Idempotency-Key until accepted.
  const creates: Seen[] = [];
  const accepted = new Map<number, string>();
  let stopLoad = false;
  const createOne = async (n: number) => {
    for (;;) {
      const started = Date.now();
      const answer = await fetch(`${relay.baseUrl}/v1/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': deployment.apiKey, 'idempotency-key': `load-${n}` },
        body: JSON.stringify({ targetUrl: `${provider.url}/submit`, body: { n, webhook: '{asyncqueue_callback_url}' }, onCompleteUrl: receiver.url }),
        signal: AbortSignal.timeout(15_000),
      }).then(async (r) => ({ status: r.status, body: (await r.json().catch(() => undefined)) as any }), () => ({ status: 0, body: undefined }));
      creates.push({ at: started, status: answer.status, ms: Date.now() - started });
      if (answer.status === 201 || answer.status === 200) {
        accepted.set(n, answer.body.task.id);
        return;
      }
      await pause(500);
    }
  };
  const inFlight = new Set<Promise<void>>();
  const load = (async () => {
    for (let n = 0; !stopLoad; n++) {
      const p = createOne(n).finally(() => inFlight.delete(p));
      inFlight.add(p);
      await pause(25);
    }
  })();

  const readyz = () => fetch(`${relay.baseUrl}/readyz`, { signal: AbortSignal.timeout(5000) }).then((r) => r.status, () => 0);
  const faults: Array<{ fault: string; downMs: number; resumedMs: number; readyMs: number }> = [];
  /** After the database is back: how long until a create is accepted again, and /readyz is 200. */
  const recovery = async (fault: string, downMs: number) => {
    const back = Date.now();
    let resumedMs = -1;
    let readyMs = -1;
    while (resumedMs < 0 || readyMs < 0) {
      if (resumedMs < 0 && creates.some((c) => c.at >= back && (c.status === 201 || c.status === 200))) resumedMs = Date.now() - back;
      if (readyMs < 0 && (await readyz()) === 200) readyMs = Date.now() - back;
      if (Date.now() - back > 30_000) {
        stopLoad = true;
        const recent = creates.filter((c) => c.at >= back).map((c) => c.status);
        assert.fail(`${fault}: not recovered 30 s after the database came back (resumed ${resumedMs}, ready ${readyMs}, creates since: ${JSON.stringify(recent.slice(-20))})\n${relay.output()}`);
      }
      await pause(50);
    }
    faults.push({ fault, downMs, resumedMs, readyMs });
    assert.equal(relay.exit, undefined, `the relay exited after ${fault}:\n${relay.output()}`);
  };

  await pause(3000);
  let down = Date.now();
  await pg.stop('fast');
  await pg.start();
  await recovery('restart (fast shutdown)', Date.now() - down);

  await pause(3000);
  down = Date.now();
  await pg.stop('immediate');
  await pg.start();
  await recovery('crash (immediate shutdown, crash recovery)', Date.now() - down);

  await pause(3000);
  down = Date.now();
  await pg.stop('fast');
  // While it is down: /readyz says so.
  for (let i = 0; (await readyz()) !== 503; i++) assert.ok(i < 100, '/readyz never answered 503 during the outage');
  await pause(4000);
  await pg.start();
  await recovery('outage of ~5 s', Date.now() - down);

  await pause(2000);
  stopLoad = true;
  await load;
  await Promise.all(inFlight);

  // Every accepted task completes and is delivered (the provider keeps retrying its callbacks).
  const deadline = Date.now() + 90_000;
  const idsDelivered = () => new Set(receiver.deliveries.map((d) => d.payload?.task.id));
  while ([...accepted.values()].some((id) => !idsDelivered().has(id))) {
    const missing = [...accepted.values()].filter((id) => !idsDelivered().has(id));
    assert.ok(Date.now() < deadline, `${missing.length} of ${accepted.size} tasks never delivered, e.g. ${missing.slice(0, 3)}\n${relay.output()}`);
    await pause(200);
  }

  const db = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const statuses = await db<{ status: string; n: number }[]>`select status, count(*)::int as n from tasks group by status`;
    assert.deepEqual(statuses.map((s) => ({ ...s })), [{ status: 'completed', n: accepted.size }], 'one task per Idempotency-Key, all completed');
  } finally {
    await db.end();
  }
  // One webhook-id per task, never shared; every delivery verified.
  const idsOfTask = new Map<string, Set<string>>();
  for (const d of receiver.deliveries) {
    assert.ok(d.payload, `a delivery failed verification: ${d.verifyError}`);
    const set = idsOfTask.get(d.payload.task.id) ?? new Set();
    set.add(String(d.request.headers['webhook-id']));
    idsOfTask.set(d.payload.task.id, set);
  }
  for (const [task, ids] of idsOfTask) assert.equal(ids.size, 1, `task ${task} was delivered under ${ids.size} webhook-ids`);
  assert.equal(new Set([...idsOfTask.values()].flatMap((s) => [...s])).size, accepted.size);

  // What clients saw: never a 500, never an answer after 10 s.
  const all = [...creates, ...provider.callbacks];
  assert.deepEqual(all.filter((s) => s.status >= 500 && s.status !== 503), [], 'a 5xx other than 503');
  const slowest = Math.max(...all.map((s) => s.ms));
  assert.ok(slowest < 10_000, `a request took ${slowest} ms`);
  assert.equal(relay.exit, undefined, 'the relay exited');

  const count = (xs: Seen[], status: number) => xs.filter((s) => s.status === status).length;
  t.diagnostic(JSON.stringify({
    tasks: accepted.size,
    createAttempts: creates.length,
    creates503: count(creates, 503),
    createsNetworkError: count(creates, 0),
    callbacks: provider.callbacks.length,
    callbacks503: count(provider.callbacks, 503),
    callbacksNetworkError: count(provider.callbacks, 0),
    slowestMs: slowest,
    deliveries: receiver.deliveries.length,
    faults,
  }));
  await relay.stop('SIGTERM');
});

test('start-up waits for the database instead of exiting, and serves once it is there', async () => {
  const url = await pg.createDatabase('late_start');
  const deployment = await externalDeployment(url, { LOG_LEVEL: 'warn' });
  await pg.stop('fast');
  const relay = RelayProcess.start(deployment);
  try {
    await relay.waitForStdout(/database not available at start-up; retrying/, 30_000);
    await relay.waitForStdout(/"attempt":3/, 30_000);
    assert.equal(relay.exit, undefined, 'the relay exited while the database was down');
  } finally {
    await pg.start();
  }
  await relay.waitForReady(30_000);
  const created = await relay.api('POST', '/v1/tasks', { targetUrl: 'http://127.0.0.1:9/x', delayUntil: new Date(Date.now() + 3_600_000).toISOString() });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const exit = await relay.stop('SIGTERM');
  assert.equal(exit.code, 0);
});

test('a SIGTERM while start-up waits for the database exits 0 at once', async () => {
  const url = pg.urlFor('late_start');
  const deployment = await externalDeployment(url, { LOG_LEVEL: 'warn' });
  await pg.stop('fast');
  try {
    const relay = RelayProcess.start(deployment);
    await relay.waitForStdout(/database not available at start-up; retrying/, 30_000);
    const exit = await relay.stop('SIGTERM', 10_000);
    assert.equal(exit.code, 0);
    assert.ok(exit.ms < 5000, `took ${exit.ms} ms`);
  } finally {
    await pg.start();
  }
});
