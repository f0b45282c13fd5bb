import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { nextDelayMs, webhookIdFor } from '../../src/delivery/deliver-webhook.ts';
import { generateWebhookSecret, signWebhook } from '../../src/delivery/sign.ts';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const BODY = '{"event":"task.completed","task":{"id":"0190b3c4-0000-7000-8000-000000000001","status":"completed"}}';
const now = () => Math.floor(Date.now() / 1000);

/** The "plain HMAC steps" a receiver in any language follows (README): no library. */
function verifyAsyncQueueSignature(secret: string, header: string, rawBody: string): boolean {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (!match) return false;
  const expected = createHmac('sha256', secret).update(`${match[1]}.${rawBody}`).digest('hex');
  return expected === match[2];
}

test('signWebhook output verifies with the reference standardwebhooks library', () => {
  const timestamp = now();
  const headers = signWebhook({ secret: SECRET, msgId: 'msg_abc', timestamp, body: BODY });
  assert.deepEqual(Object.keys(headers).sort(), ['webhook-id', 'webhook-signature', 'webhook-timestamp', 'x-asyncqueue-signature']);
  assert.equal(headers['webhook-id'], 'msg_abc');
  assert.equal(headers['webhook-timestamp'], String(timestamp));
  assert.match(headers['webhook-signature'], /^v1,[A-Za-z0-9+/]{43}=$/);
  const payload = new Webhook(SECRET).verify(BODY, headers);
  assert.deepEqual(payload, JSON.parse(BODY));
});

test('the signature matches an independent Standard Webhooks computation', () => {
  const timestamp = 1_700_000_000;
  const headers = signWebhook({ secret: SECRET, msgId: 'msg_fixed', timestamp, body: BODY });
  // Standard Webhooks: key = base64-decoded part after whsec_, content = "id.timestamp.body".
  const key = Buffer.from(SECRET.slice('whsec_'.length), 'base64');
  const expected = createHmac('sha256', key).update(`msg_fixed.${timestamp}.${BODY}`).digest('base64');
  assert.equal(headers['webhook-signature'], `v1,${expected}`);
  // The library's own signer agrees byte for byte.
  assert.equal(new Webhook(SECRET).sign('msg_fixed', new Date(timestamp * 1000), BODY), headers['webhook-signature']);
});

test('X-AsyncQueue-Signature is t=<unix>,v1=<hex HMAC keyed by the whole whsec_ string over "t.body">', () => {
  const timestamp = now();
  const headers = signWebhook({ secret: SECRET, msgId: 'msg_abc', timestamp, body: BODY });
  const header = headers['x-asyncqueue-signature'];
  assert.match(header, new RegExp(`^t=${timestamp},v1=[0-9a-f]{64}$`));
  assert.equal(verifyAsyncQueueSignature(SECRET, header, BODY), true);
  // Keyed by the whole string, not by the decoded bytes the Standard Webhooks signature uses.
  const decodedKey = Buffer.from(SECRET.slice('whsec_'.length), 'base64');
  const wrongKeyed = createHmac('sha256', decodedKey).update(`${timestamp}.${BODY}`).digest('hex');
  assert.notEqual(header, `t=${timestamp},v1=${wrongKeyed}`);
  assert.equal(verifyAsyncQueueSignature(SECRET, header, `${BODY} `), false);
  assert.equal(verifyAsyncQueueSignature(`${SECRET}x`, header, BODY), false);
});

test('a tampered body, id, timestamp or a wrong secret fails standardwebhooks verification', () => {
  const timestamp = now();
  const headers = signWebhook({ secret: SECRET, msgId: 'msg_abc', timestamp, body: BODY });
  const hook = new Webhook(SECRET);
  assert.throws(() => hook.verify(BODY.replace('completed', 'failed'), headers), /No matching signature found/);
  assert.throws(() => hook.verify(`${BODY}\n`, headers), /No matching signature found/);
  assert.throws(() => hook.verify(BODY, { ...headers, 'webhook-id': 'msg_other' }), /No matching signature found/);
  assert.throws(() => hook.verify(BODY, { ...headers, 'webhook-timestamp': String(timestamp + 1) }), /No matching signature found/);
  assert.throws(() => new Webhook(generateWebhookSecret()).verify(BODY, headers), /No matching signature found/);
  // A stale timestamp is refused even when correctly signed (replay protection of the library).
  const old = signWebhook({ secret: SECRET, msgId: 'msg_abc', timestamp: timestamp - 3600, body: BODY });
  assert.throws(() => hook.verify(BODY, old), /Message timestamp too old/);
});

test('each attempt gets its own timestamp and signature, the id stays', () => {
  const a = signWebhook({ secret: SECRET, msgId: 'msg_same', timestamp: 1_700_000_000, body: BODY });
  const b = signWebhook({ secret: SECRET, msgId: 'msg_same', timestamp: 1_700_000_005, body: BODY });
  assert.equal(a['webhook-id'], b['webhook-id']);
  assert.notEqual(a['webhook-signature'], b['webhook-signature']);
  assert.notEqual(a['x-asyncqueue-signature'], b['x-asyncqueue-signature']);
});

test('generated secrets are whsec_ + base64 of 24 bytes, distinct, and usable by the library', () => {
  const s1 = generateWebhookSecret();
  const s2 = generateWebhookSecret();
  assert.match(s1, /^whsec_[A-Za-z0-9+/]{32}$/);
  assert.equal(Buffer.from(s1.slice(6), 'base64').length, 24);
  assert.notEqual(s1, s2);
  const headers = signWebhook({ secret: s1, msgId: 'msg_x', timestamp: now(), body: '{}' });
  assert.deepEqual(new Webhook(s1).verify('{}', headers), {});
});

test('webhookIdFor gives msg_ + the task id without dashes, the same every time', () => {
  const id = '0190b3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b';
  assert.equal(webhookIdFor(id), 'msg_0190b3c45d6e7f809a1b2c3d4e5f6a7b');
  assert.equal(webhookIdFor(id), webhookIdFor(id));
  assert.notEqual(webhookIdFor(id), webhookIdFor(id.replace(/b$/, 'c')));
});

test('nextDelayMs: schedule step ±10 % jitter, Retry-After when longer, null past the schedule', () => {
  const schedule = [5, 300];
  for (let i = 0; i < 200; i++) {
    const first = nextDelayMs(schedule, 1)!;
    assert.ok(first >= 4500 && first <= 5500, `attempt 1 delay ${first}`);
    const second = nextDelayMs(schedule, 2)!;
    assert.ok(second >= 270_000 && second <= 330_000, `attempt 2 delay ${second}`);
  }
  assert.equal(nextDelayMs(schedule, 1, 60_000), 60_000);
  const shortRetryAfter = nextDelayMs(schedule, 1, 1000)!;
  assert.ok(shortRetryAfter >= 4500, 'a shorter Retry-After does not speed the schedule up');
  assert.equal(nextDelayMs(schedule, 3), null);
  assert.equal(nextDelayMs(schedule, 3, 1000), null, 'Retry-After does not extend an exhausted schedule');
  assert.equal(nextDelayMs([], 1), null);
});
