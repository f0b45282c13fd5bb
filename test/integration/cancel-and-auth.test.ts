import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import postgres from 'postgres';
import { createApiKey } from '../../src/projects/api-keys.ts';
import { type FakeReply, HttpFake } from '../fakes/http-fake.ts';
import { Receiver } from '../fakes/receiver.ts';
import { type ApiAnswer, apiRequest, startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';
import { waitForEvent } from '../helpers/wait.ts';

let relay: TestRelay;
/** No worker: its tasks stay `pending`, which a relay with workers leaves within milliseconds. */
let apiOnly: TestRelay;
let provider: HttpFake;
let receiver: Receiver;
let sql: postgres.Sql;
let releaseHeld: ((reply: FakeReply) => void) | undefined;

before(async () => {
  [relay, apiOnly] = await Promise.all([startTestRelay(), startTestRelay({ env: { RELAY_ROLE: 'api' } })]);
  // HttpFake announces a request only once its handler has answered, so a held request
  // announces itself with its own 'held' event.
  provider = await HttpFake.start((req) => {
    if (req.path !== '/hold') return { status: 200, body: { ok: true } };
    return new Promise<FakeReply>((resolve) => {
      releaseHeld = resolve;
      provider.emit('held');
    });
  });
  receiver = await Receiver.start(relay.webhookSecret);
  sql = postgres(relay.database.url, { max: 2, onnotice: () => {} });
});
after(async () => {
  releaseHeld?.({ status: 200 });
  await sql.end({ timeout: 5 });
  await Promise.all([relay.stop(), apiOnly.stop()]);
  await provider.close();
  await receiver.close();
});

const FAR_FUTURE = '2099-01-01T00:00:00Z';
const UNKNOWN_ID = '01900000-0000-7000-8000-000000000000';

function assertProblem(answer: ApiAnswer, status: number, code: string, detail: RegExp): void {
  assert.equal(answer.status, status, JSON.stringify(answer.body));
  assert.equal(answer.headers.get('content-type'), 'application/problem+json');
  assert.deepEqual(Object.keys(answer.body).sort(), ['code', 'detail', 'error', 'requestId', 'status', 'title', 'type']);
  assert.equal(answer.body.status, status);
  assert.equal(answer.body.code, code);
  assert.equal(answer.body.error, answer.body.detail);
  assert.match(answer.body.detail, detail);
}

/** Re-checks a database condition until it holds (there is no event to wait on for job state). */
async function waitUntil<T>(check: () => Promise<T | undefined>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(50);
  }
}

async function create(target: TestRelay, input: Record<string, unknown>): Promise<any> {
  const answer = await target.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/run`, ...input });
  assert.equal(answer.status, 201, JSON.stringify(answer.body));
  return answer.body.task;
}

async function eventTypes(target: TestRelay, id: string): Promise<string[]> {
  return (await target.api('GET', `/v1/tasks/${id}/events`)).body.events.map((e: { type: string }) => e.type);
}

describe('POST /v1/tasks/:id/cancel', () => {
  test('a delayed task is cancelled, notified as task.cancelled and never dispatched', async () => {
    const task = await create(relay, {
      targetUrl: `${provider.url}/delayed-cancel`,
      delayUntil: new Date(Date.now() + 1_000).toISOString(),
      onCompleteUrl: receiver.url,
    });
    assert.equal(task.status, 'delayed');
    const answer = await relay.api('POST', `/v1/tasks/${task.id}/cancel`);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body.task.status, 'cancelled');
    assert.deepEqual(answer.body.task.error, { code: 'cancelled', message: 'Cancelled by request' });
    assert.ok(answer.body.task.completedAt);

    const [delivery] = await receiver.waitForDeliveries(task.id);
    assert.ok(delivery.payload, delivery.verifyError);
    assert.equal(delivery.payload.event, 'task.cancelled');
    assert.equal(delivery.payload.task.status, 'cancelled');
    assert.deepEqual((delivery.payload.task as any).error, { code: 'cancelled', message: 'Cancelled by request' });

    // The dispatch job still fires at delayUntil; it must find the task cancelled and do nothing.
    const state = await waitUntil(async () => {
      const [job] = await sql`select state from pgboss.job where name = 'task.dispatch' and data->>'taskId' = ${task.id}`;
      return job?.state === 'completed' || job?.state === 'failed' ? job.state : undefined;
    }, 'the delayed dispatch job to run');
    assert.equal(state, 'completed');
    assert.equal(provider.requests.filter((r) => r.path === '/delayed-cancel').length, 0);
    const types = await eventTypes(relay, task.id);
    assert.deepEqual(types.slice(0, 3), ['task.created', 'task.cancel_requested', 'status.changed']);
    assert.ok(!types.includes('dispatch.attempt'));
    assert.equal((await relay.api('GET', `/v1/tasks/${task.id}`)).body.task.status, 'cancelled');
  });

  test('a pending task is cancelled from pending', async () => {
    const task = await create(apiOnly, { targetUrl: `${provider.url}/pending-cancel` });
    assert.equal((await apiOnly.api('GET', `/v1/tasks/${task.id}`)).body.task.status, 'pending');
    const answer = await apiOnly.api('POST', `/v1/tasks/${task.id}/cancel`);
    assert.equal(answer.status, 200);
    assert.equal(answer.body.task.status, 'cancelled');
    assert.equal(answer.body.task.error.code, 'cancelled');
    const events = (await apiOnly.api('GET', `/v1/tasks/${task.id}/events`)).body.events;
    assert.deepEqual(events.map((e: any) => e.type), ['task.created', 'task.cancel_requested', 'status.changed']);
    assert.deepEqual(events[0].data, { status: 'pending', waits: false });
    assert.deepEqual(events[1].data, { from: 'pending' });
    assert.equal(events[2].data.to, 'cancelled');
    if ('from' in events[2].data) assert.equal(events[2].data.from, 'pending');
    assertProblem(await apiOnly.api('POST', `/v1/tasks/${task.id}/cancel`), 409, 'conflict', /^Task is already cancelled$/);
  });

  test('a waiting task is cancelled and its callback token stops working', async () => {
    const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/waits`, waitForSignal: true, onCompleteUrl: receiver.url });
    const { task, callbackUrl } = created.body;
    await waitForStatus(relay, task.id, 'waiting');
    const answer = await relay.api('POST', `/v1/tasks/${task.id}/cancel`);
    assert.equal(answer.status, 200);
    assert.equal(answer.body.task.status, 'cancelled');
    const [delivery] = await receiver.waitForDeliveries(task.id);
    assert.equal(delivery.payload?.event, 'task.cancelled');

    const late = await fetch(callbackUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"done":true}' });
    assert.equal(late.status, 409);
    const after = (await relay.api('GET', `/v1/tasks/${task.id}`)).body.task;
    assert.equal(after.status, 'cancelled');
    assert.equal(after.result, null);
  });

  test('a task cancelled mid-dispatch stays cancelled when the target answers late', async () => {
    const task = await create(relay, { targetUrl: `${provider.url}/hold` });
    const release = await waitForEvent(provider, 'held', () => releaseHeld, 10_000, 'the held dispatch');
    assert.equal((await relay.api('GET', `/v1/tasks/${task.id}`)).body.task.status, 'processing');
    const answer = await relay.api('POST', `/v1/tasks/${task.id}/cancel`);
    assert.equal(answer.status, 200);
    assert.equal(answer.body.task.status, 'cancelled');
    release({ status: 200, body: { late: true } });
    const types = await waitUntil(async () => {
      const t = await eventTypes(relay, task.id);
      return t.includes('dispatch.late_response') ? t : undefined;
    }, 'the late answer to be recorded');
    assert.deepEqual(types, ['task.created', 'status.changed', 'task.cancel_requested', 'status.changed', 'dispatch.attempt', 'dispatch.late_response']);
    const after = (await relay.api('GET', `/v1/tasks/${task.id}`)).body.task;
    assert.equal(after.status, 'cancelled');
    assert.equal(after.result, null);
  });

  test('a completed task cannot be cancelled: 409 problem, task unchanged', async () => {
    const task = await create(relay, { targetUrl: `${provider.url}/completes` });
    const done = await waitForStatus(relay, task.id, 'completed');
    assertProblem(await relay.api('POST', `/v1/tasks/${task.id}/cancel`), 409, 'conflict', /^Task is already completed$/);
    assert.deepEqual((await relay.api('GET', `/v1/tasks/${task.id}`)).body.task, done);
  });

  test('unknown and garbage ids', async () => {
    assertProblem(await relay.api('POST', `/v1/tasks/${UNKNOWN_ID}/cancel`), 404, 'not_found', /^Task not found$/);
    assertProblem(await relay.api('POST', '/v1/tasks/123/cancel'), 400, 'invalid_request', /^id: /);
  });
});

describe('authentication', () => {
  let taskId: string;
  before(async () => {
    taskId = (await create(relay, { delayUntil: FAR_FUTURE, metadata: { group: 'auth' } })).id;
  });

  test('no key or a wrong key → 401 problem on every task route, nothing written', async () => {
    const [{ n: before }] = await sql`select count(*)::int as n from tasks`;
    const calls: Array<[string, string, unknown?]> = [
      ['GET', '/v1/tasks'],
      ['POST', '/v1/tasks', { targetUrl: `${provider.url}/unauth` }],
      ['GET', `/v1/tasks/${taskId}`],
      ['GET', `/v1/tasks/${taskId}/events`],
      ['POST', `/v1/tasks/${taskId}/cancel`],
      ['POST', `/v1/tasks/${taskId}/redeliver`],
    ];
    const badHeaders: Array<Record<string, string>> = [
      {},
      { 'x-api-key': 'wrong-key' },
      { 'x-api-key': '' },
      { authorization: 'Bearer wrong-key' },
      { authorization: `Basic ${relay.apiKey}` },
      { authorization: relay.apiKey },
      { authorization: `Bearer ${relay.apiKey}x` },
    ];
    for (const headers of badHeaders) {
      for (const [method, path, body] of calls) {
        const answer = await apiRequest(relay.baseUrl, method, path, body, headers);
        assertProblem(answer, 401, 'unauthorized', /^Missing or invalid API key$/);
      }
    }
    const [{ n: afterCount }] = await sql`select count(*)::int as n from tasks`;
    assert.equal(afterCount, before);
    assert.equal((await relay.api('GET', `/v1/tasks/${taskId}`)).body.task.status, 'delayed');
  });

  test('without a key a create is 401 whatever its content type (not 415)', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
      const answer = await fetch(`${relay.baseUrl}/v1/tasks`, { method: 'POST', headers: { 'content-type': type }, body: JSON.stringify({ targetUrl: `${provider.url}/unauth` }) });
      assert.equal(answer.status, 401, type);
      assert.equal(((await answer.json()) as { code: string }).code, 'unauthorized');
    }
  });

  test('Authorization: Bearer <key> works like X-API-Key', async () => {
    for (const authorization of [`Bearer ${relay.apiKey}`, `bearer ${relay.apiKey}`]) {
      const answer = await apiRequest(relay.baseUrl, 'GET', `/v1/tasks/${taskId}`, undefined, { authorization });
      assert.equal(answer.status, 200);
      assert.equal(answer.body.task.id, taskId);
    }
    const created = await apiRequest(relay.baseUrl, 'POST', '/v1/tasks', { targetUrl: `${provider.url}/bearer`, delayUntil: FAR_FUTURE }, { authorization: `Bearer ${relay.apiKey}` });
    assert.equal(created.status, 201);
  });

  test('a revoked key is refused on its next request', async () => {
    const { id, key } = await createApiKey(relay.running.relay.db, relay.running.relay.hashes, 'default', 'to-revoke');
    assert.equal((await apiRequest(relay.baseUrl, 'GET', `/v1/tasks/${taskId}`, undefined, { 'x-api-key': key })).status, 200);
    await sql`update api_keys set revoked_at = now() where id = ${id}`;
    assertProblem(await apiRequest(relay.baseUrl, 'GET', `/v1/tasks/${taskId}`, undefined, { 'x-api-key': key }), 401, 'unauthorized', /API key/);
    assertProblem(await apiRequest(relay.baseUrl, 'GET', '/v1/tasks', undefined, { authorization: `Bearer ${key}` }), 401, 'unauthorized', /API key/);
    // The other keys of the project are unaffected.
    assert.equal((await relay.api('GET', `/v1/tasks/${taskId}`)).status, 200);
  });
});

describe('project isolation', () => {
  let otherKey: string;
  let finished: any;
  let delayedId: string;

  before(async () => {
    await sql`insert into projects (id, name, webhook_secret_sealed)
      values ('other', 'Other project', ${relay.running.relay.keyring.seal('whsec_b3RoZXItcHJvamVjdC1zZWNyZXQ=')})`;
    otherKey = (await createApiKey(relay.running.relay.db, relay.running.relay.hashes, 'other', 'other-key')).key;
    const task = await create(relay, { targetUrl: `${provider.url}/owned`, onCompleteUrl: receiver.url, metadata: { owner: 'default' } });
    await receiver.waitForDeliveries(task.id);
    // The delivery is recorded once the receiver's answer is back: wait for that write.
    finished = await waitUntil(async () => {
      const view = (await relay.api('GET', `/v1/tasks/${task.id}`)).body.task;
      return view.delivery?.status === 'delivered' ? view : undefined;
    }, 'the delivery to be recorded');
    delayedId = (await create(relay, { delayUntil: FAR_FUTURE, metadata: { owner: 'default' } })).id;
  });

  const asOther = (method: string, path: string, body?: unknown) => apiRequest(relay.baseUrl, method, path, body, { 'x-api-key': otherKey });

  test("another project's key cannot get, wait on, list, cancel, redeliver or read events of a task: 404", async () => {
    const eventsBefore = await eventTypes(relay, finished.id);
    for (const [method, path] of [
      ['GET', `/v1/tasks/${finished.id}`],
      ['GET', `/v1/tasks/${finished.id}?wait=1&seenStatus=completed`],
      ['GET', `/v1/tasks/${finished.id}/events`],
      ['POST', `/v1/tasks/${finished.id}/cancel`],
      ['POST', `/v1/tasks/${finished.id}/redeliver`],
      ['POST', `/v1/tasks/${delayedId}/cancel`],
      ['GET', `/v1/tasks/${delayedId}`],
    ]) {
      assertProblem(await asOther(method, path), 404, 'not_found', /^Task not found$/);
    }
    const listed = await asOther('GET', '/v1/tasks?limit=100');
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.body, { tasks: [], pagination: { limit: 100, hasMore: false, nextCursor: null } });
    assert.deepEqual((await asOther('GET', '/v1/tasks?metadata.owner=default&status=completed,delayed')).body.tasks, []);

    // The owner's tasks are untouched: no cancel, no redelivery.
    assert.deepEqual((await relay.api('GET', `/v1/tasks/${finished.id}`)).body.task, finished);
    assert.deepEqual(await eventTypes(relay, finished.id), eventsBefore);
    assert.equal((await relay.api('GET', `/v1/tasks/${delayedId}`)).body.task.status, 'delayed');
    // The same redeliver from the owner is accepted, so the 404 above was isolation, not a rule.
    assert.equal((await relay.api('POST', `/v1/tasks/${finished.id}/redeliver`)).status, 202);
  });

  test("a project's own tasks are invisible to the other project", async () => {
    const created = await asOther('POST', '/v1/tasks', { targetUrl: `${provider.url}/other`, delayUntil: FAR_FUTURE, metadata: { owner: 'other' } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const otherId = created.body.task.id;
    assert.deepEqual((await asOther('GET', '/v1/tasks')).body.tasks.map((t: any) => t.id), [otherId]);
    assert.equal((await asOther('GET', `/v1/tasks/${otherId}`)).status, 200);
    assertProblem(await relay.api('GET', `/v1/tasks/${otherId}`), 404, 'not_found', /^Task not found$/);
    assertProblem(await relay.api('POST', `/v1/tasks/${otherId}/cancel`), 404, 'not_found', /^Task not found$/);
    assert.deepEqual((await relay.api('GET', '/v1/tasks?metadata.owner=other')).body.tasks, []);
    const [row] = await sql`select project_id from tasks where id = ${otherId}`;
    assert.equal(row.project_id, 'other');
  });
});

describe('system endpoints', () => {
  test('healthz and readyz answer 200 without a key', async () => {
    const health = await apiRequest(relay.baseUrl, 'GET', '/healthz');
    assert.equal(health.status, 200);
    assert.deepEqual(health.body, { status: 'ok' });
    const ready = await apiRequest(relay.baseUrl, 'GET', '/readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body, { status: 'ready' });
  });

  test('openapi.json is OpenAPI 3.1 with the task, callback and signal paths and CreateTaskInput', async () => {
    const answer = await apiRequest(relay.baseUrl, 'GET', '/openapi.json');
    assert.equal(answer.status, 200);
    const doc = answer.body;
    assert.equal(doc.openapi, '3.1.0');
    for (const path of ['/v1/tasks', '/v1/tasks/{id}', '/v1/tasks/{id}/events', '/v1/tasks/{id}/cancel', '/v1/callbacks/{callbackId}', '/v1/signals/{token}']) {
      assert.ok(doc.paths[path], `missing ${path}`);
    }
    assert.ok(doc.paths['/v1/tasks'].post && doc.paths['/v1/tasks'].get);
    const input = doc.components.schemas.CreateTaskInput;
    assert.deepEqual(input.required, ['targetUrl']);
    assert.deepEqual(
      Object.keys(input.properties).sort(),
      ['body', 'callbackConfig', 'callbackSignature', 'delayUntil', 'headers', 'maxRetries', 'maxWaitTime', 'metadata', 'method', 'onCompleteUrl', 'pollConfig', 'priority', 'provider', 'retryBackoff', 'targetUrl', 'timeout', 'waitForSignal'],
    );
    assert.ok(doc.paths['/v1/providers'].get, 'the provider catalog is documented');
    assert.ok(doc.components.schemas.Provider, 'with its Provider schema');
    const callback = doc.paths['/v1/callbacks/{callbackId}'].post.responses;
    assert.deepEqual(Object.keys(callback).sort(), ['200', '202', '401', '404', '409', '413', '503']);
    // A token holder is answered the task's id and status, nothing more.
    assert.equal(callback['200'].content['application/json'].schema.$ref, '#/components/schemas/TaskStatusEnvelope');
    assert.deepEqual(Object.keys(doc.components.schemas.TaskStatusEnvelope.properties.task.properties).sort(), ['id', 'status']);
    assert.deepEqual(Object.keys(doc.components.schemas.TaskEventPage.properties).sort(), ['events', 'pagination']);
    assert.equal(input.properties.method.default, 'POST');
    assert.equal(input.properties.maxWaitTime.default, 600);
  });

  test('an unknown route is a 404 problem', async () => {
    assertProblem(await apiRequest(relay.baseUrl, 'GET', '/nope'), 404, 'not_found', /^No route for GET \/nope$/);
    assertProblem(await apiRequest(relay.baseUrl, 'POST', '/v2/tasks', {}), 404, 'not_found', /^No route for POST \/v2\/tasks$/);
    assertProblem(await relay.api('GET', `/v1/tasks/${UNKNOWN_ID}/nothing`), 404, 'not_found', /^No route for GET /);
  });
});
