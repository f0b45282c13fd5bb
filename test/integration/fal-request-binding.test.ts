/**
 * fal signs every webhook with one platform key, so a valid signature proves only that fal sent
 * it — for anyone's request. The signed X-Fal-Webhook-Request-Id must be the request id fal gave
 * this task's submit. fal's JWKS and fal itself are loopback fakes.
 */
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { type FakeReply, HttpFake } from '../fakes/http-fake.ts';
import { falOkWebhook, falQueued } from '../fakes/providers.ts';
import { startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';
import { waitForEvent } from '../helpers/wait.ts';

const falKey = generateKeyPairSync('ed25519');
const OURS = '0b5e55ed-660e-45cd-bd63-580e4f2a94cc';
const THEIRS = 'a77ac4e2-660e-45cd-bd63-580e4f2a94cc';

let relay: TestRelay;
let fal: HttpFake;
let jwks: HttpFake;
/** Submits to `/held/…` wait for the test to release them; `arrived` announces each. */
const held = new Map<string, () => void>();
const arrived = new EventEmitter();
/** The relay's log lines, to know when it holds a webhook (no other outside sign of it). */
const logs = new EventEmitter();
const logLines: string[] = [];

before(async () => {
  jwks = await HttpFake.start(() => ({ status: 200, body: { keys: [{ ...falKey.publicKey.export({ format: 'jwk' }), kid: 'fal-1' }] } }));
  fal = await HttpFake.start(async (req): Promise<FakeReply> => {
    if (req.path.startsWith('/held/')) {
      const release = new Promise<void>((resolve) => held.set(req.path, resolve));
      arrived.emit('arrived');
      await release;
    }
    return { status: 200, body: falQueued(fal.url, OURS) };
  });
  const sink = new Writable({ write(chunk, _enc, done) { logLines.push(String(chunk)); logs.emit('line'); done(); } });
  relay = await startTestRelay({
    env: { RELAY_FAL_JWKS_URL: `${jwks.url}/.well-known/jwks.json` },
    timings: { falRequestWaitMs: 3000 },
    log: pino({ level: 'debug' }, sink),
  });
});
after(async () => {
  for (const release of held.values()) release();
  await relay.stop();
  await fal.close();
  await jwks.close();
});

function falHeaders(key: KeyObject, body: string, requestId: string): Record<string, string> {
  const timestamp = Math.floor(Date.now() / 1000);
  const userId = 'github|4242';
  const message = `${requestId}\n${userId}\n${timestamp}\n${createHash('sha256').update(body).digest('hex')}`;
  return {
    'content-type': 'application/json',
    'x-fal-webhook-request-id': requestId,
    'x-fal-webhook-user-id': userId,
    'x-fal-webhook-timestamp': String(timestamp),
    'x-fal-webhook-signature': sign(null, Buffer.from(message), key).toString('hex'),
  };
}

async function post(url: string, requestId: string) {
  const body = falOkWebhook(requestId);
  const res = await fetch(url, { method: 'POST', headers: falHeaders(falKey.privateKey, body, requestId), body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

const create = async (path: string) => {
  const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${fal.url}${path}`, headers: { authorization: 'Key fal-test' }, body: { prompt: 'x' }, provider: 'fal', callbackSignature: { scheme: 'fal' } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return { id: created.body.task.id as string, url: created.body.callbackUrl as string };
};
const timeline = async (id: string): Promise<any[]> => (await relay.api('GET', `/v1/tasks/${id}/events`)).body.events;

test('a validly signed fal webhook of another request is 401, recorded, and changes nothing; the task\'s own completes it', async () => {
  const task = await create('/fal-ai/flux/dev');
  await waitForStatus(relay, task.id, 'waiting');
  const stranger = await post(task.url, THEIRS);
  assert.equal(stranger.status, 401, JSON.stringify(stranger.body));
  assert.equal(stranger.body.code, 'unauthorized');
  assert.equal((await relay.api('GET', `/v1/tasks/${task.id}`)).body.task.status, 'waiting');
  const refused = (await timeline(task.id)).filter((e) => e.type === 'callback.unauthorized');
  assert.equal(refused.length, 1);
  assert.equal(refused[0].data.reason, `X-Fal-Webhook-Request-Id ${THEIRS} is not this task's fal request (${OURS})`);

  const own = await post(task.url, OURS);
  assert.equal(own.status, 200, JSON.stringify(own.body));
  assert.deepEqual(own.body, { task: { id: task.id, status: 'completed' } });
});

test('a webhook that arrives before the submit answer waits for it, then completes the task', async () => {
  const task = await create('/held/early');
  await waitForEvent(arrived, 'arrived', () => (held.has('/held/early') ? true : undefined));
  const linesBefore = logLines.length;
  const answer = post(task.url, OURS);
  // The relay says when it holds the webhook; only then does fal's submit answer come back.
  await waitForEvent(logs, 'line', () => (logLines.slice(linesBefore).some((l) => l.includes('waits for the submit answer')) ? true : undefined));
  held.get('/held/early')!();
  const done = await answer;
  assert.equal(done.status, 200, JSON.stringify(done.body));
  assert.equal(done.body.task.status, 'completed');
  const types = (await timeline(task.id)).map((e) => e.type);
  assert.ok(types.indexOf('poll.started') < types.indexOf('callback.accepted'), types.join(', '));
});

test('a webhook whose submit answer does not come in time is answered 503 with Retry-After; fal\'s retry completes the task', async () => {
  const task = await create('/held/late');
  await waitForEvent(arrived, 'arrived', () => (held.has('/held/late') ? true : undefined));
  const early = await post(task.url, OURS);
  assert.equal(early.status, 503, JSON.stringify(early.body));
  assert.equal(early.headers.get('content-type'), 'application/problem+json');
  assert.equal(early.body.code, 'not_ready');
  assert.ok(Number(early.headers.get('retry-after')) >= 1);
  assert.equal((await relay.api('GET', `/v1/tasks/${task.id}`)).body.task.status, 'processing');
  const deferred = (await timeline(task.id)).filter((e) => e.type === 'callback.deferred');
  assert.equal(deferred.length, 1);

  held.get('/held/late')!();
  await waitForStatus(relay, task.id, 'waiting');
  const retried = await post(task.url, OURS);
  assert.equal(retried.status, 200, JSON.stringify(retried.body));
  assert.equal(retried.body.task.status, 'completed');
});

test('callbackSignature fal without the fal preset is refused at creation: nothing would tie a webhook to the task', async () => {
  const answer = await relay.api('POST', '/v1/tasks', { targetUrl: `${fal.url}/custom`, waitForSignal: true, callbackSignature: { scheme: 'fal' } });
  assert.equal(answer.status, 400, JSON.stringify(answer.body));
  assert.match(answer.body.detail, /callbackSignature fal needs "provider": "fal"/);
});
