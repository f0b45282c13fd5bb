import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import postgres from 'postgres';
import { type FakeReply, HttpFake } from '../fakes/http-fake.ts';
import { Receiver } from '../fakes/receiver.ts';
import { addTenant, startTestRelay, type TestRelay } from '../helpers/relay.ts';
import { waitForEvent } from '../helpers/wait.ts';

/*
 * Issue 15 item 2: the first onComplete attempts made in memory (delivery/prompt-delivery.ts)
 * were one unbounded FIFO holding whole task rows: 400 callbacks of 1 MiB for a receiver that hung
 * took the RSS up by 540 MB, and every tenant's first attempts waited behind them.
 */

const LIMITS = { inFlightPerProject: 4, queuedPerProject: 8 };
const CALLBACKS = 30;
const CALLBACK_BYTES = 512 * 1024;

/*
 * Each test starts its own relay (one at a time: the PostgreSQL server is shared). Attempts hang
 * for as long as the receiver holds them, and the durable jobs behind prompt attempts are due only
 * after the test: any early delivery is one the relay brought forward.
 */
const HANGING = { deliveryTimeoutMs: 30_000, promptFallbackSeconds: 120 };

let target: HttpFake;

before(async () => {
  target = await HttpFake.start();
});

after(async () => {
  await target.close();
});

/** A receiver that holds every request until `release()`, then answers 200 at once. */
async function holdingReceiver() {
  const held: Array<(reply: FakeReply) => void> = [];
  let holding = true;
  const fake = await HttpFake.start(() => {
    if (!holding) return { status: 200, body: 'ok' };
    return new Promise<FakeReply>((resolve) => {
      held.push(resolve);
      fake.emit('held');
    });
  });
  return {
    fake,
    held,
    release() {
      holding = false;
      for (const resolve of held.splice(0)) resolve({ status: 200, body: 'ok' });
    },
  };
}

async function callbackTasks(api: TestRelay['api'], onCompleteUrl: string, count: number): Promise<Array<{ id: string; callbackUrl: string }>> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const created = await api('POST', '/v1/tasks', { targetUrl: `${target.url}/submit`, waitForSignal: true, onCompleteUrl });
      assert.equal(created.status, 201);
      return { id: created.body.task.id as string, callbackUrl: created.body.callbackUrl as string };
    }),
  );
}

/** Re-checks a database condition until it holds (the relay writes it in the background). */
async function until(check: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const postCallback = async (url: string, body: string) => (await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body })).status;

test("140 callbacks for a receiver that hangs (more than a process's 128 prompt slots) do not delay another project's webhook", async () => {
  const defaults = await startTestRelay({ timings: HANGING });
  const hanging = await holdingReceiver();
  const other = await addTenant(defaults, 'tenant-b');
  const otherReceiver = await Receiver.start(other.webhookSecret);
  try {
    const tasks = await callbackTasks(defaults.api, `${hanging.fake.url}/hook`, 140);
    const body = JSON.stringify({ output: 'x'.repeat(64 * 1024) });
    for (let i = 0; i < tasks.length; i += 20) {
      const statuses = await Promise.all(tasks.slice(i, i + 20).map((t) => postCallback(t.callbackUrl, body)));
      assert.deepEqual(new Set(statuses), new Set([200]));
    }
    const [theirs] = await callbackTasks(other.api, otherReceiver.url, 1);
    const sentAt = Date.now();
    assert.equal(await postCallback(theirs.callbackUrl, '{"output":"b"}'), 200);
    const [delivery] = await otherReceiver.waitForDeliveries(theirs.id, 1, 10_000);
    assert.ok(delivery.request.at - sentAt < 1000, `the other project's webhook took ${delivery.request.at - sentAt} ms`);
    // The project held its own 32 slots (the other project's frees once its answer is in); the
    // rest wait as references to their jobs.
    await until(async () => defaults.running.relay.prompt.stats().inFlight === 32, 'the other project\'s slot to free');
    assert.deepEqual(defaults.running.relay.prompt.stats(), { inFlight: 32, queued: 108, spilled: 0 });
  } finally {
    // The receiver answers again, then the relay stops (letting its attempts under way finish).
    hanging.release();
    await defaults.stop();
    await hanging.fake.close();
    await otherReceiver.close();
  }
});

test("a project whose receiver hangs holds its own slots only: the queue stays bounded, the rest goes to due-now jobs, another project's webhook arrives at once, and each task is delivered once", async () => {
  const relay = await startTestRelay({ timings: HANGING, promptDelivery: LIMITS });
  const sql = postgres(relay.database.url, { max: 1, onnotice: () => {} });
  const hanging = await holdingReceiver();
  const other = await addTenant(relay, 'tenant-b');
  const otherReceiver = await Receiver.start(other.webhookSecret);
  try {
    const tasks = await callbackTasks(relay.api, `${hanging.fake.url}/hook`, CALLBACKS);
    const large = JSON.stringify({ output: 'x'.repeat(CALLBACK_BYTES) });
    assert.deepEqual(new Set(await Promise.all(tasks.map((t) => postCallback(t.callbackUrl, large)))), new Set([200]));

    // 4 attempts in flight (the project's cap), 8 waiting (its queue bound), the other 18 handed to
    // their durable job, brought forward to now instead of 120 s from now.
    assert.deepEqual(relay.running.relay.prompt.stats(), { inFlight: LIMITS.inFlightPerProject, queued: LIMITS.queuedPerProject, spilled: CALLBACKS - 12 });
    await until(async () => {
      const [row] = await sql`select count(*)::int as n from pgboss.job where name = 'task.notify' and start_after < now() + interval '60 seconds'`;
      return row.n === CALLBACKS - 12;
    }, 'the spilled jobs to be due now');
    // Workers deliver them (to a receiver that hangs, so the pg-boss workers of this test relay fill up).
    await waitForEvent(hanging.fake, 'held', () => (hanging.held.length > LIMITS.inFlightPerProject ? true : undefined), 10_000, 'a spilled attempt to reach the receiver');
    const seen = hanging.fake.requests.map((r) => JSON.parse(r.text).task.id as string);
    assert.equal(new Set(seen).size, seen.length, 'no task is attempted twice at once');

    // Meanwhile another project's webhook goes out at once.
    const [theirs] = await callbackTasks(other.api, otherReceiver.url, 1);
    const sentAt = Date.now();
    assert.equal(await postCallback(theirs.callbackUrl, '{"output":"b"}'), 200);
    const [delivery] = await otherReceiver.waitForDeliveries(theirs.id, 1, 5_000);
    const took = delivery.request.at - sentAt;
    assert.ok(took < 1000, `the other project's webhook took ${took} ms behind a hanging receiver`);
    assert.equal(delivery.payload?.task.id, theirs.id, 'signed with the other project\'s secret');

    // The receiver recovers: the waiting attempts are made, and every task is delivered exactly once.
    hanging.release();
    await hanging.fake.waitForRequests(CALLBACKS, () => true, 15_000);
    await until(async () => {
      const [row] = await sql`select count(*)::int as n from tasks where project_id = 'default' and delivery_status = 'delivered' and delivery_attempts = 1`;
      return row.n === CALLBACKS;
    }, 'every delivery to be recorded as one successful attempt');
    const ids = hanging.fake.requests.map((r) => r.headers['webhook-id']);
    assert.equal(ids.length, CALLBACKS, 'one request per task');
    assert.equal(new Set(ids).size, CALLBACKS);
    assert.deepEqual(relay.running.relay.prompt.stats(), { inFlight: 0, queued: 0, spilled: CALLBACKS - 12 });
  } finally {
    hanging.release();
    await sql.end();
    await relay.stop();
    await hanging.fake.close();
    await otherReceiver.close();
  }
});

test('an attempt that waited so long it could overlap its durable job is not made here: its job is brought forward instead', async () => {
  // Fallback 4 s, attempt timeout 2 s: an attempt may start here only within 1 s of its callback.
  const quick = await startTestRelay({ timings: { deliveryTimeoutMs: 2_000, promptFallbackSeconds: 4 }, promptDelivery: { inFlightPerProject: 1 } });
  const hanging = await holdingReceiver();
  try {
    const tasks = await callbackTasks(quick.api, `${hanging.fake.url}/hook`, 3);
    for (const t of tasks) assert.equal(await postCallback(t.callbackUrl, '{"output":"a"}'), 200);
    assert.deepEqual(quick.running.relay.prompt.stats(), { inFlight: 1, queued: 2, spilled: 0 });
    // The attempt in flight times out after 2 s; by then the two waiting ones are too old to start.
    await waitForEvent(hanging.fake, 'held', () => (hanging.held.length >= 3 ? true : undefined), 10_000, 'the spilled jobs to run');
    assert.deepEqual(quick.running.relay.prompt.stats(), { inFlight: 0, queued: 0, spilled: 2 });
  } finally {
    hanging.release();
    await quick.stop();
    await hanging.fake.close();
  }
});
