import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { HttpFake } from '../fakes/http-fake.ts';
import { type ApiAnswer, startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';

let relay: TestRelay;
let provider: HttpFake;

before(async () => {
  relay = await startTestRelay();
  provider = await HttpFake.start(() => ({ status: 200, body: { ok: true } }));
});
after(async () => {
  await relay.stop();
  await provider.close();
});

const FAR_FUTURE = '2099-01-01T00:00:00Z';
// A well-formed UUID v7 that no task has.
const UNKNOWN_ID = '01900000-0000-7000-8000-000000000000';

function assertProblem(answer: ApiAnswer, status: number, detail: RegExp): void {
  assert.equal(answer.status, status, JSON.stringify(answer.body));
  assert.equal(answer.headers.get('content-type'), 'application/problem+json');
  assert.equal(answer.body.status, status);
  assert.equal(answer.body.code, status === 404 ? 'not_found' : 'invalid_request');
  assert.equal(answer.body.error, answer.body.detail);
  assert.match(answer.body.requestId, /^[0-9a-f-]{36}$/);
  assert.match(answer.body.detail, detail);
}

async function create(input: Record<string, unknown>): Promise<any> {
  const answer = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/run`, ...input });
  assert.equal(answer.status, 201, JSON.stringify(answer.body));
  return answer.body.task;
}

async function list(query: string): Promise<any> {
  const answer = await relay.api('GET', `/v1/tasks?${query}`);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body;
}

const ids = (page: { tasks: Array<{ id: string }> }) => page.tasks.map((t) => t.id);
const newestFirst = (list: string[]) => [...list].sort().reverse();

describe('GET /v1/tasks/:id', () => {
  test('returns the task; an unknown id is a 404 problem, a garbage id a 400', async () => {
    const task = await create({ delayUntil: FAR_FUTURE, metadata: { group: 'get' } });
    const got = await relay.api('GET', `/v1/tasks/${task.id}`);
    assert.equal(got.status, 200);
    assert.deepEqual(Object.keys(got.body), ['task']);
    assert.deepEqual(got.body.task, task);

    assertProblem(await relay.api('GET', `/v1/tasks/${UNKNOWN_ID}`), 404, /^Task not found$/);
    assertProblem(await relay.api('GET', '/v1/tasks/not-a-uuid'), 400, /^id: /);
    assertProblem(await relay.api('GET', `/v1/tasks/${task.id}x`), 400, /^id: /);
  });

  test('?wait=1 with nothing changing answers after about a second, unchanged', async () => {
    const task = await create({ delayUntil: FAR_FUTURE, metadata: { group: 'poll' } });
    const started = Date.now();
    const answer = await relay.api('GET', `/v1/tasks/${task.id}?wait=1&seenStatus=delayed`);
    const elapsed = Date.now() - started;
    assert.equal(answer.status, 200);
    assert.equal(answer.body.task.status, 'delayed');
    assert.ok(elapsed >= 900 && elapsed < 3_000, `answered after ${elapsed} ms`);
  });

  test('?wait with a seenStatus that is no longer current answers at once', async () => {
    const task = await create({ delayUntil: FAR_FUTURE, metadata: { group: 'poll' } });
    const started = Date.now();
    const answer = await relay.api('GET', `/v1/tasks/${task.id}?wait=20&seenStatus=pending`);
    assert.equal(answer.body.task.status, 'delayed');
    assert.ok(Date.now() - started < 1_000, `answered after ${Date.now() - started} ms`);
  });

  test('?wait returns as soon as another request cancels the task', async () => {
    const task = await create({ delayUntil: FAR_FUTURE, metadata: { group: 'poll' } });
    const started = Date.now();
    const polling = relay.api('GET', `/v1/tasks/${task.id}?wait=20&seenStatus=delayed`);
    const cancelled = await relay.api('POST', `/v1/tasks/${task.id}/cancel`);
    assert.equal(cancelled.status, 200);
    const answer = await polling;
    assert.equal(answer.status, 200);
    assert.equal(answer.body.task.status, 'cancelled');
    assert.ok(Date.now() - started < 5_000, `answered after ${Date.now() - started} ms`);
  });

  test('?wait wakes on a change the relay makes itself (delayUntil passing), long before the wait ends', async () => {
    const task = await create({ delayUntil: new Date(Date.now() + 1_500).toISOString(), metadata: { group: 'poll' } });
    assert.equal(task.status, 'delayed');
    const started = Date.now();
    const answer = await relay.api('GET', `/v1/tasks/${task.id}?wait=15&seenStatus=delayed`);
    const elapsed = Date.now() - started;
    assert.notEqual(answer.body.task.status, 'delayed');
    assert.ok(elapsed >= 900 && elapsed < 8_000, `answered after ${elapsed} ms`);
    await waitForStatus(relay, task.id, 'completed');
  });

  test('?wait on a finished task answers at once', async () => {
    const task = await create({ metadata: { group: 'poll' } });
    await waitForStatus(relay, task.id, 'completed');
    const started = Date.now();
    const answer = await relay.api('GET', `/v1/tasks/${task.id}?wait=20`);
    assert.equal(answer.body.task.status, 'completed');
    assert.ok(Date.now() - started < 1_000, `answered after ${Date.now() - started} ms`);
  });

  test('bad long-poll parameters are 400s, an unknown task a 404 even with wait', async () => {
    const task = await create({ delayUntil: FAR_FUTURE, metadata: { group: 'poll' } });
    assertProblem(await relay.api('GET', `/v1/tasks/${task.id}?wait=26`), 400, /^wait: /);
    assertProblem(await relay.api('GET', `/v1/tasks/${task.id}?wait=-1`), 400, /^wait: /);
    assertProblem(await relay.api('GET', `/v1/tasks/${task.id}?wait=soon`), 400, /^wait: /);
    assertProblem(await relay.api('GET', `/v1/tasks/${task.id}?wait=1&seenStatus=sleeping`), 400, /^seenStatus: /);
    const started = Date.now();
    assertProblem(await relay.api('GET', `/v1/tasks/${UNKNOWN_ID}?wait=5`), 404, /^Task not found$/);
    assert.ok(Date.now() - started < 1_000, 'a 404 does not wait');
  });
});

describe('GET /v1/tasks filters', () => {
  const group = 'metadata.group=status';
  let delayed: string[];
  let completed: string;
  let cancelled: string;
  let waiting: string;

  before(async () => {
    delayed = [
      (await create({ delayUntil: FAR_FUTURE, metadata: { group: 'status', kind: 'a' } })).id,
      (await create({ delayUntil: FAR_FUTURE, metadata: { group: 'status', kind: 'b & c' } })).id,
    ];
    completed = (await create({ metadata: { group: 'status', kind: 'a' } })).id;
    cancelled = (await create({ delayUntil: FAR_FUTURE, metadata: { group: 'status', kind: 'a' } })).id;
    assert.equal((await relay.api('POST', `/v1/tasks/${cancelled}/cancel`)).status, 200);
    waiting = (await create({ waitForSignal: true, metadata: { group: 'status' } })).id;
    await waitForStatus(relay, completed, 'completed');
    await waitForStatus(relay, waiting, 'waiting');
  });

  test('status: one status, a comma list (spaces allowed), none', async () => {
    assert.deepEqual(ids(await list(`${group}&status=delayed`)), newestFirst(delayed));
    assert.deepEqual(ids(await list(`${group}&status=completed`)), [completed]);
    assert.deepEqual(ids(await list(`${group}&status=delayed,cancelled`)), newestFirst([...delayed, cancelled]));
    assert.deepEqual(ids(await list(`${group}&status=waiting,%20completed`)), newestFirst([waiting, completed]));
    assert.deepEqual(ids(await list(`${group}&status=failed`)), []);
    assert.deepEqual(ids(await list(group)), newestFirst([...delayed, completed, cancelled, waiting]));
    const page = await list(`${group}&status=cancelled`);
    assert.equal(page.tasks[0].status, 'cancelled');
    assert.deepEqual(page.pagination, { limit: 20, hasMore: false, nextCursor: null });
  });

  test('an unknown status is a 400 problem', async () => {
    assertProblem(await relay.api('GET', '/v1/tasks?status=bogus'), 400, /^status must be a comma-separated list of: delayed, pending/);
    assertProblem(await relay.api('GET', '/v1/tasks?status=delayed,bogus'), 400, /^status must be/);
    assertProblem(await relay.api('GET', '/v1/tasks?status=DELAYED'), 400, /^status must be/);
  });

  test('metadata.K=V filters by containment; several keys must all match', async () => {
    assert.deepEqual(ids(await list(`${group}&metadata.kind=a`)), newestFirst([delayed[0], completed, cancelled]));
    assert.deepEqual(ids(await list(`${group}&metadata.kind=${encodeURIComponent('b & c')}`)), [delayed[1]]);
    assert.deepEqual(ids(await list(`${group}&metadata.kind=a&status=delayed`)), [delayed[0]]);
    assert.deepEqual(ids(await list(`${group}&metadata.kind=z`)), []);
    assert.deepEqual(ids(await list('metadata.group=nobody')), []);
  });

  test('filters PostgreSQL cannot hold are 400s, not 500s', async () => {
    assertProblem(await relay.api('GET', '/v1/tasks?metadata.k=%00'), 400, /^metadata filters must not contain NUL/);
    assertProblem(await relay.api('GET', '/v1/tasks?metadata.%00=v'), 400, /^metadata filters must not contain NUL/);
    assertProblem(await relay.api('GET', '/v1/tasks?provider=a%00'), 400, /^provider: /);
  });
});

describe('GET /v1/tasks paging', () => {
  let all: string[];

  before(async () => {
    const created: string[] = [];
    for (let i = 0; i < 25; i++) created.push((await create({ delayUntil: FAR_FUTURE, metadata: { batch: 'paging', n: String(i) } })).id);
    all = newestFirst(created);
  });

  test('the default limit is 20, with a cursor for the rest', async () => {
    const page = await list('metadata.batch=paging');
    assert.equal(page.tasks.length, 20);
    assert.deepEqual(ids(page), all.slice(0, 20));
    assert.equal(page.pagination.limit, 20);
    assert.equal(page.pagination.hasMore, true);
    assert.equal(typeof page.pagination.nextCursor, 'string');
    assert.equal('offset' in page.pagination, false);
  });

  test('a keyset cursor walks 25 tasks newest first, no duplicates, no gaps, unaffected by new tasks', async () => {
    const seen: string[] = [];
    const pages: Array<{ n: number; hasMore: boolean }> = [];
    let cursor: string | null = null;
    do {
      const page = await list(`metadata.batch=paging&limit=10${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...ids(page));
      pages.push({ n: page.tasks.length, hasMore: page.pagination.hasMore });
      cursor = page.pagination.nextCursor;
      // A task created mid-walk is newer than every cursor, so it never shifts the pages.
      if (pages.length === 1) await create({ delayUntil: FAR_FUTURE, metadata: { batch: 'paging-late' } });
    } while (cursor);
    assert.deepEqual(pages, [{ n: 10, hasMore: true }, { n: 10, hasMore: true }, { n: 5, hasMore: false }]);
    assert.deepEqual(seen, all);
    const createdAt = (await list('metadata.batch=paging&limit=100')).tasks.map((t: any) => Date.parse(t.createdAt));
    assert.deepEqual(createdAt, [...createdAt].sort((a, b) => b - a), 'newest first by creation time too');
  });

  test('a page of exactly the remaining size says hasMore false', async () => {
    const page = await list('metadata.batch=paging&limit=25');
    assert.deepEqual(ids(page), all);
    assert.deepEqual(page.pagination, { limit: 25, hasMore: false, nextCursor: null });
  });

  test('offset is accepted for compatibility and echoed', async () => {
    const page = await list('metadata.batch=paging&limit=5&offset=5');
    assert.deepEqual(ids(page), all.slice(5, 10));
    assert.equal(page.pagination.offset, 5);
    assert.equal(page.pagination.hasMore, true);
    const tail = await list('metadata.batch=paging&limit=5&offset=20');
    assert.deepEqual(ids(tail), all.slice(20));
    assert.deepEqual(tail.pagination, { limit: 5, hasMore: false, nextCursor: null, offset: 20 });
    assert.deepEqual(ids(await list('metadata.batch=paging&offset=100')), []);
  });

  test('bad limit, offset and cursor values are 400 problems', async () => {
    assertProblem(await relay.api('GET', '/v1/tasks?limit=101'), 400, /^limit: /);
    assertProblem(await relay.api('GET', '/v1/tasks?limit=0'), 400, /^limit: /);
    assertProblem(await relay.api('GET', '/v1/tasks?limit=ten'), 400, /^limit: /);
    assertProblem(await relay.api('GET', '/v1/tasks?offset=-1'), 400, /^offset: /);
    assertProblem(await relay.api('GET', '/v1/tasks?cursor=garbage!'), 400, /^Invalid cursor$/);
    const notAnId = Buffer.from('not-a-task-id').toString('base64url');
    assertProblem(await relay.api('GET', `/v1/tasks?cursor=${notAnId}`), 400, /^Invalid cursor$/);
  });
});

describe('GET /v1/tasks/:id/events', () => {
  test('a no-wait task answered 200: created → processing → attempt → completed, oldest first', async () => {
    const task = await create({ targetUrl: `${provider.url}/timeline`, metadata: { group: 'events' } });
    await waitForStatus(relay, task.id, 'completed');
    const answer = await relay.api('GET', `/v1/tasks/${task.id}/events`);
    assert.equal(answer.status, 200);
    const { events } = answer.body;
    assert.deepEqual(
      events.map((e: any) => e.type),
      ['task.created', 'status.changed', 'dispatch.attempt', 'status.changed'],
    );
    assert.deepEqual(events[0].data, { status: 'pending', waits: false });
    assert.deepEqual(events[1].data, { from: 'pending', to: 'processing' });
    assert.equal(events[2].data.attempt, 1);
    assert.equal(events[2].data.statusCode, 200);
    assert.equal(typeof events[2].data.duration, 'number');
    assert.equal(events[3].data.to, 'completed');
    for (let i = 1; i < events.length; i++) {
      assert.ok(events[i].id > events[i - 1].id, 'ids ascend');
      assert.ok(Date.parse(events[i].at) >= Date.parse(events[i - 1].at), 'times ascend');
    }
    for (const e of events) assert.deepEqual(Object.keys(e).sort(), ['at', 'data', 'id', 'type']);
    assert.match(events[0].at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  });

  test('a delayed task records its delay; unknown and garbage ids are 404 and 400', async () => {
    const task = await create({ delayUntil: FAR_FUTURE, metadata: { group: 'events' } });
    const answer = await relay.api('GET', `/v1/tasks/${task.id}/events`);
    assert.deepEqual(
      answer.body.events.map((e: any) => [e.type, e.data]),
      [['task.created', { status: 'delayed', waits: false, delayUntil: FAR_FUTURE }]],
    );
    assertProblem(await relay.api('GET', `/v1/tasks/${UNKNOWN_ID}/events`), 404, /^Task not found$/);
    assertProblem(await relay.api('GET', '/v1/tasks/nope/events'), 400, /^id: /);
  });
});
