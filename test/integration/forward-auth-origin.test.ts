/**
 * forwardAuth sends the task's credential headers with polls, result fetches and provider
 * cancels. Their URLs come from the provider's submit answer, so they may point anywhere: the
 * credentials go only to the target's origin (or a host the preset knows for the provider), and
 * the timeline says when and why a call went without them. Two loopback fakes on two ports are
 * two origins.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { HttpFake } from '../fakes/http-fake.ts';
import { startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';
import { waitForTimeline } from '../helpers/timeline.ts';

let relay: TestRelay;
let provider: HttpFake;
let elsewhere: HttpFake;
const KEY = 'sk-forward-only-to-the-provider';

before(async () => {
  relay = await startTestRelay();
  [provider, elsewhere] = await Promise.all([HttpFake.start(), HttpFake.start()]);
});
after(async () => {
  await relay.stop();
  await Promise.all([provider.close(), elsewhere.close()]);
});

const events = async (id: string): Promise<any[]> => (await relay.api('GET', `/v1/tasks/${id}/events`)).body.events;

test('a status URL and a result URL on another origin are polled without the credentials, and the timeline says why', async () => {
  provider.setHandler((req) =>
    req.path === '/submit'
      ? { status: 200, body: { id: 'j1', status_url: `${elsewhere.url}/status/j1`, same_origin_result: `${provider.url}/result/j1` } }
      : { status: 200, body: { output: 'from the provider' } });
  elsewhere.setHandler((req) => (req.path === '/status/j1' ? { status: 200, body: { status: 'done', result_url: `${elsewhere.url}/result/j1` } } : { status: 200, body: { output: 'elsewhere' } }));
  const created = await relay.api('POST', '/v1/tasks', {
    targetUrl: `${provider.url}/submit`,
    headers: { 'x-api-key': KEY, accept: 'application/json' },
    pollConfig: {
      urlTemplate: '{startResult.body.status_url}',
      resultUrlTemplate: '{pollResult.body.result_url}',
      statusPath: 'status',
      doneValues: ['done'],
      forwardAuth: true,
      interval: 1,
      initialDelay: 0,
      headers: { 'x-poll': 'static' },
    },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  await waitForStatus(relay, created.body.task.id, 'completed');

  const [submit] = provider.requests.filter((r) => r.path === '/submit');
  assert.equal(submit.headers['x-api-key'], KEY, 'the target itself gets the key');
  const calls = elsewhere.requests.filter((r) => r.path.endsWith('/j1'));
  assert.deepEqual(calls.map((r) => r.path), ['/status/j1', '/result/j1']);
  for (const call of calls) {
    assert.equal(call.headers['x-api-key'], undefined, `${call.path} got the task's key`);
    assert.equal(call.headers['x-poll'], 'static', 'static poll headers are not credentials: sent');
  }
  const timeline = await events(created.body.task.id);
  const withheld = `${elsewhere.url} is neither the target's origin nor a host of the task's provider`;
  assert.equal(timeline.find((e) => e.type === 'poll.attempt').data.credentialsWithheld, withheld);
  assert.equal(timeline.find((e) => e.type === 'poll.result_fetch').data.credentialsWithheld, withheld);
});

test('a same-origin status URL gets the credentials, and no note', async () => {
  provider.setHandler((req) =>
    req.path === '/submit2' ? { status: 200, body: { status_url: `${provider.url}/status/j2` } } : { status: 200, body: { status: 'done' } });
  const created = await relay.api('POST', '/v1/tasks', {
    targetUrl: `${provider.url}/submit2`,
    headers: { 'x-api-key': KEY },
    pollConfig: { urlTemplate: '{startResult.body.status_url}', statusPath: 'status', doneValues: ['done'], forwardAuth: true, interval: 1, initialDelay: 0 },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  await waitForStatus(relay, created.body.task.id, 'completed');
  const [poll] = provider.requests.filter((r) => r.path === '/status/j2');
  assert.equal(poll.headers['x-api-key'], KEY);
  const attempt = (await events(created.body.task.id)).find((e) => e.type === 'poll.attempt');
  assert.equal('credentialsWithheld' in attempt.data, false);
});

test('a cancel URL on another origin is called without the credentials', async () => {
  provider.setHandler(() => ({ status: 200, body: { status_url: `${provider.url}/status/j3`, cancel_url: `${elsewhere.url}/cancel/j3` } }));
  elsewhere.setHandler(() => ({ status: 202, body: { cancelled: true } }));
  const created = await relay.api('POST', '/v1/tasks', {
    targetUrl: `${provider.url}/submit3`,
    headers: { authorization: `Bearer ${KEY}` },
    pollConfig: {
      urlTemplate: '{startResult.body.status_url}',
      statusPath: 'status',
      doneValues: ['done'],
      forwardAuth: true,
      interval: 3600,
      cancelUrlTemplate: '{startResult.body.cancel_url}',
      cancelMethod: 'DELETE',
    },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  await waitForStatus(relay, created.body.task.id, 'polling');
  assert.equal((await relay.api('POST', `/v1/tasks/${created.body.task.id}/cancel`)).status, 200);
  const attempt = await waitForTimeline(relay, created.body.task.id, 'provider.cancel_attempt');
  assert.equal(attempt.data.statusCode, 202);
  assert.equal(attempt.data.credentialsWithheld, `${elsewhere.url} is neither the target's origin nor a host of the task's provider`);
  const [cancel] = elsewhere.requests.filter((r) => r.path === '/cancel/j3');
  assert.equal(cancel.method, 'DELETE');
  assert.equal(cancel.headers.authorization, undefined);
});
