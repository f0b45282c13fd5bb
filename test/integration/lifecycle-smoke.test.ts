import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { HttpFake } from '../fakes/http-fake.ts';
import { Receiver } from '../fakes/receiver.ts';
import { startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';

let relay: TestRelay;
let provider: HttpFake;
let receiver: Receiver;

before(async () => {
  relay = await startTestRelay();
  provider = await HttpFake.start(() => ({ status: 200, body: { id: 'pred_1', status: 'starting' } }));
  receiver = await Receiver.start(relay.webhookSecret);
});
after(async () => {
  await relay.stop();
  await provider.close();
  await receiver.close();
});

test('a task is dispatched, completed by its callback and delivered signed', async () => {
  const created = await relay.api('POST', '/v1/tasks', {
    targetUrl: `${provider.url}/predictions?hook={asyncqueue_callback_url}`,
    body: { webhook: '{asyncqueue_callback_url}' },
    onCompleteUrl: receiver.url,
    metadata: { user: 'u1' },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const { task, callbackUrl, signalToken } = created.body;
  assert.match(signalToken, /^[0-9a-f]{64}$/);
  assert.equal(callbackUrl, `${relay.baseUrl}/v1/callbacks/${signalToken}`);

  const [submit] = await provider.waitForRequests(1);
  assert.equal(JSON.parse(submit.text).webhook, callbackUrl);
  assert.equal(submit.url.searchParams.get('hook'), callbackUrl);
  await waitForStatus(relay, task.id, 'waiting');

  const cb = await fetch(callbackUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"status":"succeeded","output":"x"}' });
  assert.equal(cb.status, 200);
  const [delivery] = await receiver.waitForDeliveries(task.id);
  assert.ok(delivery.payload, delivery.verifyError);
  assert.equal(delivery.payload.event, 'task.completed');
  assert.equal((delivery.payload.task as any).result.body, '{"status":"succeeded","output":"x"}');
  const done = await waitForStatus(relay, task.id, 'completed');
  assert.equal(done.metadata.user, 'u1');
});
