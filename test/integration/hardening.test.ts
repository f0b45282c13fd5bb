/**
 * Inputs that once slipped past validation or answered less than they should: NUL characters
 * (PostgreSQL cannot store them in json), oversize bodies, idempotent replays of waiting tasks.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { HttpFake } from '../fakes/http-fake.ts';
import { apiRequest, startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';

let relay: TestRelay;
let provider: HttpFake;

before(async () => {
  relay = await startTestRelay();
  provider = await HttpFake.start(() => ({ status: 200, body: { id: 'job_1' } }));
});
after(async () => {
  await relay.stop();
  await provider.close();
});

async function taskCount(): Promise<number> {
  const [row] = await relay.running.relay.sql<{ n: number }[]>`select count(*)::int as n from tasks`;
  return row.n;
}

async function waitingTask() {
  const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/submit`, waitForSignal: true });
  assert.equal(created.status, 201);
  await waitForStatus(relay, created.body.task.id, 'waiting');
  return created.body as { task: { id: string }; callbackUrl: string; signalToken: string };
}

test('a callback body holding a NUL byte is stored as base64 of the exact bytes', async () => {
  const { task, callbackUrl } = await waitingTask();
  const bytes = Buffer.from('before\0after', 'utf8');
  const answer = await fetch(callbackUrl, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: bytes });
  assert.equal(answer.status, 200);
  const stored = (await relay.api('GET', `/v1/tasks/${task.id}`)).body.task;
  assert.equal(stored.status, 'completed');
  assert.equal(stored.result.bodyEncoding, 'base64');
  assert.deepEqual(Buffer.from(stored.result.body, 'base64'), bytes);
});

test('a target answer holding a NUL byte completes the task with a base64 result', async () => {
  const nul = await HttpFake.start(() => ({ status: 200, headers: { 'content-type': 'text/plain' }, body: Buffer.from('a\0b') }));
  try {
    const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${nul.url}/x` });
    const done = await waitForStatus(relay, created.body.task.id, 'completed');
    assert.equal(done.result.bodyEncoding, 'base64');
    assert.equal(Buffer.from(done.result.body, 'base64').toString('utf8'), 'a\0b');
  } finally {
    await nul.close();
  }
});

test('a signal whose error or result holds NUL is a 400 and changes nothing', async () => {
  const { task, signalToken } = await waitingTask();
  for (const body of [{ status: 'failed', error: 'a\u0000b' }, { status: 'failed', error: { message: 'x\u0000' } }, { status: 'completed', result: 'r\u0000' }]) {
    const answer = await apiRequest(relay.baseUrl, 'POST', `/v1/signals/${signalToken}`, body);
    assert.equal(answer.status, 400, JSON.stringify(answer.body));
    assert.equal(answer.headers.get('content-type'), 'application/problem+json');
  }
  assert.equal((await relay.api('GET', `/v1/tasks/${task.id}`)).body.task.status, 'waiting');
});

test('an over-long callback id is an unknown token (404), not a validation error', async () => {
  const answer = await apiRequest(relay.baseUrl, 'POST', `/v1/callbacks/${'a'.repeat(300)}`, '{}');
  assert.equal(answer.status, 404);
  assert.equal(answer.body.error, 'Invalid or expired callback ID');
});

test('a task body over 2 MiB is refused with 413 and nothing is written', async () => {
  const before = await taskCount();
  const answer = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/x`, body: 'x'.repeat(2 * 1024 * 1024) });
  assert.equal(answer.status, 413);
  assert.equal(answer.body.code, 'payload_too_large');
  assert.equal(await taskCount(), before);
});

test('an Idempotency-Key replay of a waiting task answers the same callback URL and token', async () => {
  const body = { targetUrl: `${provider.url}/submit?hook={asyncqueue_callback_url}`, metadata: { b: '2', a: '1' } };
  const first = await relay.api('POST', '/v1/tasks', body, { 'idempotency-key': 'replay-token-1' });
  assert.equal(first.status, 201);
  // Same request with its keys in another order: the same fingerprint, so a replay, not a 422.
  const again = await relay.api('POST', '/v1/tasks', { metadata: { a: '1', b: '2' }, targetUrl: body.targetUrl }, { 'idempotency-key': 'replay-token-1' });
  assert.equal(again.status, 200, JSON.stringify(again.body));
  assert.equal(again.body.task.id, first.body.task.id);
  assert.equal(again.body.signalToken, first.body.signalToken);
  assert.equal(again.body.callbackUrl, first.body.callbackUrl);
  assert.equal(again.body.task.callbackId, first.body.signalToken);
});

test('pagination echoes offset only when it was used (a cursor wins)', async () => {
  for (let i = 0; i < 3; i++) await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/x`, metadata: { page: 'p' } });
  const first = await relay.api('GET', '/v1/tasks?limit=1&metadata.page=p&offset=1');
  assert.equal(first.body.pagination.offset, 1);
  const next = await relay.api('GET', `/v1/tasks?limit=1&metadata.page=p&offset=1&cursor=${first.body.pagination.nextCursor}`);
  assert.equal(next.status, 200);
  assert.equal(next.body.pagination.offset, undefined);
  assert.notEqual(next.body.tasks[0].id, first.body.tasks[0].id);
});
