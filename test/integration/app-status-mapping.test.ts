import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { ErrorCode } from '../../src/errors.ts';
import type { KeyCache } from '../../src/projects/key-cache.ts';
import { createTestApp, keysWithoutDatabase, keysWithSealedSecret, type TestApp } from '../helpers/app.ts';
import { addTenant, startTestRelay, type TestRelay, type TestTenant } from '../helpers/relay.ts';

// The map of route × outcome → HTTP answer (DESIGN §4, §5, §8): status, content type, and for
// errors the problem+json document and its code. Through createApp().request(): no listener,
// no client, no sleeps. What lies behind each outcome has its own black-box tests elsewhere;
// this file is the one place that shows every mapping side by side.

let relay: TestRelay;
let app: TestApp;
let other: TestTenant;
const closers: Array<() => Promise<void>> = [];

before(async () => {
  // API only: no worker, so the tasks made here stay where the rows put them (pending).
  relay = await startTestRelay({ env: { RELAY_ROLE: 'api' } });
  app = createTestApp(relay);
  other = await addTenant(relay, 'other_project');
});
after(async () => {
  for (const close of closers) await close();
  await relay.stop();
});

interface Send {
  body?: unknown;
  /** The API key; null sends none. Default: the relay's key. */
  key?: string | null;
  headers?: Record<string, string>;
  via?: TestApp;
}

function send(method: string, path: string, { body, key = relay.apiKey, headers = {}, via = app }: Send = {}): Promise<Response> {
  const all: Record<string, string> = { ...(key === null ? {} : { 'x-api-key': key }), ...headers };
  let payload: string | undefined;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    all['content-type'] ??= 'application/json';
  }
  return Promise.resolve(via.request(path, { method, headers: all, body: payload }));
}

// A task that waits for its callback; the target is never called (no worker).
const WAITING = { targetUrl: 'http://127.0.0.1:9/submit', waitForSignal: true };
const UNKNOWN_ID = '01900000-0000-7000-8000-000000000000';
const UNKNOWN_TOKEN = 'ab'.repeat(32);
const over = (bytes: number) => JSON.stringify({ ...WAITING, metadata: { pad: 'x'.repeat(bytes) } });

async function newTask(extra: Record<string, unknown> = {}): Promise<{ id: string; token: string }> {
  const res = await send('POST', '/v1/tasks', { body: { ...WAITING, ...extra } });
  assert.equal(res.status, 201, await res.clone().text());
  const body = (await res.json()) as { task: { id: string }; signalToken: string };
  return { id: body.task.id, token: body.signalToken };
}

async function finishedTask(extra: Record<string, unknown> = {}): Promise<{ id: string; token: string }> {
  const task = await newTask(extra);
  const res = await send('POST', `/v1/signals/${task.token}`, { key: null, body: { status: 'completed', result: 'done' } });
  assert.equal(res.status, 200, await res.text());
  return task;
}

async function cancelledTask(): Promise<{ id: string; token: string }> {
  const task = await newTask();
  assert.equal((await send('POST', `/v1/tasks/${task.id}/cancel`)).status, 200);
  return task;
}

/** Sends twice; answers the second (an idempotent replay, a limit that the first used up). */
async function second(first: () => Promise<Response>, then: () => Promise<Response>): Promise<Response> {
  const res = await first();
  assert.ok(res.status < 300, `first request answered ${res.status}: ${await res.text()}`);
  return then();
}

/** Key lookups that fail in a given way: what the app does with an exception it did not expect. */
const keysThat = (resolve: KeyCache['resolve']): KeyCache => ({ resolve, recentlyActive: () => false });

interface Row {
  outcome: string;
  send: () => Promise<Response>;
  status: number;
  /** Set for error answers: application/problem+json carrying this code. */
  code?: ErrorCode;
  /** Content type of a non-error answer (default application/json). */
  type?: RegExp;
  /** Headers the answer must carry (a RegExp matches the value). */
  headers?: Record<string, RegExp>;
  /** Further checks of the parsed body. */
  check?: (body: any) => void;
  /** A known gap: the row runs and reports, but does not fail the suite. */
  todo?: string;
}

async function expectAnswer(res: Response, row: Row): Promise<void> {
  const text = await res.text();
  assert.equal(res.status, row.status, `status ${res.status}: ${text.slice(0, 300)}`);
  for (const [name, value] of Object.entries(row.headers ?? {})) {
    assert.match(res.headers.get(name) ?? '(none)', value, `header ${name}`);
  }
  const contentType = res.headers.get('content-type') ?? '';
  if (!row.code) {
    assert.match(contentType, row.type ?? /^application\/json\b/);
    if (!row.type) row.check?.(JSON.parse(text));
    return;
  }
  assert.equal(contentType, 'application/problem+json');
  const problem = JSON.parse(text);
  assert.deepEqual(Object.keys(problem).sort(), ['code', 'detail', 'error', 'requestId', 'status', 'title', 'type']);
  assert.equal(problem.type, `urn:asyncrelay:problem:${row.code}`);
  assert.equal(problem.code, row.code);
  assert.equal(problem.status, row.status);
  assert.notEqual(problem.title, 'Error', `no title for ${row.status}`);
  assert.ok(problem.detail.length > 0);
  assert.equal(problem.error, problem.detail, "AsyncQueue's error string is the detail");
  assert.match(problem.requestId, /^[\w-]{16,}$/);
  assert.equal(problem.requestId, res.headers.get('x-request-id'));
  row.check?.(problem);
}

function route(name: string, rows: Row[]): void {
  describe(name, () => {
    for (const row of rows) {
      const title = `${row.outcome} → ${row.status}${row.code ? ` ${row.code}` : ''}`;
      test(title, { todo: row.todo }, async () => expectAnswer(await row.send(), row));
    }
  });
}

route('POST /v1/tasks', [
  {
    outcome: 'created',
    send: () => send('POST', '/v1/tasks', { body: WAITING }),
    status: 201,
    check: (body) => {
      assert.equal(body.task.status, 'pending');
      assert.match(body.signalToken, /^[0-9a-f]{64}$/);
    },
  },
  {
    outcome: 'Idempotency-Key replayed with the same body',
    send: () => {
      const create = () => send('POST', '/v1/tasks', { body: WAITING, headers: { 'idempotency-key': 'map-replay' } });
      return second(create, create);
    },
    status: 200,
    check: (body) => assert.match(body.signalToken, /^[0-9a-f]{64}$/),
  },
  {
    outcome: 'Idempotency-Key reused with another body',
    send: () =>
      second(
        () => send('POST', '/v1/tasks', { body: WAITING, headers: { 'idempotency-key': 'map-conflict' } }),
        () => send('POST', '/v1/tasks', { body: { ...WAITING, priority: 9 }, headers: { 'idempotency-key': 'map-conflict' } }),
      ),
    status: 422,
    code: 'idempotency_conflict',
  },
  { outcome: 'a field out of its rules', send: () => send('POST', '/v1/tasks', { body: { ...WAITING, maxRetries: 11 } }), status: 400, code: 'invalid_request', check: (p) => assert.match(p.detail, /^maxRetries: /) },
  { outcome: 'malformed JSON', send: () => send('POST', '/v1/tasks', { body: '{"targetUrl":' }), status: 400, code: 'invalid_request' },
  { outcome: 'no API key', send: () => send('POST', '/v1/tasks', { key: null, body: WAITING }), status: 401, code: 'unauthorized' },
  { outcome: 'an unknown API key', send: () => send('POST', '/v1/tasks', { key: `nope_${randomBytes(8).toString('hex')}`, body: WAITING }), status: 401, code: 'unauthorized' },
  {
    outcome: 'a body over 2 MiB',
    send: () => send('POST', '/v1/tasks', { body: over(2 * 1024 * 1024) }),
    status: 413,
    code: 'payload_too_large',
    headers: { connection: /^close$/ },
  },
  { outcome: 'not JSON', send: () => send('POST', '/v1/tasks', { body: 'targetUrl=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), status: 415, code: 'unsupported_media_type' },
  {
    outcome: "the key's create queue full",
    send: () => send('POST', '/v1/tasks', { body: WAITING, via: createTestApp(relay, { admission: { max: 0, maxPerKey: 0, maxWaitingPerKey: 0 } }) }),
    status: 429,
    code: 'rate_limited',
    headers: { 'retry-after': /^1$/ },
  },
  {
    outcome: 'every create queue full',
    send: () => send('POST', '/v1/tasks', { body: WAITING, via: createTestApp(relay, { admission: { max: 0, maxPerKey: 0, maxWaitingPerKey: 1, maxWaiting: 0 } }) }),
    status: 503,
    code: 'overloaded',
    headers: { 'retry-after': /^1$/ },
  },
  {
    outcome: "the key's request rate used up",
    send: () => {
      const via = createTestApp(relay, { limits: { ...relay.config.rateLimits, apiPerKey: 1 } });
      return second(() => send('POST', '/v1/tasks', { body: WAITING, via }), () => send('POST', '/v1/tasks', { body: WAITING, via }));
    },
    status: 429,
    code: 'rate_limited',
    headers: { 'retry-after': /^\d+$/, 'x-ratelimit-limit': /^1$/, 'x-ratelimit-remaining': /^0$/, 'x-request-id': /^[\w-]{16,}$/ },
  },
  {
    outcome: 'the database unreachable',
    send: async () => {
      const gone = await keysWithoutDatabase(relay);
      closers.push(gone.close);
      return send('POST', '/v1/tasks', { body: WAITING, via: createTestApp(relay, { keys: gone.keys }) });
    },
    status: 503,
    code: 'unavailable',
    headers: { 'retry-after': /^2$/ },
  },
  {
    outcome: 'the server secret sealed (an AppError "unavailable"): Retry-After, as DESIGN §8 asks of every 503',
    send: () => send('POST', '/v1/tasks', { body: WAITING, via: createTestApp(relay, { keys: keysWithSealedSecret(relay) }) }),
    status: 503,
    code: 'unavailable',
    headers: { 'retry-after': /^\d+$/ },
  },
  {
    outcome: 'no answer within the request budget',
    send: () => send('POST', '/v1/tasks', { body: WAITING, via: createTestApp(relay, { requestBudgetMs: 20, keys: keysThat(() => new Promise(() => {})) }) }),
    status: 503,
    code: 'unavailable',
    headers: { 'retry-after': /^2$/ },
  },
  {
    outcome: 'an unexpected exception',
    send: () => send('POST', '/v1/tasks', { body: WAITING, via: createTestApp(relay, { keys: keysThat(async () => { throw new Error('secret detail'); }) }) }),
    status: 500,
    code: 'internal',
    check: (p) => assert.doesNotMatch(p.detail, /secret detail/),
  },
]);

route('GET /v1/tasks/:id', [
  { outcome: 'own task', send: async () => send('GET', `/v1/tasks/${(await newTask()).id}`), status: 200, check: (body) => assert.equal(body.task.status, 'pending') },
  { outcome: 'no such task', send: () => send('GET', `/v1/tasks/${UNKNOWN_ID}`), status: 404, code: 'not_found' },
  { outcome: "another project's task", send: async () => send('GET', `/v1/tasks/${(await newTask()).id}`, { key: other.apiKey }), status: 404, code: 'not_found' },
  { outcome: 'an id that is not a UUID', send: () => send('GET', '/v1/tasks/42'), status: 400, code: 'invalid_request' },
  { outcome: 'wait over 25 s', send: () => send('GET', `/v1/tasks/${UNKNOWN_ID}?wait=26`), status: 400, code: 'invalid_request' },
  { outcome: 'no API key', send: () => send('GET', `/v1/tasks/${UNKNOWN_ID}`, { key: null }), status: 401, code: 'unauthorized' },
]);

route('GET /v1/tasks', [
  { outcome: 'a page', send: () => send('GET', '/v1/tasks?limit=2'), status: 200, check: (body) => assert.equal(body.pagination.limit, 2) },
  { outcome: 'a cursor that is not one', send: () => send('GET', '/v1/tasks?cursor=bm90LWEtY3Vyc29y'), status: 400, code: 'invalid_request' },
  { outcome: 'an unknown status', send: () => send('GET', '/v1/tasks?status=pending,done'), status: 400, code: 'invalid_request' },
  { outcome: 'limit 0', send: () => send('GET', '/v1/tasks?limit=0'), status: 400, code: 'invalid_request' },
]);

route('GET /v1/tasks/:id/events', [
  { outcome: 'own task', send: async () => send('GET', `/v1/tasks/${(await newTask()).id}/events`), status: 200, check: (body) => assert.equal(body.events[0].type, 'task.created') },
  { outcome: 'no such task', send: () => send('GET', `/v1/tasks/${UNKNOWN_ID}/events`), status: 404, code: 'not_found' },
  { outcome: 'after= not an event id', send: () => send('GET', `/v1/tasks/${UNKNOWN_ID}/events?after=abc`), status: 400, code: 'invalid_request' },
]);

route('POST /v1/tasks/:id/cancel', [
  { outcome: 'a pending task', send: async () => send('POST', `/v1/tasks/${(await newTask()).id}/cancel`), status: 200, check: (body) => assert.equal(body.task.status, 'cancelled') },
  { outcome: 'already cancelled', send: async () => send('POST', `/v1/tasks/${(await cancelledTask()).id}/cancel`), status: 409, code: 'conflict' },
  { outcome: 'already completed', send: async () => send('POST', `/v1/tasks/${(await finishedTask()).id}/cancel`), status: 409, code: 'conflict' },
  { outcome: 'no such task', send: () => send('POST', `/v1/tasks/${UNKNOWN_ID}/cancel`), status: 404, code: 'not_found' },
  { outcome: "another project's task", send: async () => send('POST', `/v1/tasks/${(await newTask()).id}/cancel`, { key: other.apiKey }), status: 404, code: 'not_found' },
]);

const HOOK = { onCompleteUrl: 'http://127.0.0.1:9/hook' };
route('POST /v1/tasks/:id/redeliver', [
  { outcome: 'a finished task with an onCompleteUrl', send: async () => send('POST', `/v1/tasks/${(await finishedTask(HOOK)).id}/redeliver`), status: 202, check: (body) => assert.equal(body.task.status, 'completed') },
  { outcome: 'not finished yet', send: async () => send('POST', `/v1/tasks/${(await newTask(HOOK)).id}/redeliver`), status: 409, code: 'conflict' },
  { outcome: 'no onCompleteUrl', send: async () => send('POST', `/v1/tasks/${(await finishedTask()).id}/redeliver`), status: 400, code: 'invalid_request' },
  { outcome: 'no such task', send: () => send('POST', `/v1/tasks/${UNKNOWN_ID}/redeliver`), status: 404, code: 'not_found' },
]);

const callback = (token: string, body: string, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
  send('POST', `/v1/callbacks/${token}`, { key: null, body, headers });
const SIGNED = { callbackSignature: { scheme: 'standard-webhooks', secret: `whsec_${randomBytes(24).toString('base64')}` } };
const CLASSIFIED = { callbackConfig: { statusPath: 'status', doneValues: ['done'] } };

route('POST /v1/callbacks/:callbackId', [
  { outcome: 'a result for a waiting task', send: async () => callback((await newTask()).token, '{"out":1}'), status: 200, check: (body) => assert.equal(body.task.status, 'completed') },
  {
    outcome: 'the accepted body again',
    send: async () => {
      const { token } = await newTask();
      return second(() => callback(token, '{"out":1}'), () => callback(token, '{"out":1}'));
    },
    status: 200,
  },
  {
    outcome: 'another body after the accepted one',
    send: async () => {
      const { token } = await newTask();
      return second(() => callback(token, '{"out":1}'), () => callback(token, '{"out":2}'));
    },
    status: 409,
    code: 'conflict',
  },
  { outcome: 'a result after cancel', send: async () => callback((await cancelledTask()).token, '{"out":1}'), status: 409, code: 'conflict' },
  { outcome: 'a progress event', send: async () => callback((await newTask(CLASSIFIED)).token, '{"status":"running"}'), status: 202, check: (body) => assert.equal(body.task.status, 'pending') },
  { outcome: 'unsigned, the task requires signatures', send: async () => callback((await newTask(SIGNED)).token, '{"out":1}'), status: 401, code: 'unauthorized' },
  { outcome: 'an unknown token', send: () => callback(UNKNOWN_TOKEN, '{}'), status: 404, code: 'not_found' },
  { outcome: 'not a token at all', send: () => callback('x', '{}'), status: 404, code: 'not_found' },
  { outcome: 'any content type', send: async () => callback((await newTask()).token, 'plain words', { 'content-type': 'text/plain' }), status: 200 },
  {
    outcome: 'a body over 1 MiB',
    send: async () => callback((await newTask()).token, 'x'.repeat(1024 * 1024 + 1), { 'content-type': 'text/plain' }),
    status: 413,
    code: 'payload_too_large',
    headers: { connection: /^close$/ },
  },
]);

const signal = (token: string, body: unknown, headers?: Record<string, string>) => send('POST', `/v1/signals/${token}`, { key: null, body, headers });

route('POST /v1/signals/:token', [
  { outcome: 'completed', send: async () => signal((await newTask()).token, { status: 'completed', result: { ok: true } }), status: 200, check: (body) => assert.equal(body.task.status, 'completed') },
  { outcome: 'failed', send: async () => signal((await newTask()).token, { status: 'failed', error: 'gave up' }), status: 200, check: (body) => assert.equal(body.task.status, 'failed') },
  { outcome: 'the task finished already', send: async () => signal((await finishedTask()).token, { status: 'completed' }), status: 409, code: 'conflict' },
  { outcome: 'an unknown token', send: () => signal(UNKNOWN_TOKEN, { status: 'completed' }), status: 404, code: 'not_found' },
  { outcome: 'the task requires signed callbacks', send: async () => signal((await newTask(SIGNED)).token, { status: 'completed' }), status: 401, code: 'unauthorized' },
  { outcome: 'a status that is not one', send: async () => signal((await newTask()).token, { status: 'done' }), status: 400, code: 'invalid_request' },
  { outcome: 'malformed JSON', send: async () => signal((await newTask()).token, '{"status":'), status: 400, code: 'invalid_request' },
  { outcome: 'not JSON', send: async () => signal((await newTask()).token, 'status=completed', { 'content-type': 'text/plain' }), status: 415, code: 'unsupported_media_type' },
  {
    outcome: 'a body over 1 MiB',
    send: async () => signal((await newTask()).token, { status: 'completed', result: 'x'.repeat(1024 * 1024) }),
    status: 413,
    code: 'payload_too_large',
  },
]);

route('system and documentation', [
  { outcome: 'GET /healthz', send: () => send('GET', '/healthz', { key: null }), status: 200, check: (body) => assert.deepEqual(body, { status: 'ok' }) },
  { outcome: 'GET /readyz, ready', send: () => send('GET', '/readyz', { key: null }), status: 200, check: (body) => assert.deepEqual(body, { status: 'ready' }) },
  {
    outcome: 'GET /readyz, not ready',
    send: () => send('GET', '/readyz', { key: null, via: createTestApp(relay, { readiness: { check: async () => false } }) }),
    status: 503,
    check: (body) => assert.deepEqual(body, { status: 'unavailable' }),
  },
  {
    outcome: 'GET /readyz, the probe throws',
    send: () => send('GET', '/readyz', { key: null, via: createTestApp(relay, { readiness: { check: async () => { throw new Error('probe'); } } }) }),
    status: 503,
  },
  { outcome: 'GET /openapi.json', send: () => send('GET', '/openapi.json', { key: null }), status: 200, check: (doc) => assert.equal(doc.openapi, '3.1.0') },
  { outcome: 'GET /docs', send: () => send('GET', '/docs', { key: null }), status: 200, type: /^text\/html\b/ },
  { outcome: 'GET /v1/providers, no key needed', send: () => send('GET', '/v1/providers', { key: null }), status: 200, check: (body) => assert.ok(body.providers.length > 0) },
  { outcome: 'an unknown path', send: () => send('GET', '/v2/tasks', { key: null }), status: 404, code: 'not_found' },
  { outcome: 'an unknown method on a task', send: () => send('DELETE', `/v1/tasks/${UNKNOWN_ID}`), status: 404, code: 'not_found' },
  { outcome: 'an unknown method on a task, without a key', send: () => send('DELETE', `/v1/tasks/${UNKNOWN_ID}`, { key: null }), status: 401, code: 'unauthorized' },
]);
