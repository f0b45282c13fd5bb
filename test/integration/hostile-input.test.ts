/**
 * Hostile input, property-based (fast-check): random and malformed bodies, content types,
 * headers and paths at POST /v1/tasks, the callback and the signal endpoints. Every answer must
 * be a 4xx problem+json — never a 5xx, never a success — and no task, event or job may appear.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import postgres from 'postgres';
import { startTestRelay, type TestRelay } from '../helpers/relay.ts';

let relay: TestRelay;
let sql: postgres.Sql;

before(async () => {
  // The ceiling would answer 429 to most of this file (one address): off, to see the real answers.
  relay = await startTestRelay({ env: { RELAY_CALLBACK_IP_CEILING: '0' } });
  sql = postgres(relay.database.url, { max: 1, onnotice: () => {} });
});
after(async () => {
  await sql.end();
  await relay.stop();
});

interface Attempt {
  method: string;
  path: string;
  body?: string | Uint8Array;
  headers: Record<string, string>;
}

async function send(a: Attempt): Promise<{ status: number; text: string; contentType: string | null }> {
  const res = await fetch(`${relay.baseUrl}${a.path}`, { method: a.method, headers: a.headers, body: a.body as RequestInit['body'] });
  return { status: res.status, text: await res.text(), contentType: res.headers.get('content-type') };
}

/** The property: a 4xx with a complete problem document. */
async function assertRefused(a: Attempt): Promise<void> {
  const answer = await send(a);
  const what = `${a.method} ${a.path.slice(0, 120)} [${a.headers['content-type']}] → ${answer.status} ${answer.text.slice(0, 200)}`;
  assert.ok(answer.status >= 400 && answer.status < 500, what);
  assert.equal(answer.contentType, 'application/problem+json', what);
  const problem = JSON.parse(answer.text);
  assert.equal(problem.status, answer.status, what);
  for (const field of ['type', 'title', 'detail', 'code', 'error', 'requestId']) assert.equal(typeof problem[field], 'string', `${what}: ${field}`);
}

const VALID = { targetUrl: 'http://127.0.0.1:9/never', headers: { authorization: 'Bearer x' }, metadata: { a: 'b' } };

/** Assignments each of which makes a task invalid. */
const corruption = fc.oneof(
  fc.constantFrom<Record<string, unknown>>(
    { targetUrl: 'ftp://127.0.0.1/x' }, { targetUrl: 'javascript:alert(1)' }, { targetUrl: '/relative' }, { targetUrl: 'http://' },
    { targetUrl: `http://127.0.0.1/${'a'.repeat(9000)}` }, { targetUrl: 'http://127.0.0.1/\u0000' }, { targetUrl: 42 }, { targetUrl: null },
    { method: 'TRACE' }, { method: 'get' }, { headers: { 'x-a': 'a\r\nx-b: b' } }, { headers: { 'bad name': 'v' } }, { headers: { 'x-nul': '\u0000' } },
    { headers: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`x-h${i}`, 'v'])) }, { headers: { 'x-big': 'v'.repeat(16_385) } },
    { headers: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`x-h${i}`, 'v'.repeat(1000)])) },
    { headers: 'authorization: x' }, { metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) },
    { metadata: { ['k'.repeat(65)]: 'v' } }, { metadata: { k: 'v'.repeat(513) } }, { metadata: { '': 'v' } }, { metadata: { k: 1 } },
    { metadata: { 'k\u0000': 'v' } }, { metadata: { k: '\ud800' } }, { maxRetries: 11 }, { maxRetries: -1 }, { maxRetries: 1.5 }, { maxRetries: '3' },
    { timeout: 0 }, { timeout: 601 }, { maxWaitTime: 604_801 }, { priority: 0 }, { retryBackoff: 'random' }, { delayUntil: 'tomorrow' },
    { waitForSignal: 'yes' }, { onCompleteUrl: 'file:///etc/passwd' }, { provider: 'nope' }, { pollConfig: { urlTemplate: 'x'.repeat(70_000) } },
    { pollConfig: [] }, { body: deepJson(200) }, { surprise: true }, { constructor: { prototype: { x: 1 } } },
  ),
  fc.record({ [`x${Math.random().toString(36).slice(2, 6)}`]: fc.jsonValue() }),
);

function deepJson(depth: number): unknown {
  let value: unknown = 'leaf';
  for (let i = 0; i < depth; i++) value = i % 2 ? [value] : { v: value };
  return value;
}

const taskBody = fc.oneof(
  fc.array(corruption, { minLength: 1, maxLength: 3 }).map((parts) => JSON.stringify(Object.assign({ ...VALID }, ...parts))),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.string().map((s) => JSON.stringify({ ...VALID }).slice(0, s.length % 60)),
  fc.uint8Array({ maxLength: 512 }),
  fc.string({ maxLength: 200 }),
  fc.integer({ min: 1_000, max: 100_000 }).map((n) => `{"targetUrl":"http://127.0.0.1:9/","body":${'['.repeat(n)}${']'.repeat(n)}}`),
  fc.constant(JSON.stringify({ ...VALID, body: 'x'.repeat(2 * 1024 * 1024) })),
  // Written as text: an object literal's `__proto__` sets a prototype, so Object.assign and
  // JSON.stringify above would drop it and send a valid task.
  fc.constant(`{"__proto__":{"polluted":true},${JSON.stringify(VALID).slice(1)}`),
);

const headerSafe = fc.string({ unit: fc.constantFrom(...'abcXYZ019-_.:;/=, \t"\'{}[]'.split('')), maxLength: 300 });
const contentType = fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x', 'application/json; charset=utf-16', 'application/jsonx', '*/*', 'application/xml');

test('POST /v1/tasks: malformed bodies, content types and headers are 4xx problems and write nothing', async () => {
  await fc.assert(
    fc.asyncProperty(taskBody, fc.option(contentType), fc.option(headerSafe), fc.boolean(), async (body, type, idem, authed) => {
      const headers: Record<string, string> = {};
      if (type !== null) headers['content-type'] = type;
      if (idem !== null) headers['idempotency-key'] = idem;
      if (authed) headers['x-api-key'] = relay.apiKey;
      await assertRefused({ method: 'POST', path: '/v1/tasks', body, headers });
    }),
    { numRuns: 250 },
  );
  // A `__proto__` key is an unknown key like any other, not a prototype.
  await assertRefused({
    method: 'POST',
    path: '/v1/tasks',
    body: `{"__proto__":{"polluted":true},${JSON.stringify(VALID).slice(1)}`,
    headers: { 'content-type': 'application/json', 'x-api-key': relay.apiKey },
  });
  // A valid task, but not declared as JSON: 415.
  for (const type of ['text/plain', 'application/x-www-form-urlencoded', undefined]) {
    const headers: Record<string, string> = { 'x-api-key': relay.apiKey, ...(type ? { 'content-type': type } : {}) };
    const answer = await send({ method: 'POST', path: '/v1/tasks', body: JSON.stringify(VALID), headers });
    assert.equal(answer.status, 415, `${type}: ${answer.text}`);
  }
});

const segment = fc.oneof(
  fc.string({ maxLength: 100 }),
  fc.stringMatching(/^[0-9a-f]{64}$/),
  fc.stringMatching(/^[0-9a-fA-F]{60,70}$/),
  fc.constantFrom('..%2f..%2fetc', '%00', '%ff%fe', 'a'.repeat(5000), '%E0%A4%A', '{asyncqueue_callback_url}', 'null'),
).filter((s) => !['', '.', '..'].includes(s));
const anyBody = fc.oneof(fc.uint8Array({ maxLength: 2048 }), fc.jsonValue().map((v) => JSON.stringify(v)), fc.string({ maxLength: 500 }),
  fc.constant(new Uint8Array(1024 * 1024 + 1)));
const encode = (s: string) => (/%[0-9a-fA-F]{2}|%E0/.test(s) ? s : encodeURIComponent(s));

test('callbacks and signals: random tokens, bodies and content types are 4xx problems and write nothing', async () => {
  await fc.assert(
    fc.asyncProperty(fc.constantFrom('callbacks', 'signals'), segment, anyBody, fc.option(contentType), fc.option(headerSafe),
      async (endpoint, token, body, type, forwarded) => {
        const headers: Record<string, string> = {};
        if (type !== null) headers['content-type'] = type;
        if (forwarded !== null) headers['x-forwarded-for'] = forwarded;
        await assertRefused({ method: 'POST', path: `/v1/${endpoint}/${encode(token)}`, body, headers });
      }),
    { numRuns: 250 },
  );
});

test('random methods and paths under /v1 are 4xx problems', async () => {
  await fc.assert(
    fc.asyncProperty(fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE'), fc.constantFrom('tasks/', 'callbacks/', 'signals/', ''), segment,
      fc.constantFrom('', '/cancel', '/events', '/redeliver', '/x/y', '?wait=99', '?wait=-1', '?limit=0&cursor=%00'), fc.boolean(),
      async (method, prefix, seg, suffix, authed) => {
        const headers: Record<string, string> = authed ? { 'x-api-key': relay.apiKey } : {};
        await assertRefused({ method, path: `/v1/${prefix}${encode(seg)}${suffix}`, headers, body: method === 'GET' ? undefined : '{}' });
      }),
    { numRuns: 200 },
  );
});

test('nothing was written: no task, no event, no job', async () => {
  const [counts] = await sql`select
    (select count(*)::int from tasks) as tasks,
    (select count(*)::int from task_events) as events,
    (select count(*)::int from pgboss.job where name = 'task.dispatch') as dispatch_jobs,
    (select count(*)::int from pgboss.job where name = 'task.notify') as notify_jobs`;
  // Callbacks with unknown (even well-formed 64-hex) tokens write nothing either: the statement
  // keeps only the onComplete jobs of callbacks it accepted (consume-callback.ts).
  assert.deepEqual({ ...counts }, { tasks: 0, events: 0, dispatch_jobs: 0, notify_jobs: 0 });
});
