/**
 * Retries of the target call (DESIGN §4 Statuses): what is retried, how often, how far apart,
 * what fails at once, and the timeline of every attempt. FAST_TIMINGS scales the backoff ×0.1
 * (100, 200, 400 … ms); the worker's 0.5 s idle poll adds up to that much to each gap.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type FakeReply, HttpFake, type RecordedRequest } from '../fakes/http-fake.ts';
import { freePort, startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';

let relay: TestRelay;
let target: HttpFake;

/** `/status/<code>/<name>` answers <code>; `/flaky/<n>/<name>` fails n times with 503 then answers 200. */
before(async () => {
  relay = await startTestRelay();
  target = await HttpFake.start((req): FakeReply => {
    const [, kind, arg] = req.path.split('/');
    if (kind === 'status') return { status: Number(arg), headers: { 'content-type': 'text/plain' }, body: `answer ${arg}` };
    if (kind === 'flaky') {
      const seen = target.requests.filter((r) => r.path === req.path).length;
      return seen <= Number(arg) ? { status: 503, body: 'busy' } : { status: 200, body: 'finally' };
    }
    if (kind === 'retry-after') return { status: 429, headers: { 'retry-after': '1' }, body: 'slow down' };
    if (kind === 'hang') return { hang: true };
    return { status: 200, body: 'ok' };
  });
});
after(async () => {
  await relay.stop();
  await target.close();
});

async function create(input: Record<string, unknown>): Promise<string> {
  const created = await relay.api('POST', '/v1/tasks', input);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return created.body.task.id;
}

async function timeline(taskId: string): Promise<Array<{ type: string; data: any }>> {
  const answer = await relay.api('GET', `/v1/tasks/${taskId}/events`);
  assert.equal(answer.status, 200);
  return answer.body.events;
}

const requestsTo = (path: string): RecordedRequest[] => target.requests.filter((r) => r.path === path);
const gaps = (reqs: RecordedRequest[]): number[] => reqs.slice(1).map((r, i) => r.at - reqs[i].at);

/** How many task.dispatch jobs pg-boss ever held for the task (one per attempt). */
async function dispatchJobs(taskId: string): Promise<number> {
  const [row] = await relay.running.relay.sql<{ n: number }[]>`
    select count(*)::int as n from pgboss.job where name = 'task.dispatch' and data->>'taskId' = ${taskId}`;
  return row.n;
}

test('500, 503, 408 and 429 are retried maxRetries times, then the task fails with target_error', async () => {
  const codes = [500, 503, 408, 429];
  const ids = await Promise.all(codes.map((code) => create({ targetUrl: `${target.url}/status/${code}/r`, maxRetries: 2 })));
  const tasks = await Promise.all(ids.map((id) => waitForStatus(relay, id, 'failed')));
  for (const [i, task] of tasks.entries()) {
    const code = codes[i];
    assert.equal(requestsTo(`/status/${code}/r`).length, 3, `HTTP ${code}: 1 attempt + 2 retries`);
    assert.equal(task.retryCount, 2);
    assert.deepEqual(task.error, { code: 'target_error', message: `Target answered HTTP ${code}`, statusCode: code });
    // The last answer is kept for diagnosis.
    assert.equal(task.result.statusCode, code);
    assert.equal(task.result.body, `answer ${code}`);
    const events = await timeline(task.id);
    const attempts = events.filter((e) => e.type === 'dispatch.attempt');
    assert.deepEqual(attempts.map((e) => [e.data.attempt, e.data.statusCode]), [[1, code], [2, code], [3, code]]);
    assert.deepEqual(events.filter((e) => e.type === 'dispatch.retry_scheduled').map((e) => e.data.retry), [1, 2]);
    assert.deepEqual(events.filter((e) => e.type === 'status.changed').map((e) => e.data.to), ['processing', 'failed']);
  }
});

test('connection refused is retried, then fails with target_unreachable', async () => {
  const closedPort = await freePort(); // nothing listens there
  const id = await create({ targetUrl: `http://127.0.0.1:${closedPort}/nobody`, maxRetries: 2 });
  const task = await waitForStatus(relay, id, 'failed');
  assert.equal(task.retryCount, 2);
  assert.equal(task.error.code, 'target_unreachable');
  assert.match(task.error.message, /ECONNREFUSED/);
  assert.equal(task.result, null);
  const attempts = (await timeline(id)).filter((e) => e.type === 'dispatch.attempt');
  assert.deepEqual(attempts.map((e) => e.data.attempt), [1, 2, 3]);
  for (const a of attempts) assert.match(a.data.error.message, /ECONNREFUSED/);
});

test('a hanging target is cut after `timeout` seconds, retried, then fails with target_timeout', async () => {
  const id = await create({ targetUrl: `${target.url}/hang/t1`, timeout: 1, maxRetries: 1 });
  const task = await waitForStatus(relay, id, 'failed');
  assert.equal(requestsTo('/hang/t1').length, 2);
  assert.equal(task.retryCount, 1);
  assert.equal(task.error.code, 'target_timeout');
  const attempts = (await timeline(id)).filter((e) => e.type === 'dispatch.attempt');
  assert.equal(attempts.length, 2);
  for (const a of attempts) {
    assert.equal(a.data.error.code, 'timeout');
    assert.ok(a.data.duration >= 950 && a.data.duration < 5000, `attempt took ${a.data.duration} ms`);
  }
});

test('two failures then 200: completed with retryCount 2 and the successful answer', async () => {
  const id = await create({ targetUrl: `${target.url}/flaky/2/a`, maxRetries: 3 });
  const task = await waitForStatus(relay, id, 'completed');
  assert.equal(requestsTo('/flaky/2/a').length, 3);
  assert.equal(task.retryCount, 2);
  assert.equal(task.result.statusCode, 200);
  assert.equal(task.result.body, 'finally');
  // The earlier failures are history on the timeline, not the completed task's error.
  assert.equal(task.error, null);
  const attempts = (await timeline(id)).filter((e) => e.type === 'dispatch.attempt');
  assert.deepEqual(attempts.map((e) => e.data.statusCode), [503, 503, 200]);
});

test('400, 404 and 422 fail at once with target_rejected after one request', async () => {
  const codes = [400, 404, 422];
  const ids = await Promise.all(codes.map((code) => create({ targetUrl: `${target.url}/status/${code}/x`, maxRetries: 3 })));
  const tasks = await Promise.all(ids.map((id) => waitForStatus(relay, id, 'failed')));
  for (const [i, task] of tasks.entries()) {
    const code = codes[i];
    assert.equal(requestsTo(`/status/${code}/x`).length, 1);
    assert.equal(task.retryCount, 0);
    assert.equal(task.error.code, 'target_rejected');
    assert.equal(task.error.statusCode, code);
    assert.equal(task.result.body, `answer ${code}`);
    // No retry job was ever scheduled, so no later request can come.
    assert.equal(await dispatchJobs(task.id), 1);
    const events = await timeline(task.id);
    assert.equal(events.filter((e) => e.type === 'dispatch.attempt').length, 1);
    assert.equal(events.filter((e) => e.type === 'dispatch.retry_scheduled').length, 0);
  }
});

test('maxRetries 0 makes exactly one attempt', async () => {
  const id = await create({ targetUrl: `${target.url}/status/500/once`, maxRetries: 0 });
  const task = await waitForStatus(relay, id, 'failed');
  assert.equal(requestsTo('/status/500/once').length, 1);
  assert.equal(task.retryCount, 0);
  assert.equal(task.error.code, 'target_error');
  assert.equal(await dispatchJobs(id), 1);
});

test('Retry-After on a 429 is honoured over the shorter scaled backoff', async () => {
  const id = await create({ targetUrl: `${target.url}/retry-after/ra`, maxRetries: 1 });
  const task = await waitForStatus(relay, id, 'failed');
  const reqs = requestsTo('/retry-after/ra');
  assert.equal(reqs.length, 2);
  // The scaled backoff alone would be 100 ms.
  assert.ok(gaps(reqs)[0] >= 1000, `second attempt ${gaps(reqs)[0]} ms after the first`);
  assert.equal(task.error.statusCode, 429);
  const scheduled = (await timeline(id)).filter((e) => e.type === 'dispatch.retry_scheduled');
  assert.deepEqual(scheduled.map((e) => e.data.delayMs), [1000]);
});

test('exponential backoff spaces retries wider than linear', async () => {
  const [exp, lin] = await Promise.all([
    create({ targetUrl: `${target.url}/status/502/exp`, maxRetries: 5, retryBackoff: 'exponential' }),
    create({ targetUrl: `${target.url}/status/502/lin`, maxRetries: 5, retryBackoff: 'linear' }),
  ]);
  await Promise.all([waitForStatus(relay, exp, 'failed'), waitForStatus(relay, lin, 'failed')]);
  const expGaps = gaps(requestsTo('/status/502/exp'));
  const linGaps = gaps(requestsTo('/status/502/lin'));
  assert.equal(expGaps.length, 5);
  assert.equal(linGaps.length, 5);
  // Lower bounds are exact (a retry never starts early); upper bounds leave room for the poll.
  [100, 200, 400, 800, 1600].forEach((min, i) => assert.ok(expGaps[i] >= min - 10, `exponential gap ${i + 1}: ${expGaps[i]} ms`));
  [100, 200, 300, 400, 500].forEach((min, i) => assert.ok(linGaps[i] >= min - 10, `linear gap ${i + 1}: ${linGaps[i]} ms`));
  assert.ok(linGaps[4] < 1500, `linear gap 5: ${linGaps[4]} ms`);
  assert.ok(expGaps[4] > linGaps[4], `exponential ${expGaps} vs linear ${linGaps}`);
  const delays = async (id: string) =>
    (await timeline(id)).filter((e) => e.type === 'dispatch.retry_scheduled').map((e) => e.data.delayMs);
  assert.deepEqual(await delays(exp), [100, 200, 400, 800, 1600]);
  assert.deepEqual(await delays(lin), [100, 200, 300, 400, 500]);
});
