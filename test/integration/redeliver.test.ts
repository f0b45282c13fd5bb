import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { projects } from '../../drizzle/schema.ts';
import { generateWebhookSecret } from '../../src/delivery/sign.ts';
import { createApiKey } from '../../src/projects/api-keys.ts';
import { HttpFake } from '../fakes/http-fake.ts';
import { Receiver } from '../fakes/receiver.ts';
import { apiRequest, startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';
import { waitForEvent } from '../helpers/wait.ts';

// POST /v1/tasks/:id/redeliver (DESIGN §4, §6): a new delivery round with the same webhook-id.

let relay: TestRelay;
let provider: HttpFake;
let receiver: Receiver;
/** What the receiver answers right now; tests flip it. */
let answer: { status: number; headers?: Record<string, string> } = { status: 200 };
let otherProjectKey: string;

before(async () => {
  relay = await startTestRelay();
  provider = await HttpFake.start(() => ({ status: 200, body: { ok: true } }));
  receiver = await Receiver.start(relay.webhookSecret, () => ({ ...answer, body: `answer ${answer.status}` }));
  const { db, keyring, hashes } = relay.running.relay;
  await db.insert(projects).values({ id: 'other', name: 'Other project', webhookSecretSealed: keyring.seal(generateWebhookSecret()) });
  otherProjectKey = (await createApiKey(db, hashes, 'other', 'test')).key;
});
after(async () => {
  await relay.stop();
  await provider.close();
  await receiver.close();
});

async function completedTask(input: Record<string, unknown> = { onCompleteUrl: receiver.url }): Promise<string> {
  const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/run`, ...input });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  await waitForStatus(relay, created.body.task.id, 'completed');
  return created.body.task.id;
}

/** Delivery bookkeeping does not wake the status long-poll, so this re-reads the task (bounded). */
async function waitForDelivery(taskId: string, check: (d: any) => boolean, timeoutMs = 15_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { body } = await relay.api('GET', `/v1/tasks/${taskId}`);
    if (body.task.delivery && check(body.task.delivery)) return body.task;
    if (Date.now() > deadline) throw new Error(`delivery of ${taskId} still ${JSON.stringify(body.task.delivery)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function events(taskId: string, type?: string): Promise<any[]> {
  const { body } = await relay.api('GET', `/v1/tasks/${taskId}/events`);
  return body.events.filter((e: any) => type === undefined || e.type === type);
}

const requestsFor = (taskId: string) => receiver.fake.requests.filter((r) => r.text.includes(taskId));

function assertProblem(res: { status: number; headers: Headers; body: any }, status: number, code: string): void {
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.equal(res.headers.get('content-type'), 'application/problem+json');
  assert.equal(res.body.status, status);
  assert.equal(res.body.code, code);
  assert.equal(res.body.error, res.body.detail);
  assert.equal(typeof res.body.requestId, 'string');
  assert.ok(res.body.type && res.body.title);
}

test('an exhausted delivery is redelivered: 202, a new round, same webhook-id, delivered', async () => {
  answer = { status: 500 };
  const taskId = await completedTask();
  await waitForDelivery(taskId, (d) => d.status === 'failed');
  assert.equal(requestsFor(taskId).length, 4);

  answer = { status: 200 };
  const redelivered = await relay.api('POST', `/v1/tasks/${taskId}/redeliver`);
  assert.equal(redelivered.status, 202, JSON.stringify(redelivered.body));
  assert.equal(redelivered.body.task.id, taskId);
  assert.equal(redelivered.body.task.status, 'completed');
  assert.deepEqual(redelivered.body.task.delivery, { status: 'pending', attempts: 0, nextAttemptAt: null });

  const deliveries = await receiver.waitForDeliveries(taskId, 5);
  const fifth = deliveries[4];
  assert.ok(fifth.payload, fifth.verifyError);
  assert.equal(fifth.payload.event, 'task.completed');
  assert.equal(new Set(deliveries.map((d) => d.request.headers['webhook-id'])).size, 1, 'same webhook-id as the first round');
  assert.equal(fifth.request.headers['webhook-id'], `msg_${taskId.replaceAll('-', '')}`);

  const task = await waitForDelivery(taskId, (d) => d.status === 'delivered');
  assert.deepEqual(task.delivery, { status: 'delivered', attempts: 1, nextAttemptAt: null });
  assert.deepEqual((await events(taskId, 'delivery.redeliver_requested')).map((e) => e.data), [{ previous: 'failed', generation: 1 }]);
  const attempts = await events(taskId, 'delivery.attempt');
  assert.deepEqual(attempts.map((e) => [e.data.attempt, e.data.statusCode]), [[1, 500], [2, 500], [3, 500], [4, 500], [1, 200]]);
  assert.deepEqual((await events(taskId, 'delivery.succeeded')).map((e) => e.data), [{ attempt: 1 }]);
});

test('a delivered task can be redelivered too (receivers deduplicate on webhook-id)', async () => {
  answer = { status: 200 };
  const taskId = await completedTask();
  await waitForDelivery(taskId, (d) => d.status === 'delivered');
  const redelivered = await relay.api('POST', `/v1/tasks/${taskId}/redeliver`, undefined, { authorization: `Bearer ${relay.apiKey}` });
  assert.equal(redelivered.status, 202);
  const [first, second] = await receiver.waitForDeliveries(taskId, 2);
  assert.ok(first.payload && second.payload, second.verifyError);
  assert.equal(second.request.headers['webhook-id'], first.request.headers['webhook-id']);
  // Same event and task; only the bookkeeping fields (updatedAt, delivery) may move.
  const { updatedAt: _u1, delivery: _d1, ...firstTask } = first.payload!.task as Record<string, unknown>;
  const { updatedAt: _u2, delivery: _d2, ...secondTask } = second.payload!.task as Record<string, unknown>;
  assert.equal(second.payload!.event, first.payload!.event);
  assert.deepEqual(secondTask, firstTask);
  await waitForDelivery(taskId, (d) => d.status === 'delivered' && d.attempts === 1);
  assert.equal(requestsFor(taskId).length, 2);
});

test('redeliver retires the retry still scheduled from the previous round', async () => {
  // Round 0 fails once and asks for 2 s, so its attempt 2 is still scheduled when we redeliver.
  answer = { status: 503, headers: { 'retry-after': '2' } };
  const taskId = await completedTask();
  await waitForDelivery(taskId, (d) => d.status === 'pending' && d.attempts === 1);
  // Round 1 fails once too and asks for 4 s: when round 0's attempt 2 fires, round 1 stands at
  // attempt 1 as well, so only the generation tells the two apart.
  answer = { status: 503, headers: { 'retry-after': '4' } };
  assert.equal((await relay.api('POST', `/v1/tasks/${taskId}/redeliver`)).status, 202);
  await waitForDelivery(taskId, (d) => d.status === 'pending' && d.attempts === 1);

  // Wait until round 0's attempt-2 job has run (pg-boss marks it completed), then check it did nothing.
  const { sql } = relay.running.relay;
  const oldJobDone = async () => {
    const rows = await sql`select state from pgboss.job where name = 'task.notify' and data->>'taskId' = ${taskId}
      and (data->>'generation')::int = 0 and (data->>'attempt')::int = 2`;
    return rows.length === 1 && rows[0].state === 'completed';
  };
  for (const deadline = Date.now() + 15_000; !(await oldJobDone()); await new Promise((r) => setTimeout(r, 100))) {
    assert.ok(Date.now() < deadline, "round 0's retry job never ran");
  }
  assert.equal(requestsFor(taskId).length, 2, 'the retired retry sent nothing');
  const { body } = await relay.api('GET', `/v1/tasks/${taskId}`);
  assert.equal(body.task.delivery.status, 'pending');
  assert.equal(body.task.delivery.attempts, 1, 'the retired retry did not count an attempt');

  answer = { status: 200 };
  const task = await waitForDelivery(taskId, (d) => d.status === 'delivered');
  assert.deepEqual(task.delivery, { status: 'delivered', attempts: 2, nextAttemptAt: null });
  assert.deepEqual((await events(taskId, 'delivery.attempt')).map((e) => [e.data.attempt, e.data.statusCode]), [[1, 503], [1, 503], [2, 200]]);
  assert.equal(requestsFor(taskId).length, 3);
});

test('redeliver on a task that has not finished → 409, nothing changes', async () => {
  const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/run`, waitForSignal: true, onCompleteUrl: receiver.url });
  const taskId = created.body.task.id;
  await waitForStatus(relay, taskId, 'waiting');
  const eventsBefore = await events(taskId);

  const refused = await relay.api('POST', `/v1/tasks/${taskId}/redeliver`);
  assertProblem(refused, 409, 'conflict');
  assert.match(refused.body.detail, /waiting/);

  const { body } = await relay.api('GET', `/v1/tasks/${taskId}`);
  assert.equal(body.task.status, 'waiting');
  assert.equal(body.task.delivery, null);
  assert.deepEqual(await events(taskId), eventsBefore);
  assert.equal(requestsFor(taskId).length, 0);

  // It still gets its one delivery once it does finish.
  const signal = await apiRequest(relay.baseUrl, 'POST', `/v1/signals/${created.body.signalToken}`, { status: 'completed', result: 'done' });
  assert.equal(signal.status, 200);
  const [delivery] = await receiver.waitForDeliveries(taskId, 1);
  assert.ok(delivery.payload, delivery.verifyError);
  assert.equal(delivery.payload.event, 'task.completed');
});

test('redeliver on a task without onCompleteUrl → 400, nothing changes', async () => {
  const taskId = await completedTask({});
  const eventsBefore = await events(taskId);
  const refused = await relay.api('POST', `/v1/tasks/${taskId}/redeliver`);
  assertProblem(refused, 400, 'invalid_request');
  assert.match(refused.body.detail, /onCompleteUrl/);
  const { body } = await relay.api('GET', `/v1/tasks/${taskId}`);
  assert.equal(body.task.delivery, null);
  assert.deepEqual(await events(taskId), eventsBefore);
});

test('redeliver on an unknown task, another project\'s task, a malformed id or without a key is refused', async () => {
  answer = { status: 200 };
  const taskId = await completedTask();
  await waitForDelivery(taskId, (d) => d.status === 'delivered');
  const eventsBefore = await events(taskId);

  assertProblem(await relay.api('POST', '/v1/tasks/0190b3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b/redeliver'), 404, 'not_found');
  const foreign = await apiRequest(relay.baseUrl, 'POST', `/v1/tasks/${taskId}/redeliver`, undefined, { 'x-api-key': otherProjectKey });
  assertProblem(foreign, 404, 'not_found');
  assertProblem(await relay.api('POST', '/v1/tasks/not-a-uuid/redeliver'), 400, 'invalid_request');
  assertProblem(await apiRequest(relay.baseUrl, 'POST', `/v1/tasks/${taskId}/redeliver`), 401, 'unauthorized');
  assertProblem(await apiRequest(relay.baseUrl, 'POST', `/v1/tasks/${taskId}/redeliver`, undefined, { 'x-api-key': 'wrong_key_0123456789abcdef' }), 401, 'unauthorized');

  // The other project's key really works (so the 404 above is about ownership, not a broken key).
  const own = await apiRequest(relay.baseUrl, 'GET', '/v1/tasks', undefined, { 'x-api-key': otherProjectKey });
  assert.equal(own.status, 200);
  assert.deepEqual(own.body.tasks, []);

  assert.deepEqual(await events(taskId), eventsBefore);
  // Proving an absence: a wrongly accepted redeliver would reach the receiver within ~1 s.
  await assert.rejects(
    waitForEvent(receiver.fake, 'request', () => (requestsFor(taskId).length > 1 ? true : undefined), 1000),
    /timed out/,
  );
  const { body } = await relay.api('GET', `/v1/tasks/${taskId}`);
  assert.deepEqual(body.task.delivery, { status: 'delivered', attempts: 1, nextAttemptAt: null });
});
