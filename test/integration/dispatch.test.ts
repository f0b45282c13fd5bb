/**
 * Dispatch of a task to its target (DESIGN §4): placeholder substitution, the request as sent,
 * the stored result of a task that does not wait, delayUntil, priority and the waiting deadline.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type FakeReply, HttpFake, type RecordedRequest } from '../fakes/http-fake.ts';
import { startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';

let relay: TestRelay;
let target: HttpFake;

before(async () => {
  relay = await startTestRelay();
  target = await HttpFake.start((req): FakeReply => {
    if (req.path === '/binary') return { status: 200, headers: { 'content-type': 'image/png' }, body: BINARY };
    if (req.path === '/json') return { status: 201, headers: { 'x-request-id': 'r-7' }, body: { id: 'gen_1', n: [1, 2] } };
    return { status: 200, headers: { 'content-type': 'text/plain' }, body: `ok ${req.method}` };
  });
});
after(async () => {
  await relay.stop();
  await target.close();
});

/** Not valid UTF-8 (0xff, 0xfe, a lone continuation byte), with a NUL: must come back byte for byte. */
const BINARY = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0xff, 0xfe, 0x80, 0x0d, 0x0a, 0x1a, 0x0a]);

async function create(input: Record<string, unknown>) {
  const created = await relay.api('POST', '/v1/tasks', input);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return created.body as { task: any; callbackUrl?: string; signalToken?: string };
}

/** The one request the target received for this test (each test uses its own path marker). */
async function arrival(marker: string): Promise<RecordedRequest> {
  const [req] = await target.waitForRequests(1, (r) => r.url.search.includes(marker) || r.path.includes(marker));
  return req;
}

async function timeline(taskId: string): Promise<Array<{ type: string; data: any; at: string }>> {
  const answer = await relay.api('GET', `/v1/tasks/${taskId}/events`);
  assert.equal(answer.status, 200);
  return answer.body.events;
}

test('the placeholder in the query arrives URL-encoded and decodes to the callback URL', async () => {
  const { task, callbackUrl } = await create({
    targetUrl: `${target.url}/submit/q1?fal_webhook={asyncqueue_callback_url}&model=flux`,
    body: { prompt: 'a cat' },
  });
  assert.ok(callbackUrl);
  const req = await arrival('/submit/q1');
  // Encoded in the raw query: its own "://" and "/" must not corrupt the provider's URL.
  assert.ok(req.url.search.includes(`fal_webhook=${encodeURIComponent(callbackUrl)}&model=flux`), req.url.search);
  assert.equal(req.url.searchParams.get('fal_webhook'), callbackUrl);
  assert.equal(req.url.searchParams.get('model'), 'flux');
  // The view keeps the template; the token never appears in it.
  assert.equal(task.targetUrl, `${target.url}/submit/q1?fal_webhook={asyncqueue_callback_url}&model=flux`);
  await waitForStatus(relay, task.id, 'waiting');
});

test('the placeholder in a header value and in a JSON body is substituted verbatim', async () => {
  const { task, callbackUrl, signalToken } = await create({
    targetUrl: `${target.url}/submit/h1`,
    headers: { 'X-Webhook-Url': 'cb={asyncqueue_callback_url};v=1', Authorization: 'Key secret-1' },
    body: { webhook: '{asyncqueue_callback_url}', input: { text: 'hi "there"' }, list: ['{asyncqueue_callback_url}'] },
  });
  const req = await arrival('/submit/h1');
  assert.equal(req.headers['x-webhook-url'], `cb=${callbackUrl};v=1`);
  assert.equal(req.headers.authorization, 'Key secret-1');
  assert.equal(req.headers['content-type'], 'application/json');
  assert.deepEqual(JSON.parse(req.text), { webhook: callbackUrl, input: { text: 'hi "there"' }, list: [callbackUrl] });
  // The create answer shows the token once (callbackId); the stored view shows templates only.
  assert.equal(task.callbackId, signalToken);
  const view = (await relay.api('GET', `/v1/tasks/${task.id}`)).body.task;
  assert.equal(view.headers.Authorization, '[redacted]');
  assert.equal(view.headers['X-Webhook-Url'], 'cb={asyncqueue_callback_url};v=1');
  assert.equal(view.body, '{"webhook":"{asyncqueue_callback_url}","input":{"text":"hi \\"there\\""},"list":["{asyncqueue_callback_url}"]}');
  assert.ok(!JSON.stringify(view).includes(signalToken!), 'the token leaks into the task view');
});

test('a string body with the placeholder is sent verbatim, with method and headers exactly as given', async () => {
  const body = 'callback={asyncqueue_callback_url}&text=caf%C3%A9 ünïcode\n{"keep":"as is"}';
  const { callbackUrl } = await create({
    targetUrl: `${target.url}/submit/s1`,
    method: 'PUT',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Trace': 'abc  def', 'X-Empty': '' },
    body,
  });
  const req = await arrival('/submit/s1');
  assert.equal(req.method, 'PUT');
  assert.equal(req.text, body.replace('{asyncqueue_callback_url}', callbackUrl!));
  assert.equal(req.headers['content-type'], 'application/x-www-form-urlencoded');
  assert.equal(req.headers['x-trace'], 'abc  def');
  assert.equal(req.headers['x-empty'], '');
});

test('PATCH and DELETE carry their method and body; GET ignores the body', async () => {
  const patch = await create({ targetUrl: `${target.url}/m/patch`, method: 'PATCH', body: 'p-body' });
  const del = await create({ targetUrl: `${target.url}/m/delete`, method: 'DELETE', body: { d: 1 } });
  const get = await create({ targetUrl: `${target.url}/m/get?x=1`, method: 'GET', body: { ignored: true }, headers: { 'X-A': 'b' } });
  const [p, d, g] = await Promise.all([arrival('/m/patch'), arrival('/m/delete'), arrival('/m/get')]);
  assert.equal(p.method, 'PATCH');
  assert.equal(p.text, 'p-body');
  assert.equal(d.method, 'DELETE');
  assert.equal(d.text, '{"d":1}');
  assert.equal(g.method, 'GET');
  assert.equal(g.text, '');
  assert.equal(g.headers['content-length'], undefined);
  assert.equal(g.headers['x-a'], 'b');
  assert.equal(get.task.body, null);
  const done = await Promise.all([patch, del, get].map((c) => waitForStatus(relay, c.task.id, 'completed')));
  assert.deepEqual(done.map((t) => t.result.body), ['ok PATCH', 'ok DELETE', 'ok GET']);
});

test('a task that does not wait completes with the target answer as its result', async () => {
  const { task, callbackUrl, signalToken } = await create({ targetUrl: `${target.url}/json?r=plain`, body: 'x' });
  assert.equal(callbackUrl, undefined);
  assert.equal(signalToken, undefined);
  const done = await waitForStatus(relay, task.id, 'completed');
  assert.equal(done.result.statusCode, 201);
  // JSON is stored as the string the target sent, not parsed.
  assert.equal(typeof done.result.body, 'string');
  assert.equal(done.result.body, '{"id":"gen_1","n":[1,2]}');
  assert.equal(done.result.headers['content-type'], 'application/json');
  assert.equal(done.result.headers['x-request-id'], 'r-7');
  assert.equal(done.result.bodyEncoding, undefined);
  assert.equal(typeof done.result.duration, 'number');
  assert.ok(done.result.duration >= 0);
  assert.equal(done.error, null);
  assert.equal(done.retryCount, 0);
  assert.ok(done.startedAt && done.completedAt);
  assert.ok(Date.parse(done.completedAt) >= Date.parse(done.startedAt));
  const types = (await timeline(task.id)).map((e) => e.type);
  assert.deepEqual(types, ['task.created', 'status.changed', 'dispatch.attempt', 'status.changed']);
});

test('a binary answer is stored as base64 and decodes back to the exact bytes', async () => {
  const { task } = await create({ targetUrl: `${target.url}/binary`, method: 'GET' });
  const done = await waitForStatus(relay, task.id, 'completed');
  assert.equal(done.result.bodyEncoding, 'base64');
  assert.equal(done.result.headers['content-type'], 'image/png');
  assert.deepEqual(Buffer.from(done.result.body, 'base64'), BINARY);
});

test('delayUntil: the task is delayed and the target sees nothing before that instant', async () => {
  const delayUntil = new Date(Date.now() + 1500);
  const { task } = await create({ targetUrl: `${target.url}/delayed/d1`, delayUntil: delayUntil.toISOString() });
  assert.equal(task.status, 'delayed');
  assert.equal(task.delayUntil, delayUntil.toISOString());
  const fetched = await relay.api('GET', `/v1/tasks/${task.id}`);
  assert.equal(fetched.body.task.status, 'delayed');
  const req = await arrival('/delayed/d1');
  assert.ok(req.at >= delayUntil.getTime(), `arrived ${delayUntil.getTime() - req.at} ms before delayUntil`);
  const done = await waitForStatus(relay, task.id, 'completed');
  assert.equal(done.result.body, 'ok POST');
  const changes = (await timeline(task.id)).filter((e) => e.type === 'status.changed').map((e) => e.data.to);
  assert.deepEqual(changes, ['processing', 'completed']);
  assert.equal((await timeline(task.id))[1].data.from, 'delayed');
});

test('a delayUntil in the past dispatches at once as pending', async () => {
  const { task } = await create({ targetUrl: `${target.url}/delayed/past`, delayUntil: new Date(Date.now() - 60_000).toISOString() });
  assert.equal(task.status, 'pending');
  await waitForStatus(relay, task.id, 'completed');
});

test('priority is carried by the dispatch job (higher first in pg-boss)', async () => {
  const at = new Date(Date.now() + 60_000).toISOString();
  const low = await create({ targetUrl: `${target.url}/prio/low`, priority: 1, delayUntil: at });
  const high = await create({ targetUrl: `${target.url}/prio/high`, priority: 10, delayUntil: at });
  const usual = await create({ targetUrl: `${target.url}/prio/default`, delayUntil: at });
  assert.equal(low.task.priority, 1);
  assert.equal(high.task.priority, 10);
  assert.equal(usual.task.priority, 5);
  const sql = relay.running.relay.sql;
  const rows = await sql<{ task: string; priority: number; start_after: Date | string }[]>`
    select data->>'taskId' as task, priority, start_after from pgboss.job
    where name = 'task.dispatch' and data->>'taskId' in ${sql([low.task.id, high.task.id, usual.task.id])}`;
  const byTask = Object.fromEntries(rows.map((r) => [r.task, r]));
  assert.equal(rows.length, 3);
  assert.equal(byTask[low.task.id].priority, 1);
  assert.equal(byTask[high.task.id].priority, 10);
  assert.equal(byTask[usual.task.id].priority, 5);
  assert.equal(new Date(byTask[high.task.id].start_after).toISOString(), at);
  // Cancel so they do not fire while the relay stops.
  for (const t of [low, high, usual]) assert.equal((await relay.api('POST', `/v1/tasks/${t.task.id}/cancel`)).status, 200);
});

test('after a 2xx submit a task with the placeholder waits, then times out after maxWaitTime', async () => {
  const { task } = await create({ targetUrl: `${target.url}/wait/w1?hook={asyncqueue_callback_url}`, maxWaitTime: 1 });
  const waiting = await waitForStatus(relay, task.id, 'waiting');
  assert.equal(waiting.result, null);
  const timedOut = await waitForStatus(relay, task.id, 'timeout');
  assert.equal(timedOut.error.code, 'timeout');
  assert.ok(timedOut.completedAt);
  // The deadline counts from when the task started waiting (1 s), not earlier.
  assert.ok(Date.parse(timedOut.completedAt) - Date.parse(waiting.updatedAt) >= 900);
  const changes = (await timeline(task.id)).filter((e) => e.type === 'status.changed').map((e) => e.data.to);
  assert.deepEqual(changes, ['processing', 'waiting', 'timeout']);
});

test('waitForSignal without a placeholder also waits after the submit', async () => {
  const { task, signalToken } = await create({ targetUrl: `${target.url}/wait/w2`, waitForSignal: true });
  assert.match(signalToken!, /^[0-9a-f]{64}$/);
  const req = await arrival('/wait/w2');
  assert.ok(!req.text.includes(signalToken!));
  await waitForStatus(relay, task.id, 'waiting');
});
