import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { HttpFake } from '../fakes/http-fake.ts';
import { Receiver } from '../fakes/receiver.ts';
import { createTestDatabase } from '../helpers/database.ts';
import { externalDeployment, killSpawnedRelays, RelayProcess, type RelayDeployment } from '../helpers/process.ts';
import { apiRequest } from '../helpers/relay.ts';

// Durability (DESIGN §8): kill -9 of the relay anywhere loses no task and no completion. Each
// scenario restarts the real process on the same database with the same port, keys and secrets.

/** pg-boss hands a job whose worker died to another after its heartbeat lapses (~10–30 s). */
const REDISPATCH_MS = 90_000;

const cleanups: Array<() => Promise<unknown>> = [];
after(async () => {
  await killSpawnedRelays();
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
});

async function deploy(label: string): Promise<RelayDeployment> {
  const database = await createTestDatabase(label);
  cleanups.push(() => database.drop());
  return externalDeployment(database.url);
}

async function startRelay(deployment: RelayDeployment): Promise<RelayProcess> {
  const relay = RelayProcess.start(deployment);
  await relay.waitForReady(60_000);
  return relay;
}

async function fakes(deployment: RelayDeployment, receiverHandler?: Parameters<typeof Receiver.start>[1], providerHandler?: ConstructorParameters<typeof HttpFake>[0]) {
  const provider = await HttpFake.start(providerHandler ?? (() => ({ status: 200, body: { id: 'pred', status: 'starting' } })));
  const receiver = await Receiver.start(deployment.webhookSecret, receiverHandler);
  cleanups.push(() => provider.close(), () => receiver.close());
  return { provider, receiver };
}

/** A task that waits for its callback, notifying `receiver`. */
async function createWaitingTask(relay: RelayProcess, provider: HttpFake, receiver: Receiver, n: number) {
  const created = await relay.api('POST', '/v1/tasks', {
    targetUrl: `${provider.url}/predictions`,
    body: { input: { n }, webhook: '{asyncqueue_callback_url}' },
    onCompleteUrl: receiver.url,
    metadata: { n: String(n) },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return { id: created.body.task.id as string, callbackUrl: created.body.callbackUrl as string };
}

function postCallback(callbackUrl: string, body: string) {
  return fetch(callbackUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
}

test('waiting tasks survive kill -9: after a restart their callbacks complete them and deliver', async () => {
  const deployment = await deploy('e2e_restart_wait');
  const { provider, receiver } = await fakes(deployment);
  const first = await startRelay(deployment);
  const tasks = [];
  for (let n = 1; n <= 5; n++) tasks.push(await createWaitingTask(first, provider, receiver, n));
  for (const task of tasks) await first.waitForStatus(task.id, 'waiting');
  assert.equal(provider.requests.length, 5);

  await first.crash();
  await assert.rejects(fetch(`${deployment.baseUrl}/healthz`), 'the killed relay is gone');
  const second = await startRelay(deployment);

  for (const [i, task] of tasks.entries()) {
    const answer = await postCallback(task.callbackUrl, `{"status":"succeeded","output":"out-${i + 1}"}`);
    assert.equal(answer.status, 200);
    const body = (await answer.json()) as any;
    assert.equal(body.task.id, task.id);
    assert.equal(body.task.status, 'completed');
  }
  for (const [i, task] of tasks.entries()) {
    const [delivery] = await receiver.waitForDeliveries(task.id, 1, 30_000);
    assert.ok(delivery.payload, `standardwebhooks rejected the delivery: ${delivery.verifyError}`);
    assert.equal(delivery.payload.event, 'task.completed');
    assert.equal((delivery.payload.task as any).result.body, `{"status":"succeeded","output":"out-${i + 1}"}`);
    assert.deepEqual((delivery.payload.task as any).metadata, { n: String(i + 1) });
  }
  assert.equal(new Set(receiver.deliveries.filter((d) => d.payload).map((d) => d.payload!.task.id)).size, 5);
  // A task already waiting is not submitted to the provider a second time by the restart.
  assert.equal(provider.requests.length, 5);
  const listed = await second.api('GET', '/v1/tasks?status=completed&limit=100');
  assert.deepEqual(listed.body.tasks.map((t: any) => t.id).sort(), tasks.map((t) => t.id).sort());
  const { code } = await second.stop();
  assert.equal(code, 0, second.output());
});

test('kill -9 during a dispatch: after a restart the task is dispatched again and completes', async () => {
  const deployment = await deploy('e2e_restart_dispatch');
  // The first submit hangs (the relay is killed while it waits); later ones answer at once.
  const { provider, receiver } = await fakes(deployment, undefined, (_req, i) => (i === 0 ? { hang: true } : { status: 200, body: { answer: 42 } }));
  const first = await startRelay(deployment);
  const created = await first.api('POST', '/v1/tasks', {
    targetUrl: `${provider.url}/v1/messages`,
    headers: { 'x-api-key': 'sk-provider' },
    body: { prompt: 'hello' },
    onCompleteUrl: receiver.url,
  });
  assert.equal(created.status, 201);
  const taskId = created.body.task.id;
  await provider.waitForRequests(1, () => true, 30_000);
  await first.crash();

  const second = await startRelay(deployment);
  const submits = await provider.waitForRequests(2, () => true, REDISPATCH_MS);
  assert.equal(submits[1].text, submits[0].text, 'the same request is sent again');
  assert.equal(submits[1].headers['x-api-key'], 'sk-provider', 'its sealed headers survived the restart');
  const done = await second.waitForStatus(taskId, 'completed', 30_000);
  assert.equal(done.result.body, '{"answer":42}');
  const [delivery] = await receiver.waitForDeliveries(taskId, 1, 30_000);
  assert.ok(delivery.payload, delivery.verifyError);
  assert.equal(delivery.payload.event, 'task.completed');
  assert.equal(provider.requests.length, 2, 'dispatched once more, not more');
  const { code } = await second.stop();
  assert.equal(code, 0, second.output());
});

test('kill -9 after a callback was accepted: the completion is still delivered (at least once)', async () => {
  const deployment = await deploy('e2e_restart_notify');
  let holdFirstDeliveryOf: string | undefined;
  // The first delivery of task A hangs, so the relay dies in the middle of delivering it.
  const { provider, receiver } = await fakes(deployment, (req) => {
    if (holdFirstDeliveryOf && req.text.includes(holdFirstDeliveryOf)) {
      holdFirstDeliveryOf = undefined;
      return { hang: true };
    }
    return { status: 200, body: 'ok' };
  });
  const first = await startRelay(deployment);
  const a = await createWaitingTask(first, provider, receiver, 1);
  const b = await createWaitingTask(first, provider, receiver, 2);
  await first.waitForStatus(a.id, 'waiting');
  await first.waitForStatus(b.id, 'waiting');

  holdFirstDeliveryOf = a.id;
  assert.equal((await postCallback(a.callbackUrl, '{"output":"a"}')).status, 200);
  await receiver.fake.waitForRequests(1, (r) => r.text.includes(a.id), 30_000);
  // B's callback is accepted, and the relay dies at once: its delivery may or may not have left.
  assert.equal((await postCallback(b.callbackUrl, '{"output":"b"}')).status, 200);
  await first.crash();

  const second = await startRelay(deployment);
  const [deliveredB] = await receiver.waitForDeliveries(b.id, 1, REDISPATCH_MS);
  assert.ok(deliveredB.payload, deliveredB.verifyError);
  assert.equal((deliveredB.payload.task as any).result.body, '{"output":"b"}');
  const deliveriesA = await receiver.waitForDeliveries(a.id, 2, REDISPATCH_MS);
  assert.ok(deliveriesA[1].payload, deliveriesA[1].verifyError);
  assert.equal(deliveriesA[1].payload.event, 'task.completed');
  assert.equal(deliveriesA[1].request.headers['webhook-id'], deliveriesA[0].request.headers['webhook-id'], 'the retry after the crash keeps the webhook-id');

  const taskA = await second.waitForDelivery(a.id, 'delivered');
  assert.equal(taskA.status, 'completed');
  assert.equal(taskA.result.body, '{"output":"a"}');
  const taskB = await second.waitForDelivery(b.id, 'delivered');
  assert.equal(taskB.status, 'completed');
  // The callback token was consumed before the crash: a replay is the idempotent repeat, not a new completion.
  const replay = await apiRequest(deployment.baseUrl, 'POST', new URL(b.callbackUrl).pathname, '{"output":"b"}', { 'content-type': 'application/json' });
  assert.equal(replay.status, 200);
  assert.equal(replay.body.task.status, 'completed');
  const { code } = await second.stop();
  assert.equal(code, 0, second.output());
});
