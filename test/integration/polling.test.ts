/**
 * The pollConfig engine against local fakes replaying real provider answers
 * (shared/reference/providers.md): Runway THROTTLED → SUCCEEDED, Stability 202 → 200 with binary
 * media, polls hitting 429, templates from the submit's headers, the deadline, and 400s.
 */
import assert from 'node:assert/strict';
import { setTimeout as pause } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { HttpFake } from '../fakes/http-fake.ts';
import { falQueued } from '../fakes/providers.ts';
import { startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';
import { waitForTimeline } from '../helpers/timeline.ts';

let relay: TestRelay;
let runway: HttpFake;
let stability: HttpFake;
let custom: HttpFake;

const runwayKey = 'key_' + 'ab'.repeat(64);
const runwayId = '17f20503-6c24-4c16-946b-35dbbce2af2f';

before(async () => {
  relay = await startTestRelay();
  [runway, stability, custom] = await Promise.all([HttpFake.start(), HttpFake.start(), HttpFake.start()]);
});
after(async () => {
  await relay.stop();
  await Promise.all([runway.close(), stability.close(), custom.close()]);
});

async function events(id: string): Promise<any[]> {
  return (await relay.api('GET', `/v1/tasks/${id}/events`)).body.events;
}

test('runwayml preset: PENDING, THROTTLED, RUNNING then SUCCEEDED completes with the task object; polls carry auth and X-Runway-Version', async () => {
  const states = ['PENDING', 'THROTTLED', 'RUNNING', 'SUCCEEDED'];
  let polls = 0;
  runway.setHandler((req) => {
    if (req.method === 'POST' && req.path === '/v1/image_to_video') return { status: 200, body: { id: runwayId } };
    if (req.method === 'GET' && req.path === `/v1/tasks/${runwayId}`) {
      if (req.headers.authorization !== `Bearer ${runwayKey}` || req.headers['x-runway-version'] !== '2024-11-06') return { status: 401, body: { error: 'bad auth' } };
      const status = states[Math.min(polls++, states.length - 1)];
      const base = { id: runwayId, createdAt: '2024-06-27T19:49:32.334Z', status };
      if (status === 'RUNNING') return { status: 200, body: { ...base, progress: 0.42 } };
      if (status === 'SUCCEEDED') return { status: 200, body: { ...base, output: ['https://dnznrvs05pmza.cloudfront.net/out.mp4'] } };
      return { status: 200, body: base };
    }
    return { status: 404, body: { error: 'not found' } };
  });
  const created = await relay.api('POST', '/v1/tasks', {
    targetUrl: `${runway.url}/v1/image_to_video`,
    headers: { authorization: `Bearer ${runwayKey}`, 'X-Runway-Version': '2024-11-06' },
    body: { model: 'gen4.5', promptImage: 'https://example.com/a.jpg', promptText: 'a lighthouse', ratio: '1280:720', duration: 5 },
    provider: 'runwayml',
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(created.body.callbackUrl, undefined, 'poll-only: no token');
  assert.equal(created.body.task.pollConfig.urlTemplate, '{target.origin}/v1/tasks/{startResult.body.id}');
  await waitForStatus(relay, created.body.task.id, 'polling');
  const done = await waitForStatus(relay, created.body.task.id, 'completed');
  assert.equal(JSON.parse(done.result.body).output[0], 'https://dnznrvs05pmza.cloudfront.net/out.mp4');
  assert.equal(done.result.statusCode, 200);
  const timeline = await events(done.id);
  const attempts = timeline.filter((e) => e.type === 'poll.attempt');
  assert.deepEqual(attempts.map((e) => e.data.state), states);
  assert.deepEqual(attempts.map((e) => e.data.verdict), ['running', 'running', 'running', 'done']);
  assert.equal(timeline.find((e) => e.type === 'poll.started').data.url, `${runway.url}/v1/tasks/${runwayId}`);
  assert.ok(timeline.some((e) => e.type === 'status.changed' && e.data.to === 'polling'));
  // Polls are jobs spaced by the (scaled) interval, not a busy loop.
  const gets = runway.requests.filter((r) => r.method === 'GET');
  assert.equal(gets.length, 4);
  for (let i = 1; i < gets.length; i++) assert.ok(gets[i].at - gets[i - 1].at >= 250, 'polls are spaced by the interval');
});

test('runwayml FAILED fails the task with the provider failure', async () => {
  runway.setHandler((req) =>
    req.method === 'POST'
      ? { status: 200, body: { id: 'rw-failed' } }
      : { status: 200, body: { id: 'rw-failed', status: 'FAILED', failure: 'Content moderation rejected the prompt', failureCode: 'SAFETY.INPUT.TEXT' } },
  );
  const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${runway.url}/v1/text_to_video`, headers: { authorization: `Bearer ${runwayKey}` }, body: {}, provider: 'runwayml' });
  const failed = await waitForStatus(relay, created.body.task.id, 'failed');
  assert.deepEqual(failed.error, { code: 'provider_failed', message: 'Content moderation rejected the prompt' });
  assert.equal(JSON.parse(failed.result.body).failureCode, 'SAFETY.INPUT.TEXT');
});

test('stability-video preset: 202 in-progress, then 200 with binary video stored as base64', async () => {
  const video = Buffer.from([0x00, 0x00, 0x00, 0x18, 0x66, 0x74, 0x79, 0x70, 0x6d, 0x70, 0x34, 0x32, 0xff, 0xfe, 0x00, 0x01]);
  const id = 'a6dc6c6e20acda010fe14d71f180658f2896ed9b4ec25aa99a6ff06c796987c4';
  let polls = 0;
  stability.setHandler((req) => {
    if (req.method === 'POST') return { status: 200, body: { id } };
    if (req.path !== `/v2beta/results/${id}` || req.headers.authorization !== 'Bearer sk-test' || req.headers.accept !== 'video/*') return { status: 404, body: { id, name: 'not_found', errors: ['no such result'] } };
    if (polls++ < 2) return { status: 202, body: { id, status: 'in-progress' } };
    return { status: 200, headers: { 'content-type': 'video/mp4', 'finish-reason': 'SUCCESS', seed: '343940597' }, body: video };
  });
  const created = await relay.api('POST', '/v1/tasks', {
    targetUrl: `${stability.url}/v2beta/image-to-video`,
    headers: { authorization: 'Bearer sk-test', accept: 'application/json' },
    body: 'seed=0',
    provider: 'stability-video',
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const done = await waitForStatus(relay, created.body.task.id, 'completed');
  assert.equal(done.result.bodyEncoding, 'base64');
  assert.deepEqual(Buffer.from(done.result.body, 'base64'), video);
  assert.equal(done.result.headers['finish-reason'], 'SUCCESS');
  assert.equal(done.result.headers['content-type'], 'video/mp4');
  const attempts = (await events(done.id)).filter((e) => e.type === 'poll.attempt');
  assert.deepEqual(attempts.map((e) => e.data.statusCode), [202, 202, 200]);
});

test('stability 404 (result expired) fails the task with the provider errors', async () => {
  stability.setHandler((req) => (req.method === 'POST' ? { status: 200, body: { id: 'gone' } } : { status: 404, body: { id: 'gone', name: 'not_found', errors: ['result expired'] } }));
  const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${stability.url}/v2beta/x`, headers: { authorization: 'Bearer sk-test' }, provider: 'stability-video' });
  const failed = await waitForStatus(relay, created.body.task.id, 'failed');
  assert.deepEqual(failed.error, { code: 'poll_rejected', message: '["result expired"]', statusCode: 404 });
});

test('polls hitting 429 and 503 back off (Retry-After honoured) without failing, then complete', async () => {
  const answers = [
    { status: 429, headers: { 'retry-after': '1' }, body: { detail: 'Request was throttled. Your rate limit resets in ~1s.' } },
    { status: 503, body: 'upstream unavailable' },
    { status: 200, body: { job: { state: 'running' } } },
    { status: 200, body: { job: { state: 'done', output: { text: 'hello' } } } },
  ];
  let polls = 0;
  custom.setHandler((req) => {
    if (req.method === 'POST') return { status: 202, headers: { location: `${custom.url}/jobs/j-429` }, body: { queued: true } };
    return answers[Math.min(polls++, answers.length - 1)];
  });
  const created = await relay.api('POST', '/v1/tasks', {
    targetUrl: `${custom.url}/submit`,
    pollConfig: { urlTemplate: '{startResult.headers.location}', interval: 1, statusPath: 'job.state', doneValues: ['done'], failValues: ['error'], resultPath: 'job.output' },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const done = await waitForStatus(relay, created.body.task.id, 'completed', 20_000);
  assert.equal(done.result.body, '{"text":"hello"}');
  assert.equal(done.result.headers['content-type'], 'application/json');
  const attempts = (await events(done.id)).filter((e) => e.type === 'poll.attempt');
  assert.deepEqual(attempts.map((e) => [e.data.statusCode, e.data.verdict]), [[429, 'backoff'], [503, 'backoff'], [200, 'running'], [200, 'done']]);
  assert.ok(attempts[0].data.nextInMs >= 1000, 'Retry-After: 1 is honoured');
  assert.ok(attempts[1].data.nextInMs > attempts[2].data.nextInMs, 'consecutive failures back off further than a normal interval');
  const gets = custom.requests.filter((r) => r.method === 'GET' && r.path === '/jobs/j-429');
  assert.ok(gets[1].at - gets[0].at >= 950, 'the second poll waited for Retry-After');
});

test('maxDuration ends a poll that never finishes as timeout', async () => {
  custom.setHandler((req) => (req.method === 'POST' ? { status: 200, body: { id: 'slow' } } : { status: 200, body: { status: 'running' } }));
  const created = await relay.api('POST', '/v1/tasks', {
    targetUrl: `${custom.url}/slow`,
    pollConfig: { urlTemplate: `${custom.url}/status/{startResult.body.id}`, interval: 1, statusPath: 'status', doneValues: ['done'], maxDuration: 2 },
  });
  const timedOut = await waitForStatus(relay, created.body.task.id, 'timeout', 20_000);
  assert.equal(timedOut.error.code, 'timeout');
  assert.match(timedOut.error.message, /polling deadline/);
  assert.ok(custom.requests.some((r) => r.path === '/status/slow'));
});

test('a waiting fal task whose pollConfig.maxDuration runs out says so in its timeout error', async () => {
  custom.setHandler((req) => (req.method === 'POST' ? { status: 200, body: falQueued(custom.url, 'fa1dead1-660e-45cd-bd63-580e4f2a94cc') } : { status: 202, body: { status: 'IN_QUEUE' } }));
  const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${custom.url}/fal-ai/flux/dev`, headers: { authorization: 'Key fal-test' }, body: { prompt: 'x' }, provider: 'fal', pollConfig: { maxDuration: 1 }, maxWaitTime: 3600 });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  await waitForStatus(relay, created.body.task.id, 'waiting');
  const timedOut = await waitForStatus(relay, created.body.task.id, 'timeout');
  assert.deepEqual(timedOut.error, { code: 'timeout', message: 'No callback or signal arrived, and the fallback poll did not see the end, within pollConfig.maxDuration (1 s)' });
});

test('a submit answer without the referenced field fails the task at once, with the answer as result', async () => {
  custom.setHandler(() => ({ status: 200, body: { nothing: true } }));
  const created = await relay.api('POST', '/v1/tasks', {
    targetUrl: `${custom.url}/noid`,
    pollConfig: { urlTemplate: `${custom.url}/status/{startResult.body.id}`, statusPath: 'status', doneValues: ['done'] },
  });
  const failed = await waitForStatus(relay, created.body.task.id, 'failed');
  assert.deepEqual(failed.error, { code: 'poll_unresolved', message: 'pollConfig.urlTemplate: the submit answer has no {startResult.body.id}' });
  assert.equal(failed.result.body, '{"nothing":true}');
});

test('a submit answer without a field the resultUrlTemplate references fails the task at once, before any poll', async () => {
  custom.setHandler(() => ({ status: 200, body: { id: 'no-result-url' } }));
  const created = await relay.api('POST', '/v1/tasks', {
    targetUrl: `${custom.url}/noresult`,
    pollConfig: { urlTemplate: `${custom.url}/status/{startResult.body.id}`, resultUrlTemplate: '{startResult.body.response_url}', statusPath: 'status', doneValues: ['done'] },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const failed = await waitForStatus(relay, created.body.task.id, 'failed');
  assert.deepEqual(failed.error, { code: 'poll_unresolved', message: 'pollConfig.resultUrlTemplate: the submit answer has no {startResult.body.response_url}' });
  assert.equal(failed.result.body, '{"id":"no-result-url"}');
  assert.equal((await events(failed.id)).filter((e) => e.type.startsWith('poll.')).length, 0, 'no poll was started');
  assert.equal(custom.requests.filter((r) => r.path === '/status/no-result-url').length, 0);
});

test('template values are percent-encoded inside a URL: an id cannot add path segments', async () => {
  custom.setHandler((req) => (req.method === 'POST' ? { status: 200, body: { id: '../admin?x=1' } } : { status: 200, body: { status: 'done' } }));
  const created = await relay.api('POST', '/v1/tasks', {
    targetUrl: `${custom.url}/enc`,
    pollConfig: { urlTemplate: `${custom.url}/status/{startResult.body.id}`, statusPath: 'status', doneValues: ['done'] },
  });
  await waitForStatus(relay, created.body.task.id, 'completed');
  const poll = custom.requests.find((r) => r.method === 'GET' && r.url.pathname.startsWith('/status/..'));
  assert.equal(poll?.url.pathname, '/status/..%2Fadmin%3Fx%3D1');
});

test('GET /v1/providers lists every preset with its full pollConfig, callback placement and cancel', async () => {
  const answer = await fetch(`${relay.baseUrl}/v1/providers`);
  assert.equal(answer.status, 200);
  const { providers } = (await answer.json()) as { providers: any[] };
  assert.deepEqual(providers.map((p) => p.id), ['fal', 'replicate', 'runwayml', 'luma', 'stability-video', 'elevenlabs-dubbing']);
  const byId = Object.fromEntries(providers.map((p) => [p.id, p]));
  assert.deepEqual(byId.fal.callback, {
    placement: { in: 'query', name: 'fal_webhook' },
    classify: { statusPath: 'status', doneValues: ['OK'], failValues: ['ERROR'], errorPath: 'error' },
    signature: 'fal',
    resultMissing: { emptyPath: 'payload', markerPath: 'payload_error' },
    requestIdPath: 'request_id',
  });
  assert.equal(byId.fal.pollRole, 'fallback');
  assert.deepEqual(byId.fal.credentialOrigins, ['https://queue.fal.run']);
  assert.deepEqual(byId.replicate.credentialOrigins, ['https://api.replicate.com']);
  assert.deepEqual(byId.runwayml.credentialOrigins, []);
  assert.equal(byId.fal.pollConfig.resultUrlTemplate, '{startResult.body.response_url}');
  assert.deepEqual(byId.fal.cancel, { method: 'PUT', urlTemplate: '{startResult.body.cancel_url}' });
  assert.deepEqual(byId.replicate.cancel, { method: 'POST', urlTemplate: '{startResult.body.urls.cancel}' });
  assert.equal(byId.runwayml.callback, null);
  assert.equal(byId.runwayml.pollRole, 'primary');
  assert.deepEqual(byId['stability-video'].pollConfig.statusCodes, { running: [202], done: [200] });
  assert.equal(byId['stability-video'].cancel, null);
  assert.equal(byId.luma.callback.placement.name, 'callback_url');
  assert.equal(byId['elevenlabs-dubbing'].pollConfig.doneValues[0], 'dubbed');
  const listed = await relay.api('GET', '/v1/tasks?provider=runwayml&limit=100');
  assert.ok(listed.body.tasks.length >= 2 && listed.body.tasks.every((t: any) => t.provider === 'runwayml'), 'tasks are filterable by provider');
});

test('elevenlabs-dubbing preset: dubbing, then dubbed completes with the metadata', async () => {
  let polls = 0;
  custom.setHandler((req) => {
    if (req.method === 'POST') return { status: 200, body: { dubbing_id: '21m00Tcm4TlvDq8ikWAM', expected_duration_sec: 12 } };
    if (req.path !== '/v1/dubbing/21m00Tcm4TlvDq8ikWAM' || req.headers['xi-api-key'] !== 'xi-test') return { status: 401, body: { detail: 'bad key' } };
    return { status: 200, body: { dubbing_id: '21m00Tcm4TlvDq8ikWAM', name: 'clip', status: polls++ < 1 ? 'dubbing' : 'dubbed', target_languages: ['es'] } };
  });
  const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${custom.url}/v1/dubbing`, headers: { 'xi-api-key': 'xi-test' }, body: 'source_url=https://example.com/a.mp4&target_lang=es', provider: 'elevenlabs-dubbing' });
  const done = await waitForStatus(relay, created.body.task.id, 'completed');
  assert.equal(JSON.parse(done.result.body).status, 'dubbed');
  assert.deepEqual(JSON.parse(done.result.body).target_languages, ['es']);
});

test('a poll job replayed after the task finished does nothing', async () => {
  let polls = 0;
  custom.setHandler((req) => (req.method === 'POST' ? { status: 200, body: { id: 'replay' } } : { status: 200, body: { status: polls++ < 1 ? 'running' : 'done' } }));
  const created = await relay.api('POST', '/v1/tasks', {
    targetUrl: `${custom.url}/replay`,
    pollConfig: { urlTemplate: `${custom.url}/status/{startResult.body.id}`, interval: 1, statusPath: 'status', doneValues: ['done'] },
  });
  await waitForStatus(relay, created.body.task.id, 'completed');
  const before = custom.requests.filter((r) => r.path === '/status/replay').length;
  assert.equal(before, 2);
  const { boss } = relay.running;
  const jobId = await boss.send('task.poll', { taskId: created.body.task.id, poll: 0, errors: 0 });
  assert.ok(jobId);
  for (;;) {
    const job = await boss.getJobById('task.poll', jobId);
    if (job?.state === 'completed') break;
    assert.ok(job && job.state !== 'failed', `the replayed job ended ${job?.state}`);
    await relay.api('GET', `/v1/tasks/${created.body.task.id}?wait=0`); // paces the re-read by a round trip
  }
  assert.equal(custom.requests.filter((r) => r.path === '/status/replay').length, before, 'no poll was made');
  assert.equal((await events(created.body.task.id)).filter((e) => e.type === 'poll.attempt').length, 2);
});

/** Waits for a pg-boss job to finish, re-reading it at a steady pace; fails if it failed. */
async function jobFinished(jobId: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await relay.running.boss.getJobById('task.poll', jobId);
    if (job?.state === 'completed') return;
    assert.ok(job && job.state !== 'failed', `the job ended ${job?.state}`);
    assert.ok(Date.now() < deadline, `job ${jobId} still ${job.state} after ${timeoutMs} ms`);
    await pause(100);
  }
}

test('poll jobs replayed while the task is still polling: a stale one polls nothing, a repeat of the current one leaves a single chain', async () => {
  let finish = false;
  custom.setHandler((req) => (req.method === 'POST' ? { status: 200, body: { id: 'replay-live' } } : { status: 200, body: { status: finish ? 'done' : 'running' } }));
  const status = (r: { path: string }) => r.path === '/status/replay-live';
  const created = await relay.api('POST', '/v1/tasks', {
    targetUrl: `${custom.url}/replay-live`,
    // 40 s scaled by 0.05: 2 s between polls, the window in which the replays run.
    pollConfig: { urlTemplate: `${custom.url}/status/{startResult.body.id}`, interval: 40, initialDelay: 1, statusPath: 'status', doneValues: ['done'] },
  });
  const { id } = created.body.task;
  const { boss } = relay.running;
  const { sql } = relay.running.relay;
  const pollCount = async () => (await sql<{ n: number }[]>`select poll_count as n from tasks where id = ${id}`)[0].n;
  await waitForTimeline(relay, id, 'poll.attempt');
  assert.equal(await pollCount(), 1);

  // Poll 0 again (a job pg-boss redelivered): the count has passed it, nothing is fetched or rewound.
  const stale = await boss.send('task.poll', { taskId: id, poll: 0, errors: 0 });
  await jobFinished(stale!);
  assert.ok((await pollCount()) >= 1, 'the poll count never rewinds');

  // Poll 1 twice (the scheduled job and a replay): whichever runs first counts; the other is stale.
  const repeat = await boss.send('task.poll', { taskId: id, poll: 1, errors: 0 });
  await jobFinished(repeat!);
  finish = true;
  await waitForStatus(relay, id, 'completed');
  const jobs = await sql<{ id: string; poll: number; state: string }[]>`
    select id, (data->>'poll')::int as poll, state from pgboss.job where name = 'task.poll' and data->>'taskId' = ${id}`;
  for (const job of jobs) await jobFinished(job.id);

  const attempts = (await events(id)).filter((e) => e.type === 'poll.attempt');
  const n = attempts.length;
  assert.deepEqual(attempts.map((e) => e.data.poll), Array.from({ length: n }, (_, i) => i + 1), 'one chain: polls 1..n, none twice');
  assert.equal(await pollCount(), n - 1, 'the final poll finished the task without counting another');
  assert.equal(custom.requests.filter(status).length, n, 'every status request is a recorded poll: no replay fetched on the side');
  assert.ok(jobs.filter((j) => j.poll === 1).length === 2 && jobs.filter((j) => j.poll === 0).length === 2, 'both replays ran beside the scheduled jobs');
});
