import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Hono } from 'hono';
import { admitCreates } from '../../src/http/admission.ts';

/** An app whose handler holds each request until the test releases it, recording the order. */
function held(max: number, maxWaiting?: number) {
  const started: number[] = [];
  const release = new Map<number, () => void>();
  let running = 0;
  let peak = 0;
  const app = new Hono();
  app.post('/v1/tasks', admitCreates(max, maxWaiting), async (c) => {
    const n = Number(c.req.query('n'));
    started.push(n);
    peak = Math.max(peak, ++running);
    await new Promise<void>((resolve) => release.set(n, resolve));
    running--;
    return c.json({ n }, 201);
  });
  const send = Object.assign((n: number) => app.request(`/v1/tasks?n=${n}`, { method: 'POST' }), {
    withSignal: (n: number, signal: AbortSignal) => app.request(`/v1/tasks?n=${n}`, { method: 'POST', signal }),
  });
  const until = async (check: () => boolean) => {
    while (!check()) await new Promise((resolve) => setImmediate(resolve));
  };
  return { started, release, send, until, peak: () => peak };
}

test('at most `max` creations run at once; the others start in arrival order as slots free up', async () => {
  const h = held(2);
  const answers = [1, 2, 3, 4, 5].map((n) => h.send(n));
  await h.until(() => h.started.length === 2);
  assert.deepEqual(h.started, [1, 2]);
  h.release.get(1)!();
  await h.until(() => h.started.length === 3);
  assert.deepEqual(h.started, [1, 2, 3]);
  for (const n of [2, 3]) h.release.get(n)!();
  await h.until(() => h.started.length === 5);
  for (const n of [4, 5]) h.release.get(n)!();
  const statuses = (await Promise.all(answers)).map((r) => r.status);
  assert.deepEqual(statuses, [201, 201, 201, 201, 201]);
  assert.equal(h.peak(), 2);
});

test('a queue past maxWaiting is shed with 503 problem+json and Retry-After; nothing else is refused', async () => {
  const h = held(1, 1);
  const first = h.send(1);
  await h.until(() => h.started.length === 1);
  const queued = h.send(2);
  await new Promise((resolve) => setImmediate(resolve));
  const shed = await h.send(3);
  assert.equal(shed.status, 503);
  assert.equal(shed.headers.get('retry-after'), '1');
  assert.match(shed.headers.get('content-type') ?? '', /application\/problem\+json/);
  assert.equal(((await shed.json()) as { code: string }).code, 'overloaded');
  h.release.get(1)!();
  await h.until(() => h.started.length === 2);
  h.release.get(2)!();
  assert.deepEqual([(await first).status, (await queued).status], [201, 201]);
  assert.deepEqual(h.started, [1, 2]);
});

test('a request whose client went away while it waited is not handled, and its turn passes on', async () => {
  const h = held(1);
  const first = h.send(1);
  await h.until(() => h.started.length === 1);
  const gone = new AbortController();
  const abandoned = h.send.withSignal(2, gone.signal);
  const third = h.send(3);
  await new Promise((resolve) => setImmediate(resolve));
  gone.abort();
  h.release.get(1)!();
  await h.until(() => h.started.length === 2);
  assert.deepEqual(h.started, [1, 3], 'the abandoned create must not run');
  h.release.get(3)!();
  assert.equal((await abandoned).status, 503);
  assert.deepEqual([(await first).status, (await third).status], [201, 201]);
});
