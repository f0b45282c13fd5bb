/**
 * The SSRF guard end to end (DESIGN §7), with loopback only: the relay may reach 127.0.0.2 and
 * nothing else, so every other loopback spelling must be refused before a connection is made.
 * The fake on 127.0.0.1 stands for an internal service and must record zero requests, whether
 * the URL comes from the client, a redirect, a provider's submit answer or the relay's JWKS setting.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { HttpFake } from '../fakes/http-fake.ts';
import { falQueued, falRequestId } from '../fakes/providers.ts';
import { startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';

let relay: TestRelay;
let internal: HttpFake;
/** The one allowed destination, on 127.0.0.2: answers /ok, redirects /to?url=… */
let allowed: Server;
let allowedUrl: string;
let allowedHits = 0;

const json = (res: ServerResponse, body: unknown) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));

before(async () => {
  internal = await HttpFake.start();
  // fal's keys "published" on the internal service: fetching them must be refused too.
  relay = await startTestRelay({ env: { RELAY_ALLOWED_NETWORKS: '127.0.0.2/32', RELAY_FAL_JWKS_URL: `http://127.0.0.1:${internal.port}/jwks` } });
  allowed = createServer((req, res) => {
    allowedHits++;
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/to') res.writeHead(302, { location: url.searchParams.get('url') ?? '/' }).end();
    // A submit answer naming the poll URL: the provider, not the client, chooses it.
    else if (url.pathname === '/submit-poll') json(res, { id: 'j1', status_url: url.searchParams.get('status') });
    else if (url.pathname === '/fal-ai/flux/dev') json(res, falQueued(allowedUrl));
    else if (url.pathname.startsWith('/fal-ai/flux/requests/')) json(res, { status: 'IN_QUEUE', queue_position: 0 });
    else res.writeHead(200, { 'content-type': 'text/plain' }).end('allowed');
  });
  allowed.listen(0, '127.0.0.2');
  await once(allowed, 'listening');
  allowedUrl = `http://127.0.0.2:${(allowed.address() as AddressInfo).port}`;
});
after(async () => {
  await relay.stop();
  await internal.close();
  allowed.closeAllConnections();
  allowed.close();
});

async function failedTask(input: Record<string, unknown>): Promise<any> {
  const created = await relay.api('POST', '/v1/tasks', { maxRetries: 3, ...input });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return waitForStatus(relay, created.body.task.id, 'failed');
}

test('every loopback spelling outside RELAY_ALLOWED_NETWORKS is refused with destination_refused', async () => {
  const port = internal.port;
  const forms = [
    `http://127.0.0.1:${port}/plain`,
    `http://2130706433:${port}/decimal`,
    `http://0177.0.0.1:${port}/octal`,
    `http://0x7f.0.0.1:${port}/hex`,
    `http://127.1:${port}/short`,
    `http://[::ffff:127.0.0.1]:${port}/mapped`,
    `http://[::ffff:7f00:1]:${port}/mapped-hex`,
    `http://[::1]:${port}/v6-loopback`,
    `http://0.0.0.0:${port}/unspecified`,
    `http://localhost:${port}/name`,
  ];
  const tasks = await Promise.all(forms.map((targetUrl) => failedTask({ targetUrl })));
  for (const [i, task] of tasks.entries()) {
    assert.equal(task.error.code, 'destination_refused', `${forms[i]}: ${JSON.stringify(task.error)}`);
    assert.match(task.error.message, /^destination refused: .* (loopback|unspecified) address \(outside RELAY_ALLOWED_NETWORKS\)$/, forms[i]);
    // Refusals are permanent: no retry was scheduled.
    assert.equal(task.retryCount, 0, forms[i]);
  }
  assert.match(tasks.at(-1).error.message, /^destination refused: localhost resolves to a loopback address/);
  assert.equal(internal.requests.length, 0, 'the internal service received nothing');
});

test('the allowed destination is reached, and a redirect from it to a refused address is stopped at that hop', async () => {
  const ok = await relay.api('POST', '/v1/tasks', { targetUrl: `${allowedUrl}/ok` });
  const done = await waitForStatus(relay, ok.body.task.id, 'completed');
  assert.equal(done.result.body, 'allowed');

  const before = allowedHits;
  const redirectTo = encodeURIComponent(`http://[::ffff:127.0.0.1]:${internal.port}/via-redirect`);
  const task = await failedTask({ targetUrl: `${allowedUrl}/to?url=${redirectTo}` });
  assert.equal(task.error.code, 'destination_refused');
  assert.equal(allowedHits - before, 1, 'the first hop was made');
  const decimal = await failedTask({ targetUrl: `${allowedUrl}/to?url=${encodeURIComponent(`http://2130706433:${internal.port}/x`)}` });
  assert.equal(decimal.error.code, 'destination_refused');
  assert.equal(internal.requests.length, 0, 'the redirect target received nothing');
});

test('an onComplete webhook to a refused address is not sent and not retried', async () => {
  const created = await relay.api('POST', '/v1/tasks', {
    targetUrl: `${allowedUrl}/ok`,
    onCompleteUrl: `http://[::ffff:127.0.0.1]:${internal.port}/hook`,
  });
  const id = created.body.task.id;
  await waitForStatus(relay, id, 'completed');
  const deadline = Date.now() + 10_000;
  let task: any;
  // Delivery bookkeeping does not change the status, so the long-poll cannot wait for it.
  do {
    task = (await relay.api('GET', `/v1/tasks/${id}`)).body.task;
    if (task.delivery?.status === 'failed') break;
    await new Promise((r) => setTimeout(r, 50));
  } while (Date.now() < deadline);
  assert.deepEqual(task.delivery, { status: 'failed', attempts: 1, nextAttemptAt: null });
  const events = (await relay.api('GET', `/v1/tasks/${id}/events`)).body.events;
  const attempt = events.find((e: any) => e.type === 'delivery.attempt');
  assert.equal(attempt.data.error.code, 'refused');
  assert.deepEqual(events.find((e: any) => e.type === 'delivery.stopped').data, { reason: 'destination_refused' });
  assert.equal(internal.requests.length, 0);
});

test('a poll URL taken from the submit answer is guarded too: a refused one fails the task, nothing sent', async () => {
  const statusUrl = `http://127.0.0.1:${internal.port}/status`;
  const created = await relay.api('POST', '/v1/tasks', {
    targetUrl: `${allowedUrl}/submit-poll?status=${encodeURIComponent(statusUrl)}`,
    pollConfig: { urlTemplate: '{startResult.body.status_url}', statusPath: 'status', doneValues: ['done'], interval: 1, initialDelay: 0 },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const task = await waitForStatus(relay, created.body.task.id, 'failed');
  assert.equal(task.error.code, 'poll_refused');
  assert.match(task.error.message, /^destination refused: 127\.0\.0\.1 is a loopback address \(outside RELAY_ALLOWED_NETWORKS\)$/);
  const events = (await relay.api('GET', `/v1/tasks/${task.id}/events`)).body.events;
  assert.ok(events.some((e: any) => e.type === 'poll.started'), events.map((e: any) => e.type).join(', '));
  assert.equal(internal.requests.length, 0, 'the internal service received nothing');
});

test('a JWKS URL outside RELAY_ALLOWED_NETWORKS is not fetched: a fal-signed callback is refused with 401', async () => {
  const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${allowedUrl}/fal-ai/flux/dev`, body: { prompt: 'x' }, provider: 'fal', callbackSignature: { scheme: 'fal' } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const { id } = created.body.task;
  await waitForStatus(relay, id, 'waiting');
  const body = JSON.stringify({ request_id: falRequestId, status: 'OK', payload: { images: [] } });
  const answer = await fetch(created.body.callbackUrl, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-fal-webhook-request-id': falRequestId,
      'x-fal-webhook-user-id': 'github|4242',
      'x-fal-webhook-timestamp': String(Math.floor(Date.now() / 1000)),
      'x-fal-webhook-signature': 'ab'.repeat(64),
    },
    body,
  });
  assert.equal(answer.status, 401);
  const events = (await relay.api('GET', `/v1/tasks/${id}/events`)).body.events;
  const refused = events.find((e: any) => e.type === 'callback.unauthorized');
  assert.match(refused.data.reason, /^fal JWKS fetch failed: destination refused: 127\.0\.0\.1 is a loopback address/);
  assert.equal((await relay.api('GET', `/v1/tasks/${id}`)).body.task.status, 'waiting');
  assert.equal((await relay.api('POST', `/v1/tasks/${id}/cancel`)).status, 200);
  assert.equal(internal.requests.length, 0, 'the internal service received nothing');
});
