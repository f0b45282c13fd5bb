/**
 * Credentials in a target URL are judged on what the WHATWG URL parser (ours and undici's) makes
 * of it, not on how it is spelled: every spelling the parser accepts is either refused or stored
 * and shown redacted, while the provider (a loopback fake) still gets the real credential.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import postgres from 'postgres';
import { HttpFake, type RecordedRequest } from '../fakes/http-fake.ts';
import { startTestRelay, type TestRelay } from '../helpers/relay.ts';

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

const secret = () => `pw${randomBytes(10).toString('hex')}`;

/** Every row of the tables a task writes (its row, its timeline, its jobs), as text. */
async function storedText(taskId: string): Promise<string> {
  const rows = await sql`
    select t::text as row from tasks t where id = ${taskId}
    union all select e::text from task_events e where task_id = ${taskId}
    union all select j::text from pgboss.job j where data->>'taskId' = ${taskId}`;
  return rows.map((r) => r.row).join('\n');
}

/** Creates a task, waits for the request the provider receives, and checks view and rows. */
async function createAndInspect(targetUrl: string, path: string, hidden: string) {
  const created = await relay.api('POST', '/v1/tasks', { targetUrl, method: 'GET', maxRetries: 0 });
  assert.equal(created.status, 201, `${JSON.stringify(targetUrl)}: ${JSON.stringify(created.body)}`);
  const id: string = created.body.task.id;
  const [sent] = await provider.waitForRequests(1, (r) => r.path.startsWith(path));
  const view = (await relay.api('GET', `/v1/tasks/${id}`)).body.task;
  assert.equal(view.targetUrl, created.body.task.targetUrl);
  assert.ok(!JSON.stringify(view).includes(hidden), `${JSON.stringify(targetUrl)}: the view shows the credential: ${view.targetUrl}`);
  assert.ok(!(await storedText(id)).includes(hidden), `${JSON.stringify(targetUrl)}: the database holds the credential`);
  return { view, sent };
}

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('userinfo, however the URL spells it', () => {
  const spellings: Array<[string, (hostPort: string, pw: string, path: string) => string]> = [
    ['canonical', (h, pw, p) => `http://alice:${pw}@${h}${p}`],
    ['no slashes', (h, pw, p) => `http:alice:${pw}@${h}${p}`],
    ['backslashes', (h, pw, p) => `http:\\\\alice:${pw}@${h}${p}`],
    ['one slash', (h, pw, p) => `http:/alice:${pw}@${h}${p}`],
    ['three slashes', (h, pw, p) => `http:///alice:${pw}@${h}${p}`],
    ['a slash and a backslash', (h, pw, p) => `http:/\\alice:${pw}@${h}${p}`],
    ['leading space', (h, pw, p) => ` http://alice:${pw}@${h}${p}`],
    ['leading control character', (h, pw, p) => `\u0001http://alice:${pw}@${h}${p}`],
    ['tab inside the scheme', (h, pw, p) => `ht\ttp://alice:${pw}@${h}${p}`],
    ['newline inside the userinfo', (h, pw, p) => `http://al\nice:${pw}@${h}${p}`],
    ['upper-case scheme', (h, pw, p) => `HTTP://alice:${pw}@${h}${p}`],
  ];
  for (const [name, spell] of spellings) {
    test(`${name}: accepted, sent as Basic auth, redacted in the view and the database`, async () => {
      const pw = secret();
      const path = `/ui-${name.replaceAll(' ', '-')}`;
      const { view, sent } = await createAndInspect(spell(`127.0.0.1:${provider.port}`, pw, `${path}?model=m`), path, pw);
      assert.equal(sent.headers.authorization, basic('alice', pw));
      assert.equal(view.targetUrl, `http://[redacted]@127.0.0.1:${provider.port}${path}?model=m`);
    });
  }
});

describe('credential parameters', () => {
  const cases: Array<[string, (pw: string) => string, (pw: string) => string, (sent: RecordedRequest, pw: string) => void]> = [
    ['Azure SAS sig=', (pw) => `/sas?sv=2024-05-04&se=2030-01-01&sig=${pw}`, () => `/sas?sv=2024-05-04&se=2030-01-01&sig=[redacted]`, (s, pw) => assert.equal(s.url.searchParams.get('sig'), pw)],
    ['a ;token= parameter in the query', (pw) => `/semi?a=1;token=${pw}`, () => `/semi?a=1;token=[redacted]`, (s, pw) => assert.equal(s.url.search, `?a=1;token=${pw}`)],
    ['a ;token= matrix parameter in the path', (pw) => `/matrix;token=${pw}/run`, () => `/matrix;token=[redacted]/run`, (s, pw) => assert.equal(s.path, `/matrix;token=${pw}/run`)],
    ['a jsessionid matrix parameter', (pw) => `/jsess;jsessionid=${pw}`, () => `/jsess;jsessionid=[redacted]`, (s, pw) => assert.equal(s.path, `/jsess;jsessionid=${pw}`)],
    ['access_token in the fragment (never sent)', (pw) => `/frag?x=1#access_token=${pw}`, () => `/frag?x=1#access_token=[redacted]`, (s) => assert.equal(s.url.search, '?x=1')],
    ['a percent-encoded parameter name', (pw) => `/enc?%61pi_key=${pw}`, () => `/enc?%61pi_key=[redacted]`, (s, pw) => assert.equal(s.url.searchParams.get('api_key'), pw)],
    ['api_key behind a space-stripped, tab-split scheme', (pw) => `/tabq?api_key=${pw}`, () => `/tabq?api_key=[redacted]`, (s, pw) => assert.equal(s.url.searchParams.get('api_key'), pw)],
  ];
  for (const [name, spell, shown, check] of cases) {
    test(`${name}: sent as given, redacted in the view and the database`, async () => {
      const pw = secret();
      const prefix = name.startsWith('api_key behind') ? ` ht\ttp:127.0.0.1:${provider.port}` : `http://127.0.0.1:${provider.port}`;
      const path = new URL(`http://h${spell(pw)}`).pathname.split(';')[0];
      const { view, sent } = await createAndInspect(`${prefix}${spell(pw)}`, path, pw);
      check(sent, pw);
      assert.equal(view.targetUrl, `http://127.0.0.1:${provider.port}${shown(pw)}`);
    });
  }
});

test('the callback placeholder survives normalisation in the path and the query, and is substituted as before', async () => {
  const created = await relay.api('POST', '/v1/tasks', { targetUrl: ` http:127.0.0.1:${provider.port}/ph/{asyncqueue_callback_url}?hook={asyncqueue_callback_url}`, maxRetries: 0 });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(created.body.task.targetUrl, `http://127.0.0.1:${provider.port}/ph/{asyncqueue_callback_url}?hook={asyncqueue_callback_url}`);
  const [sent] = await provider.waitForRequests(1, (r) => r.path.startsWith('/ph/'));
  assert.equal(sent.url.searchParams.get('hook'), created.body.callbackUrl);
  assert.equal(sent.path, `/ph/${created.body.callbackUrl}`);
});

describe('pollConfig URL templates', () => {
  const templates: Array<[string, string]> = [
    ['userinfo without slashes', 'https:user:pw@api.example.com/v1/{startResult.body.id}'],
    ['userinfo behind backslashes', 'https:\\\\user:pw@api.example.com/v1/{startResult.body.id}'],
    ['userinfo behind one slash', 'https:/user:pw@api.example.com/v1/{startResult.body.id}'],
    ['userinfo behind a leading space', ' https://user:pw@api.example.com/v1/{startResult.body.id}'],
    ['userinfo behind a tab in the scheme', 'htt\tps://user:pw@api.example.com/v1/{startResult.body.id}'],
    ['userinfo after a leading reference', '{startResult.body.host}:pw@api.example.com/v1'],
    ['sig= after a leading reference', '{startResult.body.status_url}?sig=abc'],
    ['a ;token= parameter', 'https://api.example.com/v1/{startResult.body.id}?a=1;token=abc'],
    ['a ;token= matrix parameter', 'https://api.example.com/v1;token=abc/{startResult.body.id}'],
  ];
  for (const [name, urlTemplate] of templates) {
    test(`${name}: refused with 400, nothing written`, async () => {
      const [{ n: before }] = await sql`select count(*)::int as n from tasks`;
      const answer = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/never`, pollConfig: { urlTemplate, statusPath: 's', doneValues: ['d'] } });
      assert.equal(answer.status, 400, JSON.stringify(answer.body));
      assert.equal(answer.headers.get('content-type'), 'application/problem+json');
      assert.match(answer.body.detail, /^pollConfig\.urlTemplate: must not carry credentials/);
      const [{ n: afterwards }] = await sql`select count(*)::int as n from tasks`;
      assert.equal(afterwards, before);
    });
  }
});
