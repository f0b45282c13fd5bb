import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import postgres from 'postgres';
import { HttpFake } from '../fakes/http-fake.ts';
import { type ApiAnswer, startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';

let relay: TestRelay;
let provider: HttpFake;
let sql: postgres.Sql;

before(async () => {
  relay = await startTestRelay();
  provider = await HttpFake.start(() => ({ status: 200, body: { accepted: true } }));
  sql = postgres(relay.database.url, { max: 2, onnotice: () => {} });
});
after(async () => {
  await sql.end({ timeout: 5 });
  await relay.stop();
  await provider.close();
});

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const inOneHour = () => new Date(Date.now() + 3_600_000).toISOString();

function assertProblem(answer: ApiAnswer, status: number, detail: RegExp, code = 'invalid_request'): void {
  assert.equal(answer.status, status, JSON.stringify(answer.body));
  assert.equal(answer.headers.get('content-type'), 'application/problem+json');
  const p = answer.body;
  assert.deepEqual(Object.keys(p).sort(), ['code', 'detail', 'error', 'requestId', 'status', 'title', 'type']);
  assert.equal(p.status, status);
  assert.equal(p.code, code);
  assert.equal(p.type, `urn:asyncrelay:problem:${code}`);
  assert.equal(p.error, p.detail);
  assert.match(p.requestId, /^[0-9a-f-]{36}$/);
  assert.match(p.detail, detail);
}

/** Row counts that any write of POST /v1/tasks would change (other tasks' dispatches do not). */
async function footprint() {
  const [row] = await sql`select
    (select count(*)::int from tasks) as tasks,
    (select count(*)::int from task_events where type = 'task.created') as events,
    (select count(*)::int from pgboss.job where name = 'task.dispatch') as jobs`;
  return { ...row };
}

async function listedIds(query = ''): Promise<string[]> {
  const answer = await relay.api('GET', `/v1/tasks?limit=100${query}`);
  assert.equal(answer.status, 200);
  return answer.body.tasks.map((t: { id: string }) => t.id);
}

describe('POST /v1/tasks fields and defaults', () => {
  test('only targetUrl: every option takes its documented default', async () => {
    const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/defaults` });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.match(created.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(Object.keys(created.body), ['task'], 'no token for a task that does not wait');
    const { task } = created.body;
    assert.match(task.id, UUID_V7);
    assert.ok(Math.abs(Date.parse(task.createdAt) - Date.now()) < 10_000);
    assert.deepEqual(
      { ...task, id: undefined, createdAt: undefined, updatedAt: undefined },
      {
        id: undefined,
        status: 'pending',
        targetUrl: `${provider.url}/defaults`,
        method: 'POST',
        headers: {},
        body: null,
        waitForSignal: false,
        maxWaitTime: 600,
        timeout: 30,
        maxRetries: 3,
        retryBackoff: 'exponential',
        delayUntil: null,
        priority: 5,
        onCompleteUrl: null,
        provider: null,
        pollConfig: null,
        callbackConfig: null,
        callbackSignature: null,
        metadata: {},
        result: null,
        error: null,
        retryCount: 0,
        delivery: null,
        createdAt: undefined,
        startedAt: null,
        completedAt: null,
        updatedAt: undefined,
      },
    );
    const [sent] = await provider.waitForRequests(1, (r) => r.path === '/defaults');
    assert.equal(sent.method, 'POST');
    assert.equal(sent.text, '');
    await waitForStatus(relay, task.id, 'completed');
  });

  test('every option given explicitly is kept, at both ends of its range', async () => {
    const delayUntil = new Date(Date.now() + 3_600_000);
    const high = await relay.api('POST', '/v1/tasks', {
      targetUrl: `${provider.url}/explicit?x=1`,
      method: 'PUT',
      headers: { 'X-Trace': 't-1' },
      body: 'raw text',
      waitForSignal: true,
      maxWaitTime: 604_800,
      timeout: 600,
      maxRetries: 10,
      retryBackoff: 'linear',
      // An offset form is accepted and normalised to UTC.
      delayUntil: delayUntil.toISOString().replace('Z', '+00:00'),
      priority: 10,
      onCompleteUrl: 'https://hooks.example.com/done',
      metadata: { user: 'u1', run: '7' },
    });
    assert.equal(high.status, 201, JSON.stringify(high.body));
    const t = high.body.task;
    assert.equal(t.status, 'delayed');
    assert.equal(t.method, 'PUT');
    assert.deepEqual(t.headers, { 'X-Trace': 't-1' }, 'a string body gets no content-type added');
    assert.equal(t.body, 'raw text');
    assert.equal(t.waitForSignal, true);
    assert.deepEqual(
      [t.maxWaitTime, t.timeout, t.maxRetries, t.retryBackoff, t.priority],
      [604_800, 600, 10, 'linear', 10],
    );
    assert.equal(t.delayUntil, delayUntil.toISOString());
    assert.equal(t.onCompleteUrl, 'https://hooks.example.com/done');
    assert.deepEqual(t.metadata, { user: 'u1', run: '7' });

    const low = await relay.api('POST', '/v1/tasks', {
      targetUrl: `${provider.url}/explicit-low`,
      method: 'DELETE',
      maxWaitTime: 1,
      timeout: 1,
      maxRetries: 0,
      priority: 1,
      delayUntil: inOneHour(),
    });
    assert.equal(low.status, 201, JSON.stringify(low.body));
    assert.deepEqual(
      [low.body.task.method, low.body.task.maxWaitTime, low.body.task.timeout, low.body.task.maxRetries, low.body.task.priority],
      ['DELETE', 1, 1, 0, 1],
    );
    // What GET shows is what was stored, not an echo of the request.
    const { callbackId, ...stored } = t;
    assert.match(callbackId, /^[0-9a-f]{64}$/);
    const fetched = await relay.api('GET', `/v1/tasks/${t.id}`);
    assert.deepEqual(fetched.body.task, stored);
  });

  test('a delayUntil in the past does not delay the task', async () => {
    const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/past`, delayUntil: '2020-01-01T00:00:00Z' });
    assert.equal(created.status, 201);
    assert.equal(created.body.task.status, 'pending');
    assert.equal(created.body.task.delayUntil, '2020-01-01T00:00:00.000Z');
    await provider.waitForRequests(1, (r) => r.path === '/past');
  });
});

describe('POST /v1/tasks validation', () => {
  const target = 'http://127.0.0.1:9/t';
  const metadata17 = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']));
  const cases: Array<[string, unknown, RegExp, string?]> = [
    ['targetUrl missing', {}, /^targetUrl: /],
    ['targetUrl not a URL', { targetUrl: 'not a url' }, /^targetUrl: must be an absolute http\(s\) URL$/],
    ['targetUrl ftp:', { targetUrl: 'ftp://files.example.com/a' }, /^targetUrl: must be an absolute http\(s\) URL$/],
    ['targetUrl relative', { targetUrl: '/v1/run' }, /^targetUrl: must be an absolute http\(s\) URL$/],
    ['targetUrl javascript:', { targetUrl: 'javascript:alert(1)' }, /^targetUrl: /],
    ['onCompleteUrl ftp:', { targetUrl: target, onCompleteUrl: 'ftp://x/y' }, /^onCompleteUrl: /],
    ['method FETCH', { targetUrl: target, method: 'FETCH' }, /^method: /],
    ['method lower case', { targetUrl: target, method: 'post' }, /^method: /],
    ['maxWaitTime 0', { targetUrl: target, maxWaitTime: 0 }, /^maxWaitTime: /],
    ['maxWaitTime 604801', { targetUrl: target, maxWaitTime: 604_801 }, /^maxWaitTime: /],
    ['maxWaitTime 1.5', { targetUrl: target, maxWaitTime: 1.5 }, /^maxWaitTime: /],
    ['timeout 0', { targetUrl: target, timeout: 0 }, /^timeout: /],
    ['timeout 601', { targetUrl: target, timeout: 601 }, /^timeout: /],
    ['maxRetries 11', { targetUrl: target, maxRetries: 11 }, /^maxRetries: /],
    ['maxRetries -1', { targetUrl: target, maxRetries: -1 }, /^maxRetries: /],
    ['priority 0', { targetUrl: target, priority: 0 }, /^priority: /],
    ['priority 11', { targetUrl: target, priority: 11 }, /^priority: /],
    ['priority as string', { targetUrl: target, priority: '5' }, /^priority: /],
    ['retryBackoff fibonacci', { targetUrl: target, retryBackoff: 'fibonacci' }, /^retryBackoff: /],
    ['delayUntil not ISO', { targetUrl: target, delayUntil: 'tomorrow' }, /^delayUntil: /],
    ['delayUntil as epoch', { targetUrl: target, delayUntil: 1893456000 }, /^delayUntil: /],
    ['waitForSignal as string', { targetUrl: target, waitForSignal: 'yes' }, /^waitForSignal: /],
    ['metadata with 17 keys', { targetUrl: target, metadata: metadata17 }, /^metadata: at most 16 keys$/],
    ['metadata non-string value', { targetUrl: target, metadata: { n: 1 } }, /^metadata\.n: /],
    ['headers non-string value', { targetUrl: target, headers: { 'X-Count': 3 } }, /^headers\.X-Count: /],
    ['headers CRLF in value', { targetUrl: target, headers: { 'X-A': 'v\r\nX-Injected: 1' } }, /^headers\.X-A: must not contain CR, LF or NUL$/],
    ['headers LF in value', { targetUrl: target, headers: { 'X-A': 'v\nX-Injected: 1' } }, /^headers\.X-A: must not contain CR, LF or NUL$/],
    ['headers bad name', { targetUrl: target, headers: { 'Bad Name': 'v' } }, /^headers(\.Bad Name)?: /],
    // PostgreSQL refuses NUL and unpaired surrogates in text/jsonb: a 400 here, never a 500.
    ['targetUrl with NUL', { targetUrl: `${target}\u0000` }, /^targetUrl: /],
    ['onCompleteUrl with NUL', { targetUrl: target, onCompleteUrl: 'http://127.0.0.1:9/\u0000' }, /^onCompleteUrl: /],
    ['metadata value with NUL', { targetUrl: target, metadata: { k: 'a\u0000b' } }, /^metadata\.k: must not contain NUL/],
    ['metadata key with NUL', { targetUrl: target, metadata: { 'k\u0000': 'v' } }, /^metadata/],
    ['metadata unpaired surrogate', { targetUrl: target, metadata: { k: 'a\ud800b' } }, /^metadata\.k: must not contain NUL or unpaired surrogates$/],
    ['header unpaired surrogate', { targetUrl: target, headers: { 'X-A': '\udc00' } }, /^headers\.X-A: /],
    ['unknown field (strict)', { targetUrl: target, callbackURL: 'x' }, /Unrecognized key: "callbackURL"/],
    ['body is an array', [], /^\(body\): /],
    ['unknown provider', { targetUrl: target, provider: 'falx' }, /^Unknown provider "falx": known presets are fal, replicate, runwayml, luma, stability-video, elevenlabs-dubbing/],
    ['pollConfig without a status rule', { targetUrl: target, pollConfig: { urlTemplate: 'http://x/{startResult.body.id}' } }, /^pollConfig: needs statusPath with doneValues, or statusCodes$/],
    ['pollConfig without urlTemplate', { targetUrl: target, pollConfig: { statusPath: 'status', doneValues: ['done'] } }, /^pollConfig\.urlTemplate: required$/],
    ['pollConfig unknown template root', { targetUrl: target, pollConfig: { urlTemplate: 'http://x/{id.x}', statusPath: 's', doneValues: ['d'] } }, /^pollConfig\.urlTemplate: unknown template root "id"/],
    ['pollConfig pollResult in urlTemplate', { targetUrl: target, pollConfig: { urlTemplate: '{pollResult.body.url}', statusPath: 's', doneValues: ['d'] } }, /^pollConfig\.urlTemplate: urlTemplate cannot use \{pollResult/],
    ['pollConfig bad body ref', { targetUrl: target, pollConfig: { urlTemplate: '{startResult.bodyx}', statusPath: 's', doneValues: ['d'] } }, /^pollConfig\.urlTemplate: \{startResult\.bodyx\} must be/],
    ['pollConfig not a URL', { targetUrl: target, pollConfig: { urlTemplate: 'ftp://x/{startResult.body.id}', statusPath: 's', doneValues: ['d'] } }, /^pollConfig\.urlTemplate: must be an absolute http\(s\) URL/],
    ['pollConfig interval 0', { targetUrl: target, pollConfig: { urlTemplate: '{startResult.body.u}', statusPath: 's', doneValues: ['d'], interval: 0 } }, /^pollConfig\.interval: /],
    ['pollConfig empty doneValues', { targetUrl: target, pollConfig: { urlTemplate: '{startResult.body.u}', statusPath: 's', doneValues: [] } }, /^pollConfig\.doneValues: /],
    ['pollConfig bad statusPath', { targetUrl: target, pollConfig: { urlTemplate: '{startResult.body.u}', statusPath: 'a..b', doneValues: ['d'] } }, /^pollConfig\.statusPath: must be a dotted path/],
    ['pollConfig unknown key', { targetUrl: target, pollConfig: { urlTemplate: '{startResult.body.u}', statusPath: 's', doneValues: ['d'], every: 3 } }, /^pollConfig: Unrecognized key: "every"/],
    ['pollConfig credential header', { targetUrl: target, pollConfig: { urlTemplate: '{startResult.body.u}', statusPath: 's', doneValues: ['d'], headers: { Authorization: 'Bearer x' } } }, /^pollConfig\.headers: must not carry credentials/],
    ['pollConfig urlTemplate with userinfo', { targetUrl: target, pollConfig: { urlTemplate: 'https://user:pw@api.example.com/v1/{startResult.body.id}', statusPath: 's', doneValues: ['d'] } }, /^pollConfig\.urlTemplate: must not carry credentials/],
    ['pollConfig urlTemplate with ?api_key=', { targetUrl: target, pollConfig: { urlTemplate: '{startResult.body.status_url}?api_key=SECRET', statusPath: 's', doneValues: ['d'] } }, /^pollConfig\.urlTemplate: must not carry credentials/],
    ['pollConfig resultUrlTemplate with ?token=', { targetUrl: target, pollConfig: { urlTemplate: '{startResult.body.u}', statusPath: 's', doneValues: ['d'], resultUrlTemplate: 'https://api.example.com/r/{pollResult.body.id}?token=SECRET' } }, /^pollConfig\.resultUrlTemplate: must not carry credentials/],
    ['pollConfig cancelUrlTemplate with userinfo', { targetUrl: target, pollConfig: { urlTemplate: '{startResult.body.u}', statusPath: 's', doneValues: ['d'], cancelUrlTemplate: 'https://key@api.example.com/c/{startResult.body.id}' } }, /^pollConfig\.cancelUrlTemplate: must not carry credentials/],
    ['pollConfig maxDuration too long', { targetUrl: target, pollConfig: { urlTemplate: '{startResult.body.u}', statusCodes: { running: [202], done: [200] }, maxDuration: 604_801 } }, /^pollConfig\.maxDuration: /],
    ['callbackConfig on a task that never waits', { targetUrl: target, callbackConfig: { statusPath: 'status', doneValues: ['ok'] } }, /^callbackConfig\/callbackSignature need a task that waits/],
    ['callbackSignature with a bad secret', { targetUrl: target, waitForSignal: true, callbackSignature: { scheme: 'standard-webhooks', secret: 'nope' } }, /^callbackSignature\.secret: must be a whsec_/],
    ['callbackSignature unknown scheme', { targetUrl: target, waitForSignal: true, callbackSignature: { scheme: 'hmac' } }, /^callbackSignature/],
  ];

  for (const [name, body, detail, code] of cases) {
    test(`${name} → 400 naming it, nothing written`, async () => {
      const before = await footprint();
      const answer = await relay.api('POST', '/v1/tasks', body);
      assertProblem(answer, 400, detail, code);
      assert.deepEqual(await footprint(), before);
    });
  }

  test('malformed JSON and an empty body → 400, nothing written', async () => {
    const before = await footprint();
    const listed = await listedIds();
    assertProblem(await relay.api('POST', '/v1/tasks', '{"targetUrl": "http://127.0.0.1:9/t",'), 400, /^Malformed JSON in request body$/);
    assertProblem(await relay.api('POST', '/v1/tasks', ''), 400, /^Malformed JSON in request body$/);
    assert.deepEqual(await footprint(), before);
    assert.deepEqual(await listedIds(), listed);
  });
});

describe('POST /v1/tasks body and headers', () => {
  test('a JSON body is serialised and gets content-type: application/json; the provider receives it', async () => {
    const created = await relay.api('POST', '/v1/tasks', {
      targetUrl: `${provider.url}/json-body`,
      body: { prompt: 'a cat', n: 2, tags: ['x'], nested: { ok: true } },
    });
    assert.equal(created.status, 201);
    assert.equal(created.body.task.body, '{"prompt":"a cat","n":2,"tags":["x"],"nested":{"ok":true}}');
    assert.deepEqual(created.body.task.headers, { 'content-type': 'application/json' });
    const [sent] = await provider.waitForRequests(1, (r) => r.path === '/json-body');
    assert.equal(sent.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(sent.text), { prompt: 'a cat', n: 2, tags: ['x'], nested: { ok: true } });
  });

  test("a client's own Content-Type is kept, not doubled", async () => {
    const created = await relay.api('POST', '/v1/tasks', {
      targetUrl: `${provider.url}/own-type`,
      headers: { 'Content-Type': 'application/vnd.api+json' },
      body: { a: 1 },
    });
    assert.deepEqual(created.body.task.headers, { 'Content-Type': 'application/vnd.api+json' });
    const [sent] = await provider.waitForRequests(1, (r) => r.path === '/own-type');
    assert.equal(sent.headers['content-type'], 'application/vnd.api+json');
  });

  test('GET ignores the body', async () => {
    const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/get-body`, method: 'GET', body: { a: 1 } });
    assert.equal(created.body.task.body, null);
    const [sent] = await provider.waitForRequests(1, (r) => r.path === '/get-body');
    assert.equal(sent.method, 'GET');
    assert.equal(sent.text, '');
  });

  test('sensitive header values are redacted in every view while the provider gets the real ones', async () => {
    const secrets = {
      Authorization: 'Bearer sk-live-abc123',
      'x-api-key': 'anthropic-key-456',
      'x-goog-api-key': 'goog-789',
      Cookie: 'session=s3cr3t',
      'X-Auth-Token': 'tok-000',
    };
    const created = await relay.api('POST', '/v1/tasks', {
      targetUrl: `${provider.url}/secret-headers`,
      headers: { ...secrets, 'X-Trace': 'visible' },
    });
    assert.equal(created.status, 201);
    const redacted = {
      Authorization: '[redacted]',
      'x-api-key': '[redacted]',
      'x-goog-api-key': '[redacted]',
      Cookie: '[redacted]',
      'X-Auth-Token': '[redacted]',
      'X-Trace': 'visible',
    };
    assert.deepEqual(created.body.task.headers, redacted);
    const [sent] = await provider.waitForRequests(1, (r) => r.path === '/secret-headers');
    for (const [name, value] of Object.entries(secrets)) assert.equal(sent.headers[name.toLowerCase()], value, name);
    assert.equal(sent.headers['x-trace'], 'visible');

    const done = await waitForStatus(relay, created.body.task.id, 'completed');
    assert.deepEqual(done.headers, redacted);
    const list = await relay.api('GET', '/v1/tasks?limit=100');
    const text = JSON.stringify(list.body) + JSON.stringify(done);
    for (const value of Object.values(secrets)) assert.ok(!text.includes(value), `${value} leaked into a view`);
    const [row] = await sql`select t::text as text from tasks t where id = ${created.body.task.id}`;
    for (const value of Object.values(secrets)) assert.ok(!row.text.includes(value), `${value} stored in clear`);
  });
});

describe('callback token', () => {
  async function assertTokenHandledSafely(created: ApiAnswer): Promise<string> {
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const { task, callbackUrl, signalToken } = created.body;
    assert.match(signalToken, /^[0-9a-f]{64}$/);
    assert.equal(task.callbackId, signalToken);
    assert.equal(callbackUrl, `${relay.baseUrl}/v1/callbacks/${signalToken}`);

    const fetched = await relay.api('GET', `/v1/tasks/${task.id}`);
    assert.equal(fetched.body.task.callbackId, undefined);
    const list = await relay.api('GET', '/v1/tasks?limit=100');
    const events = await relay.api('GET', `/v1/tasks/${task.id}/events`);
    for (const view of [fetched.body, list.body, events.body]) assert.ok(!JSON.stringify(view).includes(signalToken));

    const [row] = await sql`select callback_hash from tasks where id = ${task.id}`;
    assert.equal(row.callback_hash, createHash('sha256').update(signalToken).digest('hex'));
    const clear = await sql`
      select 'tasks' as source from tasks t where t::text like ${`%${signalToken}%`}
      union all select 'task_events' from task_events e where e::text like ${`%${signalToken}%`}
      union all select 'pgboss.job' from pgboss.job j where j::text like ${`%${signalToken}%`}`;
    assert.deepEqual([...clear], [], 'the token is nowhere in the database in clear');
    return signalToken;
  }

  test('waitForSignal: true mints a token shown only in the create response, stored as SHA-256', async () => {
    const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/wait-signal`, waitForSignal: true });
    await assertTokenHandledSafely(created);
    await waitForStatus(relay, created.body.task.id, 'waiting');
  });

  test('the placeholder in the body, a header or the URL mints a token and is substituted only on the wire', async () => {
    const inBody = await relay.api('POST', '/v1/tasks', {
      targetUrl: `${provider.url}/ph-body`,
      body: { webhook: '{asyncqueue_callback_url}' },
    });
    const bodyToken = await assertTokenHandledSafely(inBody);
    assert.equal(inBody.body.task.body, '{"webhook":"{asyncqueue_callback_url}"}', 'the view keeps the template');
    const [sent] = await provider.waitForRequests(1, (r) => r.path === '/ph-body');
    assert.equal(JSON.parse(sent.text).webhook, `${relay.baseUrl}/v1/callbacks/${bodyToken}`);

    const inHeader = await relay.api('POST', '/v1/tasks', {
      targetUrl: `${provider.url}/ph-header`,
      headers: { 'X-Callback': '{asyncqueue_callback_url}' },
    });
    const headerToken = await assertTokenHandledSafely(inHeader);
    assert.deepEqual(inHeader.body.task.headers, { 'X-Callback': '{asyncqueue_callback_url}' });
    const [sentH] = await provider.waitForRequests(1, (r) => r.path === '/ph-header');
    assert.equal(sentH.headers['x-callback'], `${relay.baseUrl}/v1/callbacks/${headerToken}`);

    const inUrl = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/ph-url?hook={asyncqueue_callback_url}` });
    const urlToken = await assertTokenHandledSafely(inUrl);
    assert.equal(inUrl.body.task.targetUrl, `${provider.url}/ph-url?hook={asyncqueue_callback_url}`);
    const [sentU] = await provider.waitForRequests(1, (r) => r.path === '/ph-url');
    assert.equal(sentU.url.search, `?hook=${encodeURIComponent(`${relay.baseUrl}/v1/callbacks/${urlToken}`)}`);
  });

  test('no waitForSignal and no placeholder: no token anywhere', async () => {
    const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/no-token`, body: 'plain' });
    assert.equal(created.status, 201);
    assert.deepEqual(Object.keys(created.body), ['task']);
    assert.equal(created.body.task.callbackId, undefined);
    const [row] = await sql`select callback_hash from tasks where id = ${created.body.task.id}`;
    assert.equal(row.callback_hash, null);
    await waitForStatus(relay, created.body.task.id, 'completed');
  });
});

describe('Idempotency-Key', () => {
  const body = (tag: string) => ({ targetUrl: `${provider.url}/idem`, delayUntil: '2099-01-01T00:00:00Z', metadata: { case: tag } });

  test('same key and body → 200 with the same task; only one task exists', async () => {
    const first = await relay.api('POST', '/v1/tasks', body('idem-same'), { 'idempotency-key': 'key-same' });
    assert.equal(first.status, 201);
    const again = await relay.api('POST', '/v1/tasks', body('idem-same'), { 'idempotency-key': 'key-same' });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.task.id, first.body.task.id);
    assert.deepEqual(again.body.task, first.body.task);
    assert.deepEqual(await listedIds('&metadata.case=idem-same'), [first.body.task.id]);
    const [{ n }] = await sql`select count(*)::int as n from tasks where idempotency_key = 'key-same'`;
    assert.equal(n, 1);
    // Without the key the same body is a new task.
    const fresh = await relay.api('POST', '/v1/tasks', body('idem-same'));
    assert.equal(fresh.status, 201);
    assert.notEqual(fresh.body.task.id, first.body.task.id);
  });

  test('same key, different body → 422 problem, nothing written', async () => {
    const first = await relay.api('POST', '/v1/tasks', body('idem-diff'), { 'idempotency-key': 'key-diff' });
    assert.equal(first.status, 201);
    const before = await footprint();
    const other = await relay.api('POST', '/v1/tasks', { ...body('idem-diff'), priority: 9 }, { 'idempotency-key': 'key-diff' });
    assertProblem(other, 422, /Idempotency-Key/, 'idempotency_conflict');
    assert.deepEqual(await footprint(), before);
    assert.deepEqual(await listedIds('&metadata.case=idem-diff'), [first.body.task.id]);
  });

  test('a key longer than 255 characters is a 400 problem, nothing written', async () => {
    const before = await footprint();
    assertProblem(await relay.api('POST', '/v1/tasks', body('idem-long'), { 'idempotency-key': 'k'.repeat(256) }), 400, /^idempotency-key: /);
    assert.deepEqual(await footprint(), before);
  });

  test('10 concurrent POSTs with one key create exactly one task and all answer with its id', async () => {
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => relay.api('POST', '/v1/tasks', body('idem-race'), { 'idempotency-key': 'key-race' })),
    );
    const statuses = answers.map((a) => a.status).sort();
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 200, 200, 200, 201], JSON.stringify(answers.map((a) => a.body)));
    const ids = new Set(answers.map((a) => a.body.task.id));
    assert.equal(ids.size, 1);
    const [id] = ids;
    assert.deepEqual(await listedIds('&metadata.case=idem-race'), [id]);
    const [counts] = await sql`select
      (select count(*)::int from tasks where idempotency_key = 'key-race') as tasks,
      (select count(*)::int from task_events where task_id = ${id} and type = 'task.created') as created,
      (select count(*)::int from pgboss.job where name = 'task.dispatch' and data->>'taskId' = ${id}) as jobs`;
    assert.deepEqual({ ...counts }, { tasks: 1, created: 1, jobs: 1 });
  });
});
