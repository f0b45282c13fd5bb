import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Hono } from 'hono';
import { type AdmissionOptions, admitCreates } from '../../src/http/admission.ts';
import type { AuthEnv } from '../../src/http/auth.ts';

/**
 * An app whose handler holds each request until the test releases it, recording the order. The
 * API key is the `x-key` header (the real app sets `keyHash` in its auth middleware).
 */
function held(options: Partial<AdmissionOptions> & { max: number }) {
  const started: string[] = [];
  const release = new Map<string, () => void>();
  let running = 0;
  let peak = 0;
  const app = new Hono<AuthEnv>();
  app.use(async (c, next) => {
    c.set('keyHash', c.req.header('x-key') ?? 'a');
    await next();
  });
  app.post('/v1/tasks', admitCreates({ maxPerKey: options.max, maxWaitingPerKey: 10_000, ...options }), async (c) => {
    const n = c.req.query('n')!;
    assert.equal(await c.req.text(), `{"n":"${n}"}`, 'the handler reads the body admission read');
    started.push(n);
    peak = Math.max(peak, ++running);
    await new Promise<void>((resolve) => release.set(n, resolve));
    running--;
    return c.json({ n }, 201);
  });
  const send = (n: string | number, init: { key?: string; signal?: AbortSignal; body?: string | ReadableStream<Uint8Array> } = {}) =>
    app.request(`/v1/tasks?n=${n}`, {
      method: 'POST',
      headers: { 'x-key': init.key ?? 'a' },
      body: init.body ?? `{"n":"${n}"}`,
      signal: init.signal,
      ...(init.body instanceof ReadableStream ? { duplex: 'half' } : {}),
    } as RequestInit);
  const until = async (check: () => boolean) => {
    while (!check()) await new Promise((resolve) => setImmediate(resolve));
  };
  const settle = () => new Promise((resolve) => setTimeout(resolve, 20));
  return { started, release, send, until, settle, peak: () => peak };
}

test('at most `max` creations run at once; the others start in arrival order as slots free up', async () => {
  const h = held({ max: 2 });
  const answers = [1, 2, 3, 4, 5].map((n) => h.send(n));
  await h.until(() => h.started.length === 2);
  assert.deepEqual(h.started, ['1', '2']);
  h.release.get('1')!();
  await h.until(() => h.started.length === 3);
  assert.deepEqual(h.started, ['1', '2', '3']);
  for (const n of ['2', '3']) h.release.get(n)!();
  await h.until(() => h.started.length === 5);
  for (const n of ['4', '5']) h.release.get(n)!();
  const statuses = (await Promise.all(answers)).map((r) => r.status);
  assert.deepEqual(statuses, [201, 201, 201, 201, 201]);
  assert.equal(h.peak(), 2);
});

test('a queue past maxWaiting is shed with 503 problem+json and Retry-After; nothing else is refused', async () => {
  const h = held({ max: 1, maxWaiting: 1 });
  const first = h.send(1);
  await h.until(() => h.started.length === 1);
  const queued = h.send(2);
  await h.settle();
  const shed = await h.send(3, { key: 'b' });
  assert.equal(shed.status, 503);
  assert.equal(shed.headers.get('retry-after'), '1');
  assert.match(shed.headers.get('content-type') ?? '', /application\/problem\+json/);
  assert.equal(((await shed.json()) as { code: string }).code, 'overloaded');
  h.release.get('1')!();
  await h.until(() => h.started.length === 2);
  h.release.get('2')!();
  assert.deepEqual([(await first).status, (await queued).status], [201, 201]);
  assert.deepEqual(h.started, ['1', '2']);
});

test('a request whose client went away while it waited is not handled, and its turn passes on', async () => {
  const h = held({ max: 1 });
  const first = h.send(1);
  await h.until(() => h.started.length === 1);
  const gone = new AbortController();
  const abandoned = h.send(2, { signal: gone.signal });
  await h.settle();
  const third = h.send(3);
  await h.settle();
  gone.abort();
  h.release.get('1')!();
  await h.until(() => h.started.length === 2);
  assert.deepEqual(h.started, ['1', '3'], 'the abandoned create must not run');
  h.release.get('3')!();
  assert.equal((await abandoned).status, 503);
  assert.deepEqual([(await first).status, (await third).status], [201, 201]);
});

test('a slot is taken only once the body is in: a body that never ends holds no slot', async () => {
  const h = held({ max: 1 });
  // A body stream that sends its first bytes and then nothing more (a client dripping its body).
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const dripping = new ReadableStream<Uint8Array>({
    start: (c) => {
      controller = c;
      c.enqueue(new TextEncoder().encode('{"n":'));
    },
  });
  const slow = h.send('slow', { body: dripping });
  await h.settle();
  const fast = h.send('fast');
  await h.until(() => h.started.length === 1);
  assert.deepEqual(h.started, ['fast']);
  // The rest of the slow body arrives: only now does it wait for (and get) a slot.
  controller.enqueue(new TextEncoder().encode('"slow"}'));
  controller.close();
  await h.settle();
  assert.deepEqual(h.started, ['fast']);
  h.release.get('fast')!();
  await h.until(() => h.started.length === 2);
  h.release.get('slow')!();
  assert.deepEqual([(await fast).status, (await slow).status], [201, 201]);
});

test('one key holds at most maxPerKey slots: another key starts at once while the first key still waits', async () => {
  const h = held({ max: 3, maxPerKey: 2 });
  const a = [1, 2, 3, 4].map((n) => h.send(`a${n}`, { key: 'a' }));
  await h.until(() => h.started.length === 2);
  await h.settle();
  assert.deepEqual(h.started, ['a1', 'a2'], 'the third slot stays free for other keys');
  const b = h.send('b1', { key: 'b' });
  await h.until(() => h.started.length === 3);
  assert.deepEqual(h.started, ['a1', 'a2', 'b1']);
  for (const n of ['a1', 'a2', 'b1']) h.release.get(n)!();
  await h.until(() => h.started.length === 5);
  for (const n of ['a3', 'a4']) h.release.get(n)!();
  assert.deepEqual((await Promise.all([...a, b])).map((r) => r.status), [201, 201, 201, 201, 201]);
});

test('freed slots go round-robin between waiting keys, not to the key that queued first', async () => {
  const h = held({ max: 1 });
  const first = h.send('a0', { key: 'a' });
  await h.until(() => h.started.length === 1);
  const queued = [h.send('a1', { key: 'a' }), h.send('a2', { key: 'a' }), h.send('a3', { key: 'a' })];
  await h.settle();
  const others = [h.send('b1', { key: 'b' }), h.send('c1', { key: 'c' })];
  await h.settle();
  for (let i = 1; i <= 5; i++) {
    h.release.get(h.started[i - 1])!();
    await h.until(() => h.started.length === i + 1);
  }
  assert.deepEqual(h.started, ['a0', 'a1', 'b1', 'c1', 'a2', 'a3']);
  h.release.get('a3')!();
  assert.deepEqual((await Promise.all([first, ...queued, ...others])).map((r) => r.status), [201, 201, 201, 201, 201, 201]);
});

test('a key past its own queue bound gets 429 with Retry-After; other keys still queue', async () => {
  const h = held({ max: 1, maxWaitingPerKey: 1 });
  const first = h.send('a1', { key: 'a' });
  await h.until(() => h.started.length === 1);
  const queued = h.send('a2', { key: 'a' });
  await h.settle();
  const refused = await h.send('a3', { key: 'a' });
  assert.equal(refused.status, 429);
  assert.equal(refused.headers.get('retry-after'), '1');
  assert.equal(((await refused.json()) as { code: string }).code, 'rate_limited');
  const other = h.send('b1', { key: 'b' });
  await h.settle();
  h.release.get('a1')!();
  await h.until(() => h.started.length === 2);
  h.release.get('a2')!();
  await h.until(() => h.started.length === 3);
  h.release.get('b1')!();
  assert.deepEqual(h.started, ['a1', 'a2', 'b1']);
  assert.deepEqual((await Promise.all([first, queued, other])).map((r) => r.status), [201, 201, 201]);
});
