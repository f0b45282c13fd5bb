/**
 * A provider may call back before its own submit answer reaches the relay (DESIGN §5). The
 * callback then completes the task, and the late submit answer loses its compare-and-set. Here the
 * late answer is a 500 with maxRetries 0, which on its own would fail the task and enqueue the
 * onComplete job: that job must not be written, or the receiver gets a second webhook that no
 * `delivery.attempt` records (issue: "a stray webhook with no recorded attempt").
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { HttpFake } from '../fakes/http-fake.ts';
import { Receiver } from '../fakes/receiver.ts';
import { startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';
import { timelineOf, waitForTimeline } from '../helpers/timeline.ts';

let relay: TestRelay;
let provider: HttpFake;
let receiver: Receiver;

before(async () => {
  relay = await startTestRelay();
  // The submit calls back first, waits for the relay's answer to that callback, then fails.
  provider = await HttpFake.start(async (req) => {
    const { webhook } = JSON.parse(req.text) as { webhook: string };
    const callback = await fetch(webhook, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"status":"succeeded"}' });
    await callback.text();
    return { status: 500, body: { error: 'submit failed after the work was done' } };
  });
  // A slow receiver: the first attempt is still in flight when a stray job would run.
  receiver = await Receiver.start(relay.webhookSecret, async () => {
    await new Promise((resolve) => setTimeout(resolve, 1500));
    return { status: 200, body: 'ok' };
  });
});
after(async () => {
  await relay.stop();
  await provider.close();
  await receiver.close();
});

test('a submit answer that loses to the callback enqueues no onComplete job: one webhook, one recorded attempt', async () => {
  const created = await relay.api('POST', '/v1/tasks', {
    targetUrl: `${provider.url}/submit`,
    body: { webhook: '{asyncqueue_callback_url}' },
    maxRetries: 0,
    onCompleteUrl: receiver.url,
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.task.id as string;

  const task = await waitForStatus(relay, id, 'completed');
  assert.equal(task.result.body, '{"status":"succeeded"}');
  // The submit's 500 arrived after the callback: recorded as late, it changed nothing.
  await waitForTimeline(relay, id, 'dispatch.late_response');
  const [jobs] = await relay.running.relay.sql<{ n: number }[]>`
    select count(*)::int as n from pgboss.job where name = 'task.notify' and data->>'taskId' = ${id}`;
  assert.equal(jobs.n, 0, 'the late answer wrote an onComplete job');

  await waitForTimeline(relay, id, 'delivery.succeeded', 15_000);
  const deliveries = await receiver.waitForDeliveries(id, 1);
  assert.equal(deliveries.length, 1);
  assert.equal(deliveries[0].payload?.task.status, 'completed');
  const attempts = (await timelineOf(relay, id)).filter((e) => e.type === 'delivery.attempt');
  assert.equal(attempts.length, 1);
  // The callback's own backup job (promptFallbackSeconds later) finds the attempt recorded.
  const [backup] = await relay.running.relay.sql<{ state: string }[]>`
    select state from pgboss.job where name = 'task.notify' and data->>'callbackHash' is not null`;
  assert.ok(backup, 'the callback wrote its backup job');
  assert.equal(receiver.deliveries.length, 1);
});
