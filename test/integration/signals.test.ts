/**
 * POST /v1/signals/:token (DESIGN §4): the client finishes a waiting task itself, as completed
 * or failed; bad bodies and unknown tokens change nothing; a finished task refuses a signal.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { HttpFake } from '../fakes/http-fake.ts';
import { Receiver } from '../fakes/receiver.ts';
import { apiRequest, startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';

let relay: TestRelay;
let target: HttpFake;
let receiver: Receiver;

before(async () => {
  relay = await startTestRelay();
  target = await HttpFake.start(() => ({ status: 202, body: { accepted: true } }));
  receiver = await Receiver.start(relay.webhookSecret);
});
after(async () => {
  await relay.stop();
  await target.close();
  await receiver.close();
});

/** A task with `waitForSignal` and no placeholder, already `waiting` after its 2xx submit. */
async function waitingTask(extra: Record<string, unknown> = {}): Promise<{ id: string; token: string }> {
  const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${target.url}/jobs`, waitForSignal: true, ...extra });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.match(created.body.signalToken, /^[0-9a-f]{64}$/);
  await waitForStatus(relay, created.body.task.id, 'waiting');
  return { id: created.body.task.id, token: created.body.signalToken };
}

function signal(token: string, body: unknown, headers: Record<string, string> = {}) {
  return apiRequest(relay.baseUrl, 'POST', `/v1/signals/${token}`, body, headers);
}

async function getTask(id: string) {
  const answer = await relay.api('GET', `/v1/tasks/${id}`);
  assert.equal(answer.status, 200);
  return answer.body.task;
}

async function timeline(id: string): Promise<Array<{ type: string; data: any }>> {
  return (await relay.api('GET', `/v1/tasks/${id}/events`)).body.events;
}

function assertProblem(answer: { status: number; headers: Headers; body: any }, status: number) {
  assert.equal(answer.status, status, JSON.stringify(answer.body));
  assert.equal(answer.headers.get('content-type'), 'application/problem+json');
  for (const field of ['type', 'title', 'status', 'detail', 'code', 'error', 'requestId']) assert.ok(field in answer.body, field);
  assert.equal(answer.body.status, status);
}

test('a task with waitForSignal and no placeholder waits until a completed signal finishes it', async () => {
  const task = await waitingTask({ onCompleteUrl: receiver.url });
  const [submit] = await target.waitForRequests(1);
  assert.ok(!submit.text.includes(task.token) && !submit.url.href.includes(task.token), 'token sent without a placeholder');
  const answer = await signal(task.token, { status: 'completed', result: { output: 'https://cdn/x.png', n: 2 } });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  // The token is no read credential: the answer says what happened and nothing of the task.
  assert.deepEqual(answer.body, { task: { id: task.id, status: 'completed' } });
  const stored = await getTask(task.id);
  assert.equal(stored.status, 'completed');
  assert.equal(stored.result.statusCode, 200);
  assert.equal(stored.result.body, '{"output":"https://cdn/x.png","n":2}');
  assert.deepEqual(JSON.parse(stored.result.body), { output: 'https://cdn/x.png', n: 2 });
  assert.ok(stored.result.duration >= 0);
  assert.equal(stored.error, null);
  const [delivery] = await receiver.waitForDeliveries(task.id);
  assert.ok(delivery.payload, delivery.verifyError);
  assert.equal(delivery.payload.event, 'task.completed');
  const types = (await timeline(task.id)).map((e) => e.type);
  assert.ok(types.includes('signal.accepted'));
});

test('a string result is stored as is', async () => {
  const task = await waitingTask();
  const answer = await signal(task.token, { status: 'completed', result: 'plain words' });
  assert.equal(answer.status, 200);
  assert.equal((await getTask(task.id)).result.body, 'plain words');
});

test('a failed signal with an error string fails the task and onComplete gets task.failed', async () => {
  const task = await waitingTask({ onCompleteUrl: receiver.url });
  const answer = await signal(task.token, { status: 'failed', error: 'boom' });
  assert.equal(answer.status, 200);
  assert.equal(answer.body.task.status, 'failed');
  const stored = await getTask(task.id);
  assert.equal(stored.error.message, 'boom');
  assert.equal(stored.error.code, 'signal_failed');
  assert.equal(stored.result, null);
  const [delivery] = await receiver.waitForDeliveries(task.id);
  assert.ok(delivery.payload, delivery.verifyError);
  assert.equal(delivery.payload.event, 'task.failed');
  assert.equal(delivery.payload.task.status, 'failed');
  assert.equal((delivery.payload.task as any).error.message, 'boom');
});

test('a failed signal with an error object keeps its code and message', async () => {
  const task = await waitingTask();
  const answer = await signal(task.token, { status: 'failed', error: { code: 'x', message: 'y' } });
  assert.equal(answer.status, 200);
  assert.deepEqual((await getTask(task.id)).error, { code: 'x', message: 'y' });
});

test('an invalid signal body is 400 and changes nothing', async () => {
  const task = await waitingTask();
  const before = await timeline(task.id);
  const invalid: Array<[string, unknown, Record<string, string>?]> = [
    ['status "done"', { status: 'done' }],
    ['missing status', { result: { a: 1 } }],
    ['unknown field', { status: 'completed', extra: true }],
    ['error of the wrong type', { status: 'failed', error: 42 }],
    ['not JSON', '{"status": "completed"', { 'content-type': 'application/json' }],
    ['a JSON array', [{ status: 'completed' }]],
  ];
  for (const [what, body, headers] of invalid) {
    const answer = await signal(task.token, body, headers);
    assertProblem(answer, 400);
    assert.equal(answer.body.code, 'invalid_request', what);
  }
  const unchanged = await getTask(task.id);
  assert.equal(unchanged.status, 'waiting');
  assert.equal(unchanged.result, null);
  assert.equal(unchanged.error, null);
  assert.deepEqual(await timeline(task.id), before);
  // The token is still good.
  assert.equal((await signal(task.token, { status: 'completed' })).status, 200);
  assert.equal((await getTask(task.id)).status, 'completed');
});

test('an unknown or malformed token is 404', async () => {
  for (const token of ['cd'.repeat(32), 'nope']) {
    const answer = await signal(token, { status: 'completed' });
    assertProblem(answer, 404);
    assert.equal(answer.body.code, 'not_found');
  }
});

test('a signal after the task finished is 409 and changes nothing', async () => {
  const task = await waitingTask();
  assert.equal((await signal(task.token, { status: 'completed', result: { v: 1 } })).status, 200);
  for (const body of [{ status: 'failed', error: 'too late' }, { status: 'completed', result: { v: 2 } }]) {
    const answer = await signal(task.token, body);
    assertProblem(answer, 409);
    assert.equal(answer.body.error, 'Task is not in waiting/polling state (current: completed)');
  }
  const stored = await getTask(task.id);
  assert.equal(stored.status, 'completed');
  assert.equal(stored.result.body, '{"v":1}');
  assert.equal(stored.error, null);
  const types = (await timeline(task.id)).map((e) => e.type);
  assert.equal(types.filter((t) => t === 'signal.accepted').length, 1);
  assert.equal(types.filter((t) => t === 'signal.rejected').length, 2);
});

test('signal and callback share the token: the first terminal writer wins', async () => {
  const task = await waitingTask();
  assert.equal((await signal(task.token, { status: 'failed', error: 'cancelled upstream' })).status, 200);
  const cb = await fetch(`${relay.baseUrl}/v1/callbacks/${task.token}`, { method: 'POST', body: 'late result' });
  assert.equal(cb.status, 409);
  const stored = await getTask(task.id);
  assert.equal(stored.status, 'failed');
  assert.equal(stored.result, null);
});

test('a signal to a timed-out task is 409', async () => {
  const task = await waitingTask({ maxWaitTime: 1 });
  await waitForStatus(relay, task.id, 'timeout');
  const answer = await signal(task.token, { status: 'completed', result: 'late' });
  assertProblem(answer, 409);
  assert.equal(answer.body.error, 'Task is not in waiting/polling state (current: timeout)');
  assert.equal((await getTask(task.id)).status, 'timeout');
});

test('a task that requires signed callbacks refuses signals with 401; a signed callback still finishes it', async () => {
  const secret = `whsec_${randomBytes(24).toString('base64')}`;
  const task = await waitingTask({ callbackSignature: { scheme: 'standard-webhooks', secret } });
  for (const body of [{ status: 'completed', result: 'forged' }, { status: 'failed', error: 'forged' }]) {
    const answer = await signal(task.token, body);
    assertProblem(answer, 401);
    assert.equal(answer.body.code, 'unauthorized');
    assert.equal(answer.body.error, 'This task requires signed callbacks; a signal cannot finish it');
  }
  const unchanged = await getTask(task.id);
  assert.equal(unchanged.status, 'waiting');
  assert.equal(unchanged.result, null);
  assert.equal(unchanged.error, null);
  const rejected = (await timeline(task.id)).filter((e) => e.type === 'signal.rejected');
  assert.deepEqual(rejected.map((e) => e.data), [
    { reason: 'signed_callbacks_required', status: 'waiting', requested: 'completed' },
    { reason: 'signed_callbacks_required', status: 'waiting', requested: 'failed' },
  ]);

  const body = '{"output":"real"}';
  const now = new Date();
  const headers = { 'content-type': 'application/json', 'webhook-id': 'msg_1', 'webhook-timestamp': String(Math.floor(now.getTime() / 1000)), 'webhook-signature': new Webhook(secret).sign('msg_1', now, body) };
  const accepted = await fetch(`${relay.baseUrl}/v1/callbacks/${task.token}`, { method: 'POST', headers, body });
  assert.equal(accepted.status, 200, await accepted.clone().text());
  const done = await getTask(task.id);
  assert.equal(done.status, 'completed');
  assert.equal(done.result.body, body);
});
