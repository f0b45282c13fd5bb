/**
 * Every job's payload is parsed against its queue's schema (jobs/queues.ts) before its handler
 * runs: a malformed job is failed for good with the reason, and the worker goes on with the rest.
 */
import assert from 'node:assert/strict';
import { setTimeout as pause } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { parsePayload } from '../../src/jobs/queues.ts';
import { HttpFake } from '../fakes/http-fake.ts';
import { startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';

let relay: TestRelay;
let target: HttpFake;

before(async () => {
  relay = await startTestRelay();
  target = await HttpFake.start();
  target.setHandler(() => ({ status: 200, body: { ok: true } }));
});

after(async () => {
  await relay?.stop();
  await target?.close();
});

/** The job's end state, re-read at a steady pace until it leaves created/active/retry. */
async function settled(queue: string, id: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await relay.running.boss.getJobById(queue, id);
    if (job && (job.state === 'completed' || job.state === 'failed')) return job;
    assert.ok(Date.now() < deadline, `job ${id} still ${job?.state} after ${timeoutMs} ms`);
    await pause(50);
  }
}

test('the catalog parses each payload, naming what is wrong', () => {
  assert.deepEqual(parsePayload('task.dispatch', { taskId: '0190a4b2-8c3e-7000-8000-000000000001', extra: 1 }), {
    ok: true,
    payload: { taskId: '0190a4b2-8c3e-7000-8000-000000000001' },
  });
  const bad = parsePayload('task.poll', { taskId: 'nope', poll: -1 });
  assert.equal(bad.ok, false);
  assert.match(!bad.ok ? bad.reason : '', /taskId: Invalid UUID.*poll: Too small.*errors: Invalid input/);
  assert.equal(parsePayload('task.notify', { taskId: '0190a4b2-8c3e-7000-8000-000000000001', generation: 0, attempt: 1 }).ok, true);
  assert.equal(parsePayload('task.notify', { callbackHash: 'a'.repeat(64), ref: '0190a4b2-8c3e-7000-8000-000000000001', generation: 0, attempt: 1 }).ok, true);
  assert.equal(parsePayload('task.notify', { generation: 0, attempt: 1 }).ok, false);
  assert.equal(parsePayload('task.provider_cancel', { taskId: '0190a4b2-8c3e-7000-8000-000000000001', reason: 'bored' }).ok, false);
});

test('a malformed job is failed once with the reason, not retried; the worker goes on', async () => {
  const { boss } = relay.running;
  const malformed = [
    ['task.dispatch', { taskId: 'not-a-task' }, /malformed task\.dispatch payload: taskId: Invalid UUID/],
    ['task.notify', { taskId: '0190a4b2-8c3e-7000-8000-000000000001' }, /malformed task\.notify payload: .*generation/],
    ['task.poll', null, /malformed task\.poll payload/],
  ] as const;
  const ids = await Promise.all(malformed.map(([queue, data]) => boss.send(queue, data as object)));
  for (const [i, [queue, , reason]] of malformed.entries()) {
    const job = await settled(queue, ids[i]!);
    assert.equal(job.state, 'failed', `${queue} ended ${job.state}`);
    assert.equal(job.retryCount, 0, `${queue} was retried`);
    assert.match(JSON.stringify(job.output), reason);
  }
  // The same workers still run well-formed jobs.
  const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${target.url}/after` });
  assert.equal(created.status, 201);
  await waitForStatus(relay, created.body.task.id, 'completed');
});
