/**
 * Provider-aware callbacks (presets fal, replicate, luma and a task's own callbackConfig), and the
 * fallback poll that finishes a task whose webhook never comes.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { HttpFake } from '../fakes/http-fake.ts';
import { falErrorWebhook, falOkWebhook, falQueued, lumaGeneration, replicatePrediction } from '../fakes/providers.ts';
import { Receiver } from '../fakes/receiver.ts';
import { startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';
import { waitForTimeline } from '../helpers/timeline.ts';

let relay: TestRelay;
let provider: HttpFake;
let receiver: Receiver;

before(async () => {
  // Three fallback steps (1 s, 1.5 s, 2 s once scaled) so the backoff between polls is visible.
  relay = await startTestRelay({ timings: { fallbackPollSeconds: [20, 30, 40] } });
  provider = await HttpFake.start();
  receiver = await Receiver.start(relay.webhookSecret);
});
after(async () => {
  await relay.stop();
  await provider.close();
  await receiver.close();
});

async function post(url: string, body: string) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}
const timeline = async (id: string): Promise<any[]> => (await relay.api('GET', `/v1/tasks/${id}/events`)).body.events;
const task = async (id: string) => (await relay.api('GET', `/v1/tasks/${id}`)).body.task;

test('replicate: the relay puts the webhook in the body; starting and processing are progress (202), succeeded completes, a repeat is a duplicate', async () => {
  provider.setHandler((req) => (req.method === 'POST' ? { status: 201, body: replicatePrediction(provider.url, 'starting', { webhook: JSON.parse(req.text).webhook }) } : { status: 200, body: replicatePrediction(provider.url, 'processing') }));
  const created = await relay.api('POST', '/v1/tasks', {
    targetUrl: `${provider.url}/v1/models/black-forest-labs/flux-schnell/predictions`,
    headers: { authorization: 'Bearer r8_test' },
    body: { input: { prompt: 'a lighthouse at dawn' }, webhook_events_filter: ['completed'] },
    provider: 'replicate',
    onCompleteUrl: receiver.url,
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const { id } = created.body.task;
  assert.equal(JSON.parse(created.body.task.body).webhook, '{asyncqueue_callback_url}');
  assert.deepEqual(created.body.task.callbackConfig, { statusPath: 'status', doneValues: ['succeeded'], failValues: ['failed', 'canceled', 'aborted'], errorPath: 'error' });
  const [submit] = await provider.waitForRequests(1, (r) => r.method === 'POST' && r.path.endsWith('/predictions'));
  const webhook = JSON.parse(submit.text).webhook;
  assert.equal(webhook, created.body.callbackUrl);
  await waitForStatus(relay, id, 'waiting');

  const starting = await post(webhook, JSON.stringify(replicatePrediction(provider.url, 'starting')));
  assert.equal(starting.status, 202);
  assert.equal(starting.body.task.status, 'waiting');
  const processing = await post(webhook, JSON.stringify(replicatePrediction(provider.url, 'processing', { logs: 'step 1/4' })));
  assert.equal(processing.status, 202);
  assert.equal((await task(id)).status, 'waiting');

  const succeeded = JSON.stringify(replicatePrediction(provider.url, 'succeeded', { output: ['https://replicate.delivery/xezq/out-0.webp'] }));
  const done = await post(webhook, succeeded);
  assert.equal(done.status, 200);
  assert.equal(done.body.task.status, 'completed');
  assert.equal((await task(id)).result.body, succeeded);
  assert.equal((await post(webhook, succeeded)).status, 200, 'Replicate retrying the same webhook gets 200');
  const other = await post(webhook, JSON.stringify(replicatePrediction(provider.url, 'succeeded', { output: ['other'] })));
  assert.equal(other.status, 409);

  const [delivery] = await receiver.waitForDeliveries(id);
  assert.equal(delivery.payload?.event, 'task.completed');
  const types = (await timeline(id)).map((e) => e.type);
  assert.deepEqual(types.filter((t) => t.startsWith('callback.')), ['callback.progress', 'callback.progress', 'callback.accepted', 'callback.duplicate', 'callback.rejected']);
  const progress = (await timeline(id)).filter((e) => e.type === 'callback.progress');
  assert.deepEqual(progress.map((e) => e.data.state), ['starting', 'processing']);
});

test('replicate failed / canceled / aborted fail the task with the provider error', async () => {
  for (const status of ['failed', 'canceled', 'aborted']) {
    provider.setHandler(() => ({ status: 201, body: replicatePrediction(provider.url, 'starting') }));
    const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/v1/predictions`, body: { version: 'v1', input: {} }, provider: 'replicate', onCompleteUrl: receiver.url });
    await waitForStatus(relay, created.body.task.id, 'waiting');
    const error = status === 'failed' ? 'CUDA out of memory' : null;
    const answer = await post(created.body.callbackUrl, JSON.stringify(replicatePrediction(provider.url, status, { error })));
    assert.equal(answer.status, 200);
    assert.equal(answer.body.task.status, 'failed');
    assert.deepEqual((await task(created.body.task.id)).error, { code: 'provider_failed', message: error ?? `Provider reported status = ${status}` });
    const [delivery] = await receiver.waitForDeliveries(created.body.task.id);
    assert.equal(delivery.payload?.event, 'task.failed');
  }
});

test('fal: fal_webhook is added to the URL; an ERROR webhook fails the task with fal\'s error; the duplicate is answered 200', async () => {
  provider.setHandler(() => ({ status: 200, body: falQueued(provider.url) }));
  const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/fal-ai/flux/dev`, headers: { authorization: 'Key fal-test' }, body: { prompt: 'x' }, provider: 'fal' });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(created.body.task.targetUrl, `${provider.url}/fal-ai/flux/dev?fal_webhook={asyncqueue_callback_url}`);
  const [submit] = await provider.waitForRequests(1, (r) => r.path === '/fal-ai/flux/dev');
  assert.equal(submit.url.searchParams.get('fal_webhook'), created.body.callbackUrl);
  await waitForStatus(relay, created.body.task.id, 'waiting');
  const failed = await post(created.body.callbackUrl, falErrorWebhook());
  assert.equal(failed.status, 200);
  assert.equal(failed.body.task.status, 'failed');
  const stored = await task(created.body.task.id);
  assert.deepEqual(stored.error, { code: 'provider_failed', message: 'Invalid status code: 422' });
  assert.equal(stored.result.body, falErrorWebhook());
  const again = await post(created.body.callbackUrl, falErrorWebhook());
  assert.equal(again.status, 200);
  assert.equal(again.body.task.status, 'failed');
  assert.deepEqual((await timeline(created.body.task.id)).filter((e) => e.type.startsWith('callback.')).map((e) => e.type), ['callback.accepted', 'callback.duplicate']);
});

test('luma: callback_url in the body; dreaming is progress, completed completes', async () => {
  provider.setHandler(() => ({ status: 201, body: lumaGeneration('queued') }));
  const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/dream-machine/v1/generations/video`, body: { model: 'ray-2', prompt: 'teddy' }, provider: 'luma' });
  const [submit] = await provider.waitForRequests(1, (r) => r.path === '/dream-machine/v1/generations/video');
  assert.equal(JSON.parse(submit.text).callback_url, created.body.callbackUrl);
  await waitForStatus(relay, created.body.task.id, 'waiting');
  assert.equal((await post(created.body.callbackUrl, JSON.stringify(lumaGeneration('dreaming')))).status, 202);
  const done = await post(created.body.callbackUrl, JSON.stringify(lumaGeneration('completed')));
  assert.equal(done.status, 200);
  assert.equal(JSON.parse((await task(created.body.task.id)).result.body).assets.video, 'https://storage.cdn-luma.com/dream/video.mp4');
  // Luma's dreaming callback retried after the end: stale, answered 200 (no retry, no rejection).
  const stale = await post(created.body.callbackUrl, JSON.stringify(lumaGeneration('dreaming')));
  assert.equal(stale.status, 200);
  assert.equal(stale.body.task.status, 'completed');
  const types = (await timeline(created.body.task.id)).filter((e) => e.type.startsWith('callback.'));
  assert.deepEqual(types.map((e) => e.type), ['callback.progress', 'callback.accepted', 'callback.superseded']);
  assert.deepEqual([types[2].data.status, types[2].data.verdict, types[2].data.state], ['completed', 'progress', 'dreaming']);
});

test('callbackConfig without a preset: progress, then a failure value fails with the message at errorPath', async () => {
  provider.setHandler(() => ({ status: 202, body: { accepted: true } }));
  const created = await relay.api('POST', '/v1/tasks', {
    targetUrl: `${provider.url}/custom`,
    body: { hook: '{asyncqueue_callback_url}' },
    callbackConfig: { statusPath: 'job.state', doneValues: ['ok'], failValues: ['bad'], errorPath: 'job.reason' },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  await waitForStatus(relay, created.body.task.id, 'waiting');
  assert.equal((await post(created.body.callbackUrl, '{"job":{"state":"running"}}')).status, 202);
  assert.equal((await post(created.body.callbackUrl, 'not json')).status, 202, 'an unreadable body is not a result');
  const failed = await post(created.body.callbackUrl, '{"job":{"state":"bad","reason":"quota exceeded"}}');
  assert.equal(failed.status, 200);
  assert.equal(failed.body.task.status, 'failed');
  assert.deepEqual((await task(created.body.task.id)).error, { code: 'provider_failed', message: 'quota exceeded' });
});

test('fal fallback poll: the webhook never comes, the poll sees COMPLETED, fetches response_url and completes; the late webhook is recorded as superseded', async () => {
  const requestId = 'c0ffee00-660e-45cd-bd63-580e4f2a94cc';
  const output = { images: [{ url: 'https://v3.fal.media/files/lion/polled.png', content_type: 'image/png' }], seed: 42 };
  let statusPolls = 0;
  provider.setHandler((req) => {
    if (req.method === 'POST') return { status: 200, body: falQueued(provider.url, requestId) };
    if (req.headers.authorization !== 'Key fal-test') return { status: 401, body: { detail: 'Unauthorized' } };
    if (req.path.endsWith('/status')) {
      const states = ['IN_QUEUE', 'IN_PROGRESS', 'COMPLETED'];
      const status = states[Math.min(statusPolls++, 2)];
      return { status: 200, body: { status, request_id: requestId, ...(status === 'IN_QUEUE' ? { queue_position: 0 } : { logs: [] }) } };
    }
    return { status: 200, body: output };
  });
  const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/fal-ai/flux/dev`, headers: { authorization: 'Key fal-test' }, body: { prompt: 'x' }, provider: 'fal', onCompleteUrl: receiver.url });
  const { id } = created.body.task;
  const done = await waitForStatus(relay, id, 'completed', 20_000);
  assert.deepEqual(JSON.parse(done.result.body), output);
  const events = await timeline(id);
  const started = events.find((e) => e.type === 'poll.started');
  assert.equal(started.data.schedule, 'fallback');
  assert.equal(started.data.firstInMs, 1000, 'the first fallback poll waits (20 s scaled by 0.05)');
  const polls = events.filter((e) => e.type === 'poll.attempt');
  assert.deepEqual(polls.map((e) => e.data.state), ['IN_QUEUE', 'IN_PROGRESS', 'COMPLETED']);
  assert.deepEqual(polls.map((e) => e.data.nextInMs), [1500, 2000, undefined], 'fallback polls back off; the last one finished the task');
  assert.equal(events.find((e) => e.type === 'poll.result_fetch').data.statusCode, 200);
  const [delivery] = await receiver.waitForDeliveries(id);
  assert.equal(delivery.payload?.event, 'task.completed');

  // fal's webhook finally arrives: the poll's result stands; fal is told 200 so it stops retrying.
  const late = await post(created.body.callbackUrl, falOkWebhook(requestId));
  assert.equal(late.status, 200);
  assert.deepEqual(late.body, { task: { id, status: 'completed' } });
  assert.equal((await task(id)).result.body, done.result.body, 'the poll\'s result stands');
  const superseded = (await timeline(id)).find((e) => e.type === 'callback.superseded');
  assert.equal(superseded.data.verdict, 'success');
  assert.equal(superseded.data.body, falOkWebhook(requestId));
});

test('fal fallback poll refused by the status URL (401: the task carries no fal key) stops polling; the task keeps waiting and the webhook completes it', async () => {
  const requestId = 'deadbeef-660e-45cd-bd63-580e4f2a94cc';
  provider.setHandler((req) => {
    if (req.method === 'POST') return { status: 200, body: falQueued(provider.url, requestId) };
    return req.headers.authorization === 'Key fal-test' ? { status: 200, body: { status: 'IN_PROGRESS', request_id: requestId } } : { status: 401, body: { detail: 'Unauthorized' } };
  });
  // The credentials are on the fal endpoint's allow-list upstream, not in the task: polls get 401.
  const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/fal-ai/flux/dev`, body: { prompt: 'x' }, provider: 'fal' });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const { id } = created.body.task;
  const stopped = await waitForTimeline(relay, id, 'poll.stopped', 20_000);
  assert.deepEqual(stopped.data.error, { code: 'poll_rejected', message: 'Unauthorized', statusCode: 401 });
  const polled = await task(id);
  assert.equal(polled.status, 'waiting', 'a status URL the relay may not read says nothing of the job');
  assert.equal(polled.error, null);
  const attempts = (await timeline(id)).filter((e) => e.type === 'poll.attempt');
  assert.deepEqual(attempts.map((e) => [e.data.statusCode, e.data.verdict]), [[401, 'failed']]);
  const [jobs] = await relay.running.relay.sql<{ all: number; pending: number }[]>`
    select count(*)::int as all, count(*) filter (where state in ('created', 'retry', 'active'))::int as pending
    from pgboss.job where name = 'task.poll' and data->>'taskId' = ${id}`;
  assert.deepEqual(jobs, { all: 1, pending: 0 }, 'the one poll made no next poll job');

  const done = await post(created.body.callbackUrl, falOkWebhook(requestId));
  assert.equal(done.status, 200);
  assert.equal(done.body.task.status, 'completed');
  assert.equal((await task(id)).result.body, falOkWebhook(requestId));
});

test('fal OK webhook with payload null and payload_error: 202, and an immediate poll fetches the result from response_url', async () => {
  // Fallback polls far off (10 min scaled to 30 s): only the poll the webhook asks for can finish in time.
  const own = await startTestRelay({ timings: { fallbackPollSeconds: [600] } });
  try {
    const requestId = 'deadbeef-660e-45cd-bd63-580e4f2a94cc';
    const output = { video: { url: 'https://v3.fal.media/files/lion/clip.mp4' }, frames: 120 };
    provider.setHandler((req) => {
      if (req.method === 'POST') return { status: 200, body: falQueued(provider.url, requestId) };
      if (req.path.endsWith('/status')) return { status: 200, body: { status: 'COMPLETED', request_id: requestId, logs: [] } };
      return { status: 200, body: output };
    });
    const created = await own.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/fal-ai/video`, headers: { authorization: 'Key fal-test' }, body: { prompt: 'x' }, provider: 'fal' });
    assert.equal(created.status, 201);
    const { id } = created.body.task;
    await waitForStatus(own, id, 'waiting');
    const webhook = JSON.stringify({ request_id: requestId, gateway_request_id: requestId, status: 'OK', payload: null, payload_error: 'Response payload is not JSON serializable' });
    const answer = await post(created.body.callbackUrl, webhook);
    assert.equal(answer.status, 202);
    assert.equal(answer.body.task.status, 'waiting');
    const done = await waitForStatus(own, id, 'completed', 10_000);
    assert.deepEqual(JSON.parse(done.result.body), output, 'the result is the body of response_url, not the webhook');
    const events = (await own.api('GET', `/v1/tasks/${id}/events`)).body.events;
    const progress = events.find((e: any) => e.type === 'callback.progress');
    assert.equal(progress.data.resultFetchedByPoll, true);
    assert.deepEqual(events.filter((e: any) => e.type === 'poll.attempt').map((e: any) => e.data.state), ['COMPLETED']);
    assert.equal(events.find((e: any) => e.type === 'poll.result_fetch').data.statusCode, 200);
  } finally {
    await own.stop();
  }
});
