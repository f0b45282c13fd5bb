/**
 * POST /v1/callbacks/:callbackId (DESIGN §5): raw storage of any content type, idempotent
 * repeats, conflicts, unknown tokens, the body cap, late callbacks, and callbacks that arrive
 * before the provider's own submit answer.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { type FakeReply, HttpFake } from '../fakes/http-fake.ts';
import { Receiver } from '../fakes/receiver.ts';
import { startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';
import { waitForEvent } from '../helpers/wait.ts';

let relay: TestRelay;
let provider: HttpFake;
let receiver: Receiver;
/** Answers of callbacks the provider itself posted from inside its submit handler. */
const earlyAnswers = new Map<string, { status: number; body: any }>();
/** Submits to `/gate/<name>` are held until the test opens the gate; `gateArrived` announces them. */
const gates = new Map<string, () => void>();
const gateArrived = new EventEmitter();

before(async () => {
  relay = await startTestRelay();
  receiver = await Receiver.start(relay.webhookSecret);
  provider = await HttpFake.start(async (req): Promise<FakeReply> => {
    if (req.path.startsWith('/early/')) {
      // Calls back first, and answers its own submit only once the relay has answered that.
      const { webhook } = JSON.parse(req.text);
      const res = await fetch(webhook, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"status":"OK","images":["a.png"]}' });
      earlyAnswers.set(req.path, { status: res.status, body: await res.json() });
      return { status: 200, body: { request_id: 'req_early' } };
    }
    if (req.path.startsWith('/gate/')) {
      const opened = new Promise<void>((resolve) => gates.set(req.path, resolve));
      gateArrived.emit('arrived', req.path);
      await opened;
      return { status: 202, body: { request_id: 'req_gated' } };
    }
    return { status: 200, body: { request_id: 'req_1' } };
  });
});
after(async () => {
  for (const open of gates.values()) open();
  await relay.stop();
  await provider.close();
  await receiver.close();
});

interface Created {
  id: string;
  callbackUrl: string;
}

async function create(input: Record<string, unknown>): Promise<Created> {
  const created = await relay.api('POST', '/v1/tasks', { body: { webhook: '{asyncqueue_callback_url}' }, ...input });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return { id: created.body.task.id, callbackUrl: created.body.callbackUrl };
}

async function waitingTask(input: Record<string, unknown> = {}): Promise<Created> {
  const task = await create({ targetUrl: `${provider.url}/submit`, ...input });
  await waitForStatus(relay, task.id, 'waiting');
  return task;
}

async function callback(url: string, body: string | Buffer, contentType?: string) {
  const res = await fetch(url, { method: 'POST', headers: contentType ? { 'content-type': contentType } : {}, body });
  const text = await res.text();
  return { status: res.status, contentType: res.headers.get('content-type'), body: text ? JSON.parse(text) : undefined };
}

async function getTask(id: string) {
  const answer = await relay.api('GET', `/v1/tasks/${id}`);
  assert.equal(answer.status, 200);
  return answer.body.task;
}

async function timeline(id: string): Promise<Array<{ type: string; data: any }>> {
  return (await relay.api('GET', `/v1/tasks/${id}/events`)).body.events;
}

function assertProblem(answer: { status: number; contentType: string | null; body: any }, status: number, error?: string) {
  assert.equal(answer.status, status, JSON.stringify(answer.body));
  assert.equal(answer.contentType, 'application/problem+json');
  for (const field of ['type', 'title', 'status', 'detail', 'code', 'error', 'requestId']) assert.ok(field in answer.body, field);
  assert.equal(answer.body.status, status);
  if (error !== undefined) assert.equal(answer.body.error, error);
}

test('a text/plain callback is stored raw and completes the task', async () => {
  const task = await waitingTask();
  const body = 'plain text, not JSON: {status} ünïcode\n';
  const answer = await callback(task.callbackUrl, body, 'text/plain; charset=utf-8');
  assert.equal(answer.status, 200);
  assert.equal(answer.contentType, 'application/json');
  assert.equal(answer.body.task.id, task.id);
  assert.equal(answer.body.task.status, 'completed');
  const stored = await getTask(task.id);
  assert.equal(stored.status, 'completed');
  assert.equal(stored.result.statusCode, 200);
  assert.equal(stored.result.body, body);
  assert.equal(stored.result.headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(stored.result.bodyEncoding, undefined);
  assert.ok(stored.result.duration >= 0);
  assert.deepEqual(stored.error, null);
});

test('a JSON callback is stored as the exact string received, whitespace included', async () => {
  const task = await waitingTask();
  const body = '{ "status" : "succeeded",\n  "output": [1, 2.50] }';
  const answer = await callback(task.callbackUrl, body, 'application/json');
  assert.equal(answer.status, 200);
  const stored = await getTask(task.id);
  assert.equal(stored.result.body, body);
  assert.equal(stored.result.statusCode, 200);
});

test('a binary octet-stream callback is stored as base64 of the exact bytes', async () => {
  const task = await waitingTask();
  const bytes = Buffer.from([0x00, 0xff, 0xd8, 0xff, 0xe0, 0x80, 0x81, 0x7f, 0xc3]);
  const answer = await callback(task.callbackUrl, bytes, 'application/octet-stream');
  assert.equal(answer.status, 200);
  const stored = await getTask(task.id);
  assert.equal(stored.result.bodyEncoding, 'base64');
  assert.deepEqual(Buffer.from(stored.result.body, 'base64'), bytes);
  assert.equal(stored.result.headers['content-type'], 'application/octet-stream');
});

test('a repeat of the accepted body is answered 200 without a second onComplete; another body is 409', async () => {
  const task = await waitingTask({ onCompleteUrl: receiver.url });
  const body = '{"status":"succeeded","output":"x"}';
  assert.equal((await callback(task.callbackUrl, body, 'application/json')).status, 200);
  const repeat = await callback(task.callbackUrl, body, 'application/json');
  assert.equal(repeat.status, 200);
  assert.equal(repeat.body.task.status, 'completed');

  const other = await callback(task.callbackUrl, '{"status":"succeeded","output":"y"}', 'application/json');
  assertProblem(other, 409, 'Task is not in waiting/polling state (current: completed)');
  assert.equal((await getTask(task.id)).result.body, body, 'the conflicting body changed the result');

  const [delivery] = await receiver.waitForDeliveries(task.id);
  assert.ok(delivery.payload, delivery.verifyError);
  assert.equal(delivery.payload.event, 'task.completed');
  assert.equal((delivery.payload.task as any).result.body, body);
  // Only the accepted callback's statement keeps its onComplete job: the repeat and the conflict
  // write none. Wait until that one job ran (it stands behind the prompt attempt and does nothing).
  const tokenHash = createHash('sha256').update(task.callbackUrl.split('/').pop()!).digest('hex');
  const jobStates = async () =>
    relay.running.relay.sql<{ state: string }[]>`
      select state from pgboss.job where name = 'task.notify' and data->>'callbackHash' = ${tokenHash}`;
  for (let states = await jobStates(); states.length !== 1 || states.some((j) => j.state !== 'completed'); states = await jobStates()) {
    await sleep(50); // polling a queue table: there is no event for "a job finished doing nothing"
  }
  assert.equal(receiver.deliveries.filter((d) => d.request.text.includes(task.id)).length, 1, 'a second onComplete was sent');
  const types = (await timeline(task.id)).map((e) => e.type);
  assert.equal(types.filter((t) => t === 'delivery.attempt').length, 1);
  assert.equal(types.filter((t) => t === 'callback.accepted').length, 1);
  assert.equal(types.filter((t) => t === 'callback.duplicate').length, 1);
  assert.equal(types.filter((t) => t === 'callback.rejected').length, 1);
});

test('the callback URL is no read credential: accepted, repeated and progress answers carry only the id and status', async () => {
  const task = await waitingTask({ onCompleteUrl: receiver.url, metadata: { customer: 'c-42' }, body: { prompt: 'private prompt', webhook: '{asyncqueue_callback_url}' } });
  const body = '{"status":"succeeded","output":"private result"}';
  const accepted = await callback(task.callbackUrl, body, 'application/json');
  assert.equal(accepted.status, 200);
  assert.deepEqual(accepted.body, { task: { id: task.id, status: 'completed' } });
  // Any later POST to the same URL (a provider retry, or whoever holds the URL): still nothing more.
  const repeat = await callback(task.callbackUrl, body, 'application/json');
  assert.equal(repeat.status, 200);
  assert.deepEqual(repeat.body, { task: { id: task.id, status: 'completed' } });

  const classified = await waitingTask({ callbackConfig: { statusPath: 'state', doneValues: ['done'] }, metadata: { customer: 'c-43' } });
  const progress = await callback(classified.callbackUrl, '{"state":"running"}', 'application/json');
  assert.equal(progress.status, 202);
  assert.deepEqual(progress.body, { task: { id: classified.id, status: 'waiting' } });
  // The client still reads everything with its API key.
  assert.equal((await getTask(task.id)).result.body, body);
});

test('an unknown or malformed token is 404 Invalid or expired callback ID', async () => {
  const unknown = await callback(`${relay.baseUrl}/v1/callbacks/${'ab'.repeat(32)}`, '{}', 'application/json');
  assertProblem(unknown, 404, 'Invalid or expired callback ID');
  for (const garbage of ['not-a-token', 'AB'.repeat(32), 'ab'.repeat(31), '..%2F..%2Fv1%2Ftasks']) {
    const answer = await callback(`${relay.baseUrl}/v1/callbacks/${garbage}`, '{}', 'application/json');
    assertProblem(answer, 404, 'Invalid or expired callback ID');
  }
});

test('a body of 1 MiB + 1 is refused with 413 and changes nothing; exactly 1 MiB is accepted', async () => {
  const task = await waitingTask();
  const before = await timeline(task.id);
  const tooBig = await callback(task.callbackUrl, Buffer.alloc(1024 * 1024 + 1, 'a'), 'text/plain');
  assertProblem(tooBig, 413);
  assert.equal(tooBig.body.code, 'payload_too_large');
  const unchanged = await getTask(task.id);
  assert.equal(unchanged.status, 'waiting');
  assert.equal(unchanged.result, null);
  assert.deepEqual(await timeline(task.id), before);

  // The token was not consumed: a body at the cap still completes the task (sent right after
  // the 413, on the connection fetch keeps alive unless the relay said to close it).
  const atCap = await callback(task.callbackUrl, Buffer.alloc(1024 * 1024, 'b'), 'text/plain');
  assert.equal(atCap.status, 200);
  const done = await getTask(task.id);
  assert.equal(done.status, 'completed');
  assert.equal(done.result.body.length, 1024 * 1024);
});

test('a callback after timeout is 409 and its payload is kept on the timeline', async () => {
  const task = await waitingTask({ maxWaitTime: 1 });
  await waitForStatus(relay, task.id, 'timeout');
  const late = await callback(task.callbackUrl, '{"status":"OK","late":true}', 'application/json');
  assertProblem(late, 409, 'Task is not in waiting/polling state (current: timeout)');
  const stored = await getTask(task.id);
  assert.equal(stored.status, 'timeout');
  assert.equal(stored.result, null);
  const event = (await timeline(task.id)).find((e) => e.type === 'callback.late');
  assert.ok(event, 'no callback.late event');
  assert.equal(event.data.body, '{"status":"OK","late":true}');
  assert.equal(event.data.status, 'timeout');
});

test('a callback after cancel is 409 and its payload is kept on the timeline', async () => {
  const task = await waitingTask();
  assert.equal((await relay.api('POST', `/v1/tasks/${task.id}/cancel`)).status, 200);
  const late = await callback(task.callbackUrl, 'result after cancel', 'text/plain');
  assertProblem(late, 409, 'Task is not in waiting/polling state (current: cancelled)');
  assert.equal((await getTask(task.id)).status, 'cancelled');
  const event = (await timeline(task.id)).find((e) => e.type === 'callback.late');
  assert.ok(event, 'no callback.late event');
  assert.equal(event.data.body, 'result after cancel');
  assert.equal(event.data.status, 'cancelled');
});

test('a callback that arrives before the submit answer completes the task exactly once', async () => {
  const task = await create({ targetUrl: `${provider.url}/early/e1`, onCompleteUrl: receiver.url });
  const done = await waitForStatus(relay, task.id, 'completed');
  // The task is complete once the callback committed; the provider reads its answer a moment later.
  const early = await eventually(async () => earlyAnswers.get('/early/e1'));
  assert.equal(early.status, 200);
  assert.equal(early.body.task.status, 'completed');
  assert.equal(done.result.body, '{"status":"OK","images":["a.png"]}');
  assert.equal(done.result.statusCode, 200);

  // The submit answer is recorded as late once it reaches the relay; it changes nothing.
  const events = await eventually(async () => {
    const all = await timeline(task.id);
    return all.some((e) => e.type === 'dispatch.late_response') ? all : undefined;
  });
  const changes = events.filter((e) => e.type === 'status.changed').map((e) => e.data.to);
  assert.deepEqual(changes, ['processing', 'completed']);
  assert.ok(!changes.includes('waiting'));
  assert.equal(events.filter((e) => e.type === 'callback.accepted').length, 1);
  assert.equal(events.find((e) => e.type === 'callback.accepted')!.data.from, 'processing');
  const after = await getTask(task.id);
  assert.equal(after.status, 'completed');
  assert.equal(after.result.body, '{"status":"OK","images":["a.png"]}');
  const deliveries = await receiver.waitForDeliveries(task.id);
  assert.equal(deliveries.length, 1);
  assert.equal(deliveries[0].payload?.event, 'task.completed');
});

test('a callback accepted while the submit is still in flight (processing) completes the task', async () => {
  const task = await create({ targetUrl: `${provider.url}/gate/g1`, timeout: 60 });
  // The fake announces a request only once it answers, so the gate says when the submit is held.
  await waitForEvent(gateArrived, 'arrived', () => (gates.has('/gate/g1') ? true : undefined));
  assert.equal((await getTask(task.id)).status, 'processing');
  const answer = await callback(task.callbackUrl, 'done early', 'text/plain');
  assert.equal(answer.status, 200);
  assert.equal(answer.body.task.status, 'completed');
  gates.get('/gate/g1')!();
  await eventually(async () => ((await timeline(task.id)).some((e) => e.type === 'dispatch.late_response') ? true : undefined));
  const stored = await getTask(task.id);
  assert.equal(stored.status, 'completed');
  assert.equal(stored.result.body, 'done early');
});

test('a callback accepted while the task is still pending completes it', async () => {
  // An api-only relay has no worker: the task stays pending, as if the queue were backed up.
  const apiOnly = await startTestRelay({ env: { RELAY_ROLE: 'api' } });
  try {
    const created = await apiOnly.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/never`, waitForSignal: true });
    assert.equal(created.body.task.status, 'pending');
    const answer = await callback(created.body.callbackUrl, 'before dispatch', 'text/plain');
    assert.equal(answer.status, 200);
    assert.equal(answer.body.task.status, 'completed');
    assert.equal((await apiOnly.api('GET', `/v1/tasks/${created.body.task.id}`)).body.task.result.body, 'before dispatch');
    const events = (await apiOnly.api('GET', `/v1/tasks/${created.body.task.id}/events`)).body.events;
    assert.equal(events.find((e: any) => e.type === 'callback.accepted').data.from, 'pending');
  } finally {
    await apiOnly.stop();
  }
});

/** Re-reads until `check` gives a value: for effects that no status change announces. */
async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(50);
  }
}
