/**
 * Cancel and timeout reach the provider's cancel endpoint; callbacks that must be signed
 * (Standard Webhooks for Replicate, Ed25519 with a JWKS for fal) are refused with 401 otherwise.
 * fal's JWKS is served locally: the relay is configured with its URL (RELAY_FAL_JWKS_URL).
 */
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { HttpFake } from '../fakes/http-fake.ts';
import { falOkWebhook, falQueued, falRequestId, replicatePrediction } from '../fakes/providers.ts';
import { startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';
import { waitForTimeline } from '../helpers/timeline.ts';

let relay: TestRelay;
let provider: HttpFake;
let jwks: HttpFake;
const falKey = generateKeyPairSync('ed25519');
const strangerKey = generateKeyPairSync('ed25519');

before(async () => {
  provider = await HttpFake.start();
  jwks = await HttpFake.start(() => ({ status: 200, body: { keys: [{ ...falKey.publicKey.export({ format: 'jwk' }), kid: 'fal-1' }] } }));
  relay = await startTestRelay({ env: { RELAY_FAL_JWKS_URL: `${jwks.url}/.well-known/jwks.json` } });
});
after(async () => {
  await relay.stop();
  await provider.close();
  await jwks.close();
});

const timeline = async (id: string): Promise<any[]> => (await relay.api('GET', `/v1/tasks/${id}/events`)).body.events;
async function post(url: string, body: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

test('cancelling a waiting Replicate task calls POST urls.cancel with the task credentials; the attempt is on the timeline', async () => {
  provider.setHandler((req) => (req.path.endsWith('/cancel') ? { status: 200, body: replicatePrediction(provider.url, 'canceled') } : { status: 201, body: replicatePrediction(provider.url, 'starting') }));
  const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/v1/predictions`, headers: { authorization: 'Bearer r8_cancel' }, body: { version: 'v', input: {} }, provider: 'replicate' });
  await waitForStatus(relay, created.body.task.id, 'waiting');
  const cancelled = await relay.api('POST', `/v1/tasks/${created.body.task.id}/cancel`);
  assert.equal(cancelled.status, 200);
  assert.equal(cancelled.body.task.status, 'cancelled');
  const [call] = await provider.waitForRequests(1, (r) => r.path.endsWith('/cancel'));
  assert.equal(call.method, 'POST');
  assert.equal(call.path, '/v1/predictions/ufawqhfynnddngldkgtslldrkq/cancel');
  assert.equal(call.headers.authorization, 'Bearer r8_cancel');
  const attempt = await waitForTimeline(relay, created.body.task.id, 'provider.cancel_attempt');
  assert.deepEqual({ ...attempt.data, duration: undefined, answer: undefined }, {
    reason: 'cancelled', method: 'POST', url: `${provider.url}/v1/predictions/ufawqhfynnddngldkgtslldrkq/cancel`, statusCode: 200, duration: undefined, answer: undefined,
  });
});

test('a task cancelled while its submit is in flight: the late submit answer gets the new prediction cancelled too', async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  provider.setHandler(async (req) => {
    if (req.path.endsWith('/cancel')) return { status: 200, body: replicatePrediction(provider.url, 'canceled') };
    await gate;
    return { status: 201, body: replicatePrediction(provider.url, 'starting') };
  });
  const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/v1/predictions`, headers: { authorization: 'Bearer r8_race' }, body: { version: 'v', input: {} }, provider: 'replicate' });
  const id = created.body.task.id;
  // The submit is at the provider (held there): the task is processing when the cancel comes.
  await provider.waitForRequests(1, (r) => r.path === '/v1/predictions' && r.headers.authorization === 'Bearer r8_race');
  assert.equal((await relay.api('POST', `/v1/tasks/${id}/cancel`)).body.task.status, 'cancelled');
  release();
  const [call] = await provider.waitForRequests(1, (r) => r.path.endsWith('/cancel') && r.headers.authorization === 'Bearer r8_race');
  assert.equal(call.method, 'POST');
  const attempt = await waitForTimeline(relay, id, 'provider.cancel_attempt');
  assert.equal(attempt.data.statusCode, 200);
  const types = (await timeline(id)).map((e) => e.type);
  assert.ok(types.includes('dispatch.late_response'));
  assert.equal((await relay.api('GET', `/v1/tasks/${id}`)).body.task.status, 'cancelled');
});

test('cancelling a waiting fal task calls PUT cancel_url', async () => {
  provider.setHandler((req) => (req.method === 'PUT' ? { status: 202, body: { status: 'CANCELLATION_REQUESTED' } } : { status: 200, body: falQueued(provider.url, 'fa1cance-660e-45cd-bd63-580e4f2a94cc') }));
  const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/fal-ai/flux/dev`, headers: { authorization: 'Key fal-cancel' }, body: { prompt: 'x' }, provider: 'fal' });
  await waitForStatus(relay, created.body.task.id, 'waiting');
  assert.equal((await relay.api('POST', `/v1/tasks/${created.body.task.id}/cancel`)).status, 200);
  const [call] = await provider.waitForRequests(1, (r) => r.method === 'PUT');
  assert.equal(call.path, '/fal-ai/flux/requests/fa1cance-660e-45cd-bd63-580e4f2a94cc/cancel');
  assert.equal(call.headers.authorization, 'Key fal-cancel');
  const attempt = await waitForTimeline(relay, created.body.task.id, 'provider.cancel_attempt');
  assert.equal(attempt.data.statusCode, 202);
  assert.equal(attempt.data.answer, '{"status":"CANCELLATION_REQUESTED"}');
});

test('a Runway task that times out while polling is cancelled at Runway (DELETE /v1/tasks/{id})', async () => {
  provider.setHandler((req) => (req.method === 'POST' ? { status: 200, body: { id: 'rw-timeout' } } : req.method === 'DELETE' ? { status: 204 } : { status: 200, body: { id: 'rw-timeout', status: 'RUNNING', progress: 0.1 } }));
  const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/v1/text_to_video`, headers: { authorization: 'Bearer key_rw' }, body: {}, provider: 'runwayml', pollConfig: { maxDuration: 1 } });
  assert.equal(created.body.task.pollConfig.maxDuration, 1, 'the task overrides one key of the preset');
  await waitForStatus(relay, created.body.task.id, 'timeout', 20_000);
  const [call] = await provider.waitForRequests(1, (r) => r.method === 'DELETE');
  assert.equal(call.path, '/v1/tasks/rw-timeout');
  assert.equal(call.headers.authorization, 'Bearer key_rw');
  assert.equal((await waitForTimeline(relay, created.body.task.id, 'provider.cancel_attempt')).data.statusCode, 204);
});

test('standard-webhooks: unsigned and wrongly signed callbacks → 401, recorded, task unchanged; a valid signature is accepted', async () => {
  const secret = `whsec_${randomBytes(24).toString('base64')}`;
  provider.setHandler(() => ({ status: 201, body: replicatePrediction(provider.url, 'starting') }));
  const created = await relay.api('POST', '/v1/tasks', {
    targetUrl: `${provider.url}/v1/predictions`, body: { version: 'v', input: {} }, provider: 'replicate', callbackSignature: { scheme: 'standard-webhooks', secret },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.deepEqual(created.body.task.callbackSignature, { scheme: 'standard-webhooks' });
  assert.ok(!JSON.stringify(created.body.task).includes(secret.slice(6)), 'the secret is never shown');
  const { id } = created.body.task;
  await waitForStatus(relay, id, 'waiting');
  const body = JSON.stringify(replicatePrediction(provider.url, 'succeeded', { output: ['x.webp'] }));

  assert.equal((await post(created.body.callbackUrl, body)).status, 401);
  const forged = new Webhook(`whsec_${randomBytes(24).toString('base64')}`);
  const msgId = 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W';
  const now = new Date();
  assert.equal((await post(created.body.callbackUrl, body, { 'webhook-id': msgId, 'webhook-timestamp': String(Math.floor(now.getTime() / 1000)), 'webhook-signature': forged.sign(msgId, now, body) })).status, 401);
  const real = new Webhook(secret);
  const stale = new Date(now.getTime() - 10 * 60 * 1000);
  assert.equal((await post(created.body.callbackUrl, body, { 'webhook-id': msgId, 'webhook-timestamp': String(Math.floor(stale.getTime() / 1000)), 'webhook-signature': real.sign(msgId, stale, body) })).status, 401);
  const refused = await post(created.body.callbackUrl, body, { 'webhook-id': msgId, 'webhook-timestamp': String(Math.floor(now.getTime() / 1000)), 'webhook-signature': 'v1,' + Buffer.alloc(32).toString('base64') });
  assert.equal(refused.status, 401);
  assert.equal(refused.body.code, 'unauthorized');
  const unchanged = (await relay.api('GET', `/v1/tasks/${id}`)).body.task;
  assert.equal(unchanged.status, 'waiting');
  assert.equal(unchanged.result, null);
  const rejections = (await timeline(id)).filter((e) => e.type === 'callback.unauthorized');
  assert.equal(rejections.length, 4);
  assert.match(rejections[0].data.reason, /^missing webhook-id/);
  assert.match(rejections[2].data.reason, /tolerance/);

  const accepted = await post(created.body.callbackUrl, body, { 'webhook-id': msgId, 'webhook-timestamp': String(Math.floor(now.getTime() / 1000)), 'webhook-signature': real.sign(msgId, now, body) });
  assert.equal(accepted.status, 200, JSON.stringify(accepted.body));
  assert.equal(accepted.body.task.status, 'completed');
  const [row] = await relay.running.relay.sql<{ text: string }[]>`select t::text as text from tasks t where id = ${id}`;
  assert.ok(!row.text.includes(secret.slice(6)), 'the secret is sealed in the row');
});

function falHeaders(key: KeyObject, body: string, requestId = falRequestId, timestamp = Math.floor(Date.now() / 1000)): Record<string, string> {
  const userId = 'github|4242';
  const message = `${requestId}\n${userId}\n${timestamp}\n${createHash('sha256').update(body).digest('hex')}`;
  return {
    'x-fal-webhook-request-id': requestId,
    'x-fal-webhook-user-id': userId,
    'x-fal-webhook-timestamp': String(timestamp),
    'x-fal-webhook-signature': sign(null, Buffer.from(message), key).toString('hex'),
  };
}

test('fal Ed25519: keys from the JWKS URL; unsigned, stranger-signed, tampered and stale webhooks → 401; a signed one completes', async () => {
  provider.setHandler(() => ({ status: 200, body: falQueued(provider.url) }));
  const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${provider.url}/fal-ai/flux/dev`, body: { prompt: 'x' }, provider: 'fal', callbackSignature: { scheme: 'fal' } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const { id } = created.body.task;
  await waitForStatus(relay, id, 'waiting');
  const body = falOkWebhook();
  assert.equal((await post(created.body.callbackUrl, body)).status, 401);
  assert.equal((await post(created.body.callbackUrl, body, falHeaders(strangerKey.privateKey, body))).status, 401);
  assert.equal((await post(created.body.callbackUrl, body.replace('"seed":', '"seed":1'), falHeaders(falKey.privateKey, body))).status, 401);
  assert.equal((await post(created.body.callbackUrl, body, falHeaders(falKey.privateKey, body, falRequestId, Math.floor(Date.now() / 1000) - 600))).status, 401);
  assert.equal((await relay.api('GET', `/v1/tasks/${id}`)).body.task.status, 'waiting');
  assert.deepEqual((await timeline(id)).filter((e) => e.type === 'callback.unauthorized').map((e) => e.data.reason), [
    'missing X-Fal-Webhook-* headers',
    'no fal JWKS key verifies the signature',
    'no fal JWKS key verifies the signature',
    'X-Fal-Webhook-Timestamp outside the 5 minute tolerance',
  ]);
  const ok = await post(created.body.callbackUrl, body, falHeaders(falKey.privateKey, body));
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.deepEqual(ok.body, { task: { id, status: 'completed' } });
  assert.equal((await relay.api('GET', `/v1/tasks/${id}`)).body.task.result.body, body);
  assert.equal(jwks.requests.length, 1, 'the JWKS is fetched once and cached');
});
