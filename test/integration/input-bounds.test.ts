/**
 * Inputs refused at the door instead of failing later: a signal result nested past the task
 * body's bound, and task or poll headers that undici would refuse at dispatch (where the failure
 * looked like a network error and was retried).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import postgres from 'postgres';
import { HttpFake } from '../fakes/http-fake.ts';
import { type ApiAnswer, apiRequest, startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';

let relay: TestRelay;
let provider: HttpFake;
let sql: postgres.Sql;

before(async () => {
  relay = await startTestRelay();
  provider = await HttpFake.start(() => ({ status: 202, body: { accepted: true } }));
  sql = postgres(relay.database.url, { max: 2, onnotice: () => {} });
});
after(async () => {
  await sql.end({ timeout: 5 });
  await relay.stop();
  await provider.close();
});

function assertProblem(answer: ApiAnswer, status: number, detail: RegExp): void {
  assert.equal(answer.status, status, JSON.stringify(answer.body));
  assert.equal(answer.headers.get('content-type'), 'application/problem+json');
  assert.match(answer.body.detail, detail);
}

async function counts() {
  const [row] = await sql`select (select count(*)::int from tasks) as tasks, (select count(*)::int from task_events) as events`;
  return { ...row };
}

describe('signal result nesting', () => {
  test('a result nested 200,000 deep is a 400 (not a 500) and changes nothing; 64 levels are accepted', async () => {
    const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/jobs`, waitForSignal: true });
    await waitForStatus(relay, created.body.task.id, 'waiting');
    const token = created.body.signalToken;
    const before = await counts();
    for (const depth of [200_000, 65]) {
      const deep = `{"status":"completed","result":${'['.repeat(depth)}${']'.repeat(depth)}}`;
      const answer = await apiRequest(relay.baseUrl, 'POST', `/v1/signals/${token}`, deep);
      assertProblem(answer, 400, /^result: must not nest deeper than 64 levels/);
    }
    assert.deepEqual(await counts(), before);
    const ok = await apiRequest(relay.baseUrl, 'POST', `/v1/signals/${token}`, `{"status":"completed","result":${'['.repeat(63)}1${']'.repeat(63)}}`);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
  });
});

describe('headers undici would refuse', () => {
  // Each of these passed validation and failed every dispatch attempt inside undici (retried as a
  // network error): now a 400 at creation that writes nothing.
  const refused: Array<[string, Record<string, string>, RegExp]> = [
    ['Host', { Host: 'internal.example' }, /^headers\.Host: is set by the relay/],
    ['content-length', { 'content-length': '3' }, /^headers\.content-length: is set by the relay/],
    ['Transfer-Encoding', { 'Transfer-Encoding': 'chunked' }, /^headers\.Transfer-Encoding: is set by the relay/],
    ['keep-alive', { 'keep-alive': 'timeout=5' }, /^headers\.keep-alive: is set by the relay/],
    ['upgrade', { upgrade: 'websocket' }, /^headers\.upgrade: is set by the relay/],
    ['expect', { expect: '100-continue' }, /^headers\.expect: is set by the relay/],
    ['connection with a non-token', { connection: 'keep alive' }, /^headers\.connection: must be a comma-separated list of header names/],
    ['a vertical tab', { 'x-note': 'a\u000bb' }, /^headers\.x-note: must hold only visible ASCII, Latin-1, spaces and tabs/],
    ['DEL', { 'x-note': 'a\u007fb' }, /^headers\.x-note: must hold only/],
    ['non-Latin-1', { 'x-note': 'snow \u2603' }, /^headers\.x-note: must hold only/],
    ['an emoji', { 'x-note': '\u{1F600}' }, /^headers\.x-note: must hold only/],
  ];
  for (const [name, headers, detail] of refused) {
    test(`${name}: 400 at creation, nothing written`, async () => {
      const before = await counts();
      assertProblem(await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/never`, headers }), 400, detail);
      assert.deepEqual(await counts(), before);
    });
  }

  test('the same rules hold for pollConfig.headers', async () => {
    const pollConfig = { urlTemplate: '{startResult.body.status_url}', statusPath: 's', doneValues: ['d'] };
    for (const headers of [{ host: 'x' }, { accept: 'video/\u2603' }, { connection: 'a b' }]) {
      const answer = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/never`, pollConfig: { ...pollConfig, headers } });
      assertProblem(answer, 400, /^pollConfig\.headers\./);
    }
  });

  test('what undici sends is accepted and arrives as given: Latin-1 (C1 included), tabs, empty values', async () => {
    const created = await relay.api('POST', '/v1/tasks', {
      targetUrl: `${provider.url}/latin1`,
      headers: { 'x-city': 'Z\u00fcrich', 'x-tabbed': 'a\tb', connection: 'keep-alive', 'x-trace': '', 'x-c1': 'a\u0085b' },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const [sent] = await provider.waitForRequests(1, (r) => r.path === '/latin1');
    // Node's server reads header bytes as Latin-1, so ü arrives as the one byte 0xFC.
    assert.equal(sent.headers['x-city'], 'Z\u00fcrich');
    assert.equal(sent.headers['x-tabbed'], 'a\tb');
    assert.equal(sent.headers['x-trace'], '');
    assert.equal(sent.headers['x-c1'], 'a\u0085b');
  });
});
