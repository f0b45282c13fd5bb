/**
 * Whoever holds a task's callback URL can POST to it as often as the per-IP limits allow. What
 * those requests write to the task's timeline is bounded: each kind of callback event is recorded
 * up to a cap, later ones are counted in one `timeline.suppressed` event, kept payloads are small,
 * and GET /v1/tasks/:id/events pages (keyset on the event id) so a reader always reaches the end.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import postgres from 'postgres';
import { HttpFake } from '../fakes/http-fake.ts';
import { apiRequest, startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';

let relay: TestRelay;
let provider: HttpFake;
let sql: postgres.Sql;

before(async () => {
  // The per-IP ceiling would stop the flood before the timeline does: this file tests the latter.
  relay = await startTestRelay({ env: { RELAY_CALLBACK_IP_CEILING: '0' } });
  provider = await HttpFake.start(() => ({ status: 202, body: { accepted: true } }));
  sql = postgres(relay.database.url, { max: 2, onnotice: () => {} });
});
after(async () => {
  await sql.end({ timeout: 5 });
  await relay.stop();
  await provider.close();
});

/** Caps of the relay (src/callbacks/capped-events.ts): asserted as figures, so a change shows here. */
const PROGRESS_CAP = 100;
const CAP = 10;
const KEPT = 4096;

async function waitingTask(extra: Record<string, unknown> = {}) {
  const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/jobs`, waitForSignal: true, ...extra });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  await waitForStatus(relay, created.body.task.id, 'waiting');
  return { id: created.body.task.id as string, url: created.body.callbackUrl as string, token: created.body.signalToken as string };
}

/** POSTs `bodies` to `url`, `parallel` at a time; returns the status codes seen. */
async function flood(url: string, bodies: string[], parallel = 8): Promise<Set<number>> {
  const seen = new Set<number>();
  for (let i = 0; i < bodies.length; i += parallel) {
    const answers = await Promise.all(bodies.slice(i, i + parallel).map((body) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body })));
    for (const a of answers) {
      seen.add(a.status);
      await a.body?.cancel();
    }
  }
  return seen;
}

/** Every event of the task, read page by page through the API. */
async function readAll(id: string, limit: number): Promise<{ events: any[]; pages: number }> {
  const events: any[] = [];
  let after: string | null = null;
  let pages = 0;
  for (;;) {
    const answer = await relay.api('GET', `/v1/tasks/${id}/events?limit=${limit}${after ? `&after=${after}` : ''}`);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    pages++;
    events.push(...answer.body.events);
    assert.equal(answer.body.pagination.limit, limit);
    assert.ok(answer.body.events.length <= limit);
    if (!answer.body.pagination.hasMore) {
      assert.equal(answer.body.pagination.nextCursor, null);
      return { events, pages };
    }
    after = answer.body.pagination.nextCursor;
    assert.equal(after, String(answer.body.events.at(-1).id));
  }
}

async function storedBytes(id: string): Promise<number> {
  const [{ bytes }] = await sql`select coalesce(sum(octet_length(data::text)), 0)::int as bytes from task_events where task_id = ${id}`;
  return bytes;
}

const ofType = (events: any[], type: string) => events.filter((e) => e.type === type);
const suppressed = (events: any[], type: string) => events.filter((e) => e.type === 'timeline.suppressed' && e.data.of === type);

test('1,100 progress callbacks: the first 100 are recorded, the rest counted in one event; the completion is on the first page', async () => {
  const task = await waitingTask({ callbackConfig: { statusPath: 'state', doneValues: ['done'] } });
  const statuses = await flood(task.url, Array.from({ length: 1100 }, (_, i) => `{"state":"running","step":${i}}`));
  assert.deepEqual([...statuses], [202]);
  const done = await fetch(task.url, { method: 'POST', body: '{"state":"done"}' });
  assert.equal(done.status, 200);

  const first = await relay.api('GET', `/v1/tasks/${task.id}/events`);
  assert.equal(first.status, 200);
  assert.ok(first.body.events.some((e: any) => e.type === 'callback.accepted'), 'the completion is on the first page');
  assert.equal(first.body.pagination.hasMore, false);
  const { events } = first.body;
  assert.equal(ofType(events, 'callback.progress').length, PROGRESS_CAP);
  const [summary] = suppressed(events, 'callback.progress');
  assert.deepEqual({ count: summary.data.count, cap: summary.data.cap }, { count: 1100 - PROGRESS_CAP, cap: PROGRESS_CAP });
  assert.equal(suppressed(events, 'callback.progress').length, 1);
  assert.ok(events.length < PROGRESS_CAP + 20, `${events.length} events`);
});

test('64 KiB superseded and late callbacks keep at most 4 KiB each, 10 of each kind; unauthorized and rejected ones are capped too', async () => {
  const big = (i: number) => JSON.stringify({ state: 'done', i, pad: 'x'.repeat(64 * 1024) });

  // Superseded: terminal callbacks after a signal finished the task.
  const superseding = await waitingTask({ callbackConfig: { statusPath: 'state', doneValues: ['done'] } });
  assert.equal((await apiRequest(relay.baseUrl, 'POST', `/v1/signals/${superseding.token}`, { status: 'completed' })).status, 200);
  assert.deepEqual([...(await flood(superseding.url, Array.from({ length: 40 }, (_, i) => big(i))))], [200]);

  // Late: callbacks after a cancel, on the hot path (no callback rules).
  const late = await waitingTask();
  assert.equal((await relay.api('POST', `/v1/tasks/${late.id}/cancel`)).status, 200);
  assert.deepEqual([...(await flood(late.url, Array.from({ length: 40 }, (_, i) => big(i))))], [409]);

  // Unauthorized: a task that requires signed callbacks, posted to unsigned.
  const signed = await waitingTask({ callbackSignature: { scheme: 'standard-webhooks', secret: `whsec_${randomBytes(24).toString('base64')}` } });
  assert.deepEqual([...(await flood(signed.url, Array.from({ length: 40 }, (_, i) => big(i))))], [401]);

  // Rejected (409 after completion) and duplicates, on the hot path.
  const completed = await waitingTask();
  assert.equal((await fetch(completed.url, { method: 'POST', body: 'first' })).status, 200);
  assert.deepEqual([...(await flood(completed.url, Array.from({ length: 40 }, (_, i) => `other ${i}`)))], [409]);
  assert.deepEqual([...(await flood(completed.url, Array.from({ length: 40 }, () => 'first')))], [200]);

  // Rejected signals.
  assert.deepEqual([...(await flood(`${relay.baseUrl}/v1/signals/${completed.token}`, Array.from({ length: 40 }, () => '{"status":"completed"}')))], [409]);

  for (const [task, type] of [
    [superseding, 'callback.superseded'],
    [late, 'callback.late'],
    [signed, 'callback.unauthorized'],
    [completed, 'callback.rejected'],
    [completed, 'callback.duplicate'],
    [completed, 'signal.rejected'],
  ] as const) {
    const { events } = await readAll(task.id, 1000);
    const kept = ofType(events, type);
    assert.equal(kept.length, CAP, `${type}: ${kept.length} recorded`);
    for (const e of kept) assert.ok(!('body' in e.data) || e.data.body.length <= KEPT, `${type} keeps ${e.data.body?.length} characters`);
    const summaries = suppressed(events, type);
    assert.equal(summaries.length, 1, `${type}: one summary`);
    assert.equal(summaries[0].data.count, 40 - CAP, `${type}: counted`);
  }
  for (const task of [superseding, late, signed]) {
    const bytes = await storedBytes(task.id);
    assert.ok(bytes < 64 * 1024, `task ${task.id}: ${bytes} bytes of timeline`);
  }
  // The late payload is still kept (its start), as DESIGN §5 asks.
  const lateEvent = ofType((await readAll(late.id, 1000)).events, 'callback.late')[0];
  assert.equal(lateEvent.data.truncated, true);
  assert.equal(lateEvent.data.body.length, KEPT);
  assert.match(lateEvent.data.body, /^\{"state":"done","i":\d+,"pad":"x+$/);
});

describe('GET /v1/tasks/:id/events pagination', () => {
  test('keyset pages of any size give every event once, oldest first, ending at the completion', async () => {
    const task = await waitingTask({ callbackConfig: { statusPath: 'state', doneValues: ['done'] } });
    await flood(task.url, Array.from({ length: 30 }, (_, i) => `{"state":"running","step":${i}}`));
    assert.equal((await fetch(task.url, { method: 'POST', body: '{"state":"done"}' })).status, 200);
    const whole = (await relay.api('GET', `/v1/tasks/${task.id}/events`)).body;
    assert.deepEqual(whole.pagination, { limit: 1000, hasMore: false, nextCursor: null });
    for (const limit of [1, 7, 50]) {
      const { events, pages } = await readAll(task.id, limit);
      assert.deepEqual(events, whole.events);
      // hasMore looks one event ahead: a last page that is exactly full says so, no empty page follows.
      assert.equal(pages, Math.ceil(whole.events.length / limit));
    }
    const ids = whole.events.map((e: any) => e.id);
    assert.deepEqual(ids, [...ids].sort((a: number, b: number) => a - b));
    assert.equal(whole.events.at(-1).type, 'status.changed');
    assert.ok(whole.events.some((e: any) => e.type === 'callback.accepted'));
    // After the last event: an empty page, no cursor.
    const tail = await relay.api('GET', `/v1/tasks/${task.id}/events?after=${ids.at(-1)}`);
    assert.deepEqual(tail.body, { events: [], pagination: { limit: 1000, hasMore: false, nextCursor: null } });
  });

  test('a malformed after or limit is a 400 problem', async () => {
    const task = await waitingTask();
    for (const query of ['after=abc', 'after=-1', 'after=1.5', 'limit=0', 'limit=1001', 'limit=x']) {
      const answer = await relay.api('GET', `/v1/tasks/${task.id}/events?${query}`);
      assert.equal(answer.status, 400, `${query}: ${JSON.stringify(answer.body)}`);
      assert.equal(answer.headers.get('content-type'), 'application/problem+json');
    }
  });
});
