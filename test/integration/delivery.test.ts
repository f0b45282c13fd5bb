import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { HttpFake } from '../fakes/http-fake.ts';
import { type Delivery, Receiver } from '../fakes/receiver.ts';
import { startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';

// onComplete webhooks (DESIGN §6) against the real relay with FAST_TIMINGS: retries at 0.2, 0.4
// and 0.6 s, so a delivery gets at most 4 attempts.

let relay: TestRelay;
/** A second relay whose delivery attempts time out after 500 ms (the hanging-receiver test). */
let impatient: TestRelay;
let provider: HttpFake;
const receivers: Receiver[] = [];

before(async () => {
  [relay, impatient] = await Promise.all([startTestRelay(), startTestRelay({ timings: { deliveryTimeoutMs: 500 } })]);
  // /reject answers 400 (the task fails at once); everything else 200 (a no-wait task completes).
  provider = await HttpFake.start((req) => (req.path === '/reject' ? { status: 400, body: { error: 'bad input' } } : { status: 200, body: { ok: true } }));
});
after(async () => {
  await Promise.all(receivers.map((r) => r.close()));
  await Promise.all([relay.stop(), impatient.stop(), provider.close()]);
});

async function newReceiver(secret: string, handler?: Parameters<typeof Receiver.start>[1]): Promise<Receiver> {
  const receiver = await Receiver.start(secret, handler);
  receivers.push(receiver);
  return receiver;
}

/** Creates a task; returns the creation answer's body (task, callbackUrl, signalToken). */
async function createTask(on: TestRelay, input: Record<string, unknown>): Promise<any> {
  const created = await on.api('POST', '/v1/tasks', input);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return created.body;
}

/** A no-wait task that completes as soon as the provider answers 200, then notifies `onCompleteUrl`. */
async function completedTask(on: TestRelay, onCompleteUrl: string): Promise<string> {
  const { task } = await createTask(on, { targetUrl: `${provider.url}/run`, onCompleteUrl });
  return task.id;
}

/**
 * Delivery bookkeeping does not change the task's status, so the status long-poll does not wake
 * for it: this re-reads the task until its delivery reaches `status` (bounded).
 */
async function waitForDelivery(on: TestRelay, taskId: string, status: string, timeoutMs = 15_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { body } = await on.api('GET', `/v1/tasks/${taskId}`);
    if (body.task.delivery?.status === status) return body.task;
    if (Date.now() > deadline) throw new Error(`delivery of ${taskId} is ${JSON.stringify(body.task.delivery)}, expected ${status}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function events(on: TestRelay, taskId: string, type?: string): Promise<any[]> {
  const answer = await on.api('GET', `/v1/tasks/${taskId}/events`);
  assert.equal(answer.status, 200);
  return answer.body.events.filter((e: any) => type === undefined || e.type === type);
}

/** The AsyncQueue signature checked by hand: HMAC-SHA256 keyed by the whole whsec_ string over "t.body". */
function assertAsyncQueueSignature(delivery: Delivery, secret: string): void {
  const header = String(delivery.request.headers['x-asyncqueue-signature']);
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  assert.ok(match, `X-AsyncQueue-Signature malformed: ${header}`);
  assert.equal(match[1], delivery.request.headers['webhook-timestamp']);
  assert.equal(match[2], createHmac('sha256', secret).update(`${match[1]}.${delivery.request.text}`).digest('hex'));
}

/** Everything a receiver checks on one delivery of `taskId`. */
function assertSignedDelivery(delivery: Delivery, secret: string, taskId: string): void {
  assert.ok(delivery.payload, `standardwebhooks rejected the delivery: ${delivery.verifyError}`);
  const headers = delivery.request.headers;
  assert.equal(delivery.request.method, 'POST');
  assert.equal(headers['content-type'], 'application/json');
  assert.equal(headers['webhook-id'], `msg_${taskId.replaceAll('-', '')}`);
  const sentAt = Number(headers['webhook-timestamp']);
  assert.ok(Math.abs(sentAt - delivery.request.at / 1000) <= 5, `webhook-timestamp ${sentAt} is not about now`);
  assertAsyncQueueSignature(delivery, secret);
}

test('every kind of ending is delivered signed as {event, task} and verifies', async () => {
  const receiver = await newReceiver(relay.webhookSecret);
  const completed = (await createTask(relay, { targetUrl: `${provider.url}/run`, onCompleteUrl: receiver.url, metadata: { k: 'v' } })).task.id;
  const failed = (await createTask(relay, { targetUrl: `${provider.url}/reject`, onCompleteUrl: receiver.url })).task.id;
  const waiting = await createTask(relay, { targetUrl: `${provider.url}/run`, waitForSignal: true, onCompleteUrl: receiver.url });
  const timingOut = await createTask(relay, { targetUrl: `${provider.url}/run`, waitForSignal: true, maxWaitTime: 1, onCompleteUrl: receiver.url });
  await waitForStatus(relay, waiting.task.id, 'waiting');
  const cancel = await relay.api('POST', `/v1/tasks/${waiting.task.id}/cancel`);
  assert.equal(cancel.status, 200);

  const expected = [
    { id: completed, event: 'task.completed', status: 'completed' },
    { id: failed, event: 'task.failed', status: 'failed' },
    { id: waiting.task.id, event: 'task.cancelled', status: 'cancelled' },
    { id: timingOut.task.id, event: 'task.timeout', status: 'timeout' },
  ];
  for (const { id, event, status } of expected) {
    const [delivery] = await receiver.waitForDeliveries(id);
    assertSignedDelivery(delivery, relay.webhookSecret, id);
    const body = JSON.parse(delivery.request.text);
    assert.deepEqual(Object.keys(body).sort(), ['event', 'task']);
    assert.equal(body.event, event);
    assert.equal(body.task.id, id);
    assert.equal(body.task.status, status);
    assert.deepEqual(delivery.payload, body);
    assert.equal(body.task.onCompleteUrl, receiver.url);
    assert.ok(body.task.completedAt, 'a finished task carries completedAt');
  }
  const byId = new Map(receiver.deliveries.map((d) => [JSON.parse(d.request.text).task.id, JSON.parse(d.request.text).task]));
  assert.equal(byId.get(completed).result.statusCode, 200);
  assert.equal(byId.get(completed).result.body, '{"ok":true}');
  assert.deepEqual(byId.get(completed).metadata, { k: 'v' });
  assert.equal(byId.get(failed).error.code, 'target_rejected');
  assert.equal(byId.get(failed).error.statusCode, 400);
  assert.equal(byId.get(waiting.task.id).error.code, 'cancelled');
  assert.equal(byId.get(timingOut.task.id).error.code, 'timeout');
  // The callback token is a credential: never in a webhook.
  for (const { request } of receiver.deliveries) {
    assert.ok(!request.text.includes(waiting.signalToken) && !request.text.includes(timingOut.signalToken));
  }
  // A receiver that checks signatures refuses a delivery whose body was altered in transit.
  const original = receiver.deliveries[0];
  const headers = Object.fromEntries(Object.entries(original.request.headers).map(([k, v]) => [k, String(v)]));
  const hook = new Webhook(relay.webhookSecret);
  assert.doesNotThrow(() => hook.verify(original.request.text, headers));
  assert.throws(() => hook.verify(original.request.text.replace(/"status":"\w+"/, '"status":"completed "'), headers), /No matching signature/);
  assert.equal(receiver.fake.requests.length, 4, 'one delivery per task, nothing more');
});

test('500, 500, 200: delivered on attempt 3 with a stable webhook-id, every attempt on the timeline', async () => {
  const answer = `${'a'.repeat(1000)}${'b'.repeat(2000)}`;
  const receiver = await newReceiver(relay.webhookSecret, (_req, i) => (i < 2 ? { status: 500, body: answer } : { status: 200, body: 'thanks' }));
  const taskId = await completedTask(relay, receiver.url);

  const deliveries = await receiver.waitForDeliveries(taskId, 3);
  for (const d of deliveries) assertSignedDelivery(d, relay.webhookSecret, taskId);
  assert.equal(new Set(deliveries.map((d) => d.request.headers['webhook-id'])).size, 1, 'webhook-id is the same on every attempt');
  // The schedule: 0.2 s then 0.4 s (±10 % jitter), counted from the end of the previous attempt.
  const [a1, a2, a3] = deliveries.map((d) => d.request.at);
  assert.ok(a2 - a1 >= 180, `attempt 2 came ${a2 - a1} ms after attempt 1`);
  assert.ok(a3 - a2 >= 360, `attempt 3 came ${a3 - a2} ms after attempt 2`);

  const task = await waitForDelivery(relay, taskId, 'delivered');
  assert.deepEqual(task.delivery, { status: 'delivered', attempts: 3, nextAttemptAt: null });
  const attempts = await events(relay, taskId, 'delivery.attempt');
  assert.deepEqual(attempts.map((e) => [e.data.attempt, e.data.statusCode]), [[1, 500], [2, 500], [3, 200]]);
  assert.equal(attempts[0].data.answer, answer.slice(0, 1024), 'the first 1 KiB of the answer is kept');
  assert.equal(attempts[0].data.answer.length, 1024);
  assert.equal(attempts[2].data.answer, 'thanks');
  for (const e of attempts) {
    assert.equal(e.data.url, receiver.url);
    assert.equal(typeof e.data.duration, 'number');
  }
  const succeeded = await events(relay, taskId, 'delivery.succeeded');
  assert.deepEqual(succeeded.map((e) => e.data), [{ attempt: 3 }]);
  assert.equal((await events(relay, taskId, 'delivery.exhausted')).length, 0);
});

test('410 Gone stops the delivery at once: 1 attempt, failed, delivery.stopped', async () => {
  const receiver = await newReceiver(relay.webhookSecret, () => ({ status: 410, body: 'gone' }));
  const taskId = await completedTask(relay, receiver.url);
  await receiver.waitForDeliveries(taskId, 1);
  const task = await waitForDelivery(relay, taskId, 'failed');
  assert.deepEqual(task.delivery, { status: 'failed', attempts: 1, nextAttemptAt: null });
  assert.equal(task.status, 'completed', 'a failed delivery does not change the task');
  const stopped = await events(relay, taskId, 'delivery.stopped');
  assert.equal(stopped.length, 1);
  assert.match(stopped[0].data.reason, /410/);
  assert.deepEqual((await events(relay, taskId, 'delivery.attempt')).map((e) => e.data.statusCode), [410]);
  assert.equal((await events(relay, taskId, 'delivery.exhausted')).length, 0);
  // Proving an absence: a retry would come 0.2 s (+ a 0.5 s poll) later.
  await new Promise((r) => setTimeout(r, 1200));
  assert.equal(receiver.fake.requests.length, 1);
});

test('a 302 is a failed attempt and is not followed', async () => {
  const elsewhere = await HttpFake.start();
  try {
    const receiver = await newReceiver(relay.webhookSecret, () => ({ status: 302, headers: { location: `${elsewhere.url}/landing` } }));
    const taskId = await completedTask(relay, receiver.url);
    const task = await waitForDelivery(relay, taskId, 'failed');
    assert.deepEqual(task.delivery, { status: 'failed', attempts: 4, nextAttemptAt: null });
    assert.deepEqual((await events(relay, taskId, 'delivery.attempt')).map((e) => e.data.statusCode), [302, 302, 302, 302]);
    assert.equal(receiver.fake.requests.length, 4);
    assert.equal(elsewhere.requests.length, 0, 'the redirect target never hears from the relay');
  } finally {
    await elsewhere.close();
  }
});

test('503 with Retry-After: 1 delays the next attempt by at least a second', async () => {
  const receiver = await newReceiver(relay.webhookSecret, (_req, i) =>
    i === 0 ? { status: 503, headers: { 'retry-after': '1' }, body: 'busy' } : { status: 204 });
  const taskId = await completedTask(relay, receiver.url);
  const [first, second] = await receiver.waitForDeliveries(taskId, 2);
  // The schedule alone would retry after ~0.2 s.
  assert.ok(second.request.at - first.request.at >= 1000, `retried after ${second.request.at - first.request.at} ms`);
  assert.equal(second.request.headers['webhook-id'], first.request.headers['webhook-id']);
  const task = await waitForDelivery(relay, taskId, 'delivered');
  assert.deepEqual(task.delivery, { status: 'delivered', attempts: 2, nextAttemptAt: null });
  assert.deepEqual((await events(relay, taskId, 'delivery.attempt')).map((e) => e.data.statusCode), [503, 204]);
});

test('a receiver that never answers: the attempt times out (deliveryTimeoutMs) and is retried', async () => {
  const receiver = await newReceiver(impatient.webhookSecret, (_req, i) => (i === 0 ? { hang: true } : { status: 200 }));
  const taskId = await completedTask(impatient, receiver.url);
  const task = await waitForDelivery(impatient, taskId, 'delivered');
  assert.deepEqual(task.delivery, { status: 'delivered', attempts: 2, nextAttemptAt: null });
  const [first, second] = await events(impatient, taskId, 'delivery.attempt');
  assert.equal(first.data.error.code, 'timeout');
  assert.equal(first.data.statusCode, undefined);
  assert.ok(first.data.duration >= 450 && first.data.duration < 1900, `timed out after ${first.data.duration} ms, not ~500`);
  assert.equal(second.data.statusCode, 200);
  assertSignedDelivery(receiver.deliveries[1], impatient.webhookSecret, taskId);
});

test('always failing: exactly 4 attempts, then failed and exhausted, and it stays visible', async () => {
  const receiver = await newReceiver(relay.webhookSecret, () => ({ status: 500, body: 'down' }));
  const taskId = await completedTask(relay, receiver.url);
  await receiver.waitForDeliveries(taskId, 4);
  const task = await waitForDelivery(relay, taskId, 'failed');
  assert.deepEqual(task.delivery, { status: 'failed', attempts: 4, nextAttemptAt: null });
  assert.deepEqual((await events(relay, taskId, 'delivery.attempt')).map((e) => [e.data.attempt, e.data.statusCode]), [[1, 500], [2, 500], [3, 500], [4, 500]]);
  assert.deepEqual((await events(relay, taskId, 'delivery.exhausted')).map((e) => e.data), [{ attempts: 4 }]);
  // Proving an absence: no fifth attempt (the last step of the schedule was 0.6 s).
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(receiver.fake.requests.length, 4);
  const again = await relay.api('GET', `/v1/tasks/${taskId}`);
  assert.deepEqual(again.body.task.delivery, { status: 'failed', attempts: 4, nextAttemptAt: null });
  const listed = await relay.api('GET', '/v1/tasks?status=completed&limit=100');
  assert.equal(listed.body.tasks.find((t: any) => t.id === taskId).delivery.status, 'failed');
});

test('a task without onCompleteUrl sends nothing; a bad onCompleteUrl is refused and creates nothing', async () => {
  const { task } = await createTask(relay, { targetUrl: `${provider.url}/run` });
  const done = await waitForStatus(relay, task.id, 'completed');
  assert.equal(done.delivery, null);
  assert.equal((await events(relay, task.id)).filter((e) => e.type.startsWith('delivery.')).length, 0);

  const before = (await relay.api('GET', '/v1/tasks?limit=100')).body.tasks.length;
  for (const onCompleteUrl of ['ftp://127.0.0.1/hook', 'not a url', '/relative/hook']) {
    const refused = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/run`, onCompleteUrl });
    assert.equal(refused.status, 400, onCompleteUrl);
    assert.equal(refused.headers.get('content-type'), 'application/problem+json');
    assert.equal(refused.body.code, 'invalid_request');
    assert.match(refused.body.detail, /onCompleteUrl/);
    assert.equal(refused.body.error, refused.body.detail);
  }
  assert.equal((await relay.api('GET', '/v1/tasks?limit=100')).body.tasks.length, before);
});
