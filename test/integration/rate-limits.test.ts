/**
 * Rate limits (DESIGN §5): rejected callback attempts per client IP, shared by two relays on one
 * database; valid callbacks never throttled; the per-IP ceiling; the per-key API limit; failed
 * authentications (401) per client IP, shared the same way. Client
 * addresses are told apart by X-Forwarded-For from a trusted proxy (127.0.0.0/8 here): the
 * addresses in that header are only labels, no traffic goes to them.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { HttpFake } from '../fakes/http-fake.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { apiRequest, startTestRelay, type TestRelay } from '../helpers/relay.ts';

let database: TestDatabase;
let one: TestRelay;
let two: TestRelay;
let target: HttpFake;
// An hour-long window: a 60 s window could end (and reset the counts) in the middle of a test.
const LIMITS = { RELAY_CALLBACK_REJECT_LIMIT: '30', RELAY_AUTH_FAILURE_LIMIT: '10', RELAY_TRUSTED_PROXIES: '127.0.0.0/8', RELAY_RATE_LIMIT_WINDOW_SECONDS: '3600' };

before(async () => {
  // Windows are aligned to the clock: start right after a boundary rather than 30 s before one.
  const leftMs = 3_600_000 - (Date.now() % 3_600_000);
  if (leftMs < 30_000) await new Promise((resolve) => setTimeout(resolve, leftMs + 1000));
  database = await createTestDatabase('limits');
  one = await startTestRelay({ database, env: LIMITS });
  two = await startTestRelay({ database, env: { ...LIMITS, RELAY_ENCRYPTION_KEY: one.encryptionKey, RELAY_WEBHOOK_SECRET: one.webhookSecret } });
  target = await HttpFake.start(() => ({ status: 202, body: { queued: true } }));
});
after(async () => {
  await one.stop();
  await two.stop();
  await target.close();
  await database.drop();
});

const fakeToken = (i: number) => i.toString(16).padStart(64, 'e');
const from = (ip: string) => ({ 'x-forwarded-for': ip });

function badCallback(relay: TestRelay, ip: string, i: number) {
  return apiRequest(relay.baseUrl, 'POST', `/v1/callbacks/${fakeToken(i)}`, { status: 'OK' }, from(ip));
}

test('two relays on one database share one rejection count per client IP', async () => {
  const ip = '198.51.100.1';
  for (let i = 0; i < 20; i++) assert.equal((await badCallback(one, ip, i)).status, 404);
  for (let i = 20; i < 28; i++) assert.equal((await badCallback(two, ip, i)).status, 404);
  // A malformed signal is a rejection too (400), on either relay.
  for (const relay of [one, two]) {
    const signal = await apiRequest(relay.baseUrl, 'POST', `/v1/signals/${fakeToken(99)}`, { status: 'maybe' }, from(ip));
    assert.equal(signal.status, 400);
  }
  // 30 rejections so far, 20 + 8 + 2, across both relays: the 31st is refused by whichever sees it.
  const limited = await badCallback(two, ip, 31);
  assert.equal(limited.status, 429);
  assert.equal(limited.headers.get('content-type'), 'application/problem+json');
  assert.equal(limited.body.code, 'rate_limited');
  const retryAfter = Number(limited.headers.get('retry-after'));
  assert.ok(retryAfter > 20 && retryAfter <= 3600, `Retry-After ${retryAfter}`);
  assert.equal((await badCallback(one, ip, 32)).status, 429, 'the other relay counts the same window');
  // Another client is not affected.
  assert.equal((await badCallback(one, '198.51.100.99', 33)).status, 404);
});

test('50 valid callbacks from one IP are all accepted while its 40 bad ones are throttled after 30', async () => {
  const ip = '198.51.100.2';
  const tokens: string[] = [];
  for (let i = 0; i < 50; i++) {
    const created = await one.api('POST', '/v1/tasks', { targetUrl: `${target.url}/submit`, waitForSignal: true });
    assert.equal(created.status, 201);
    tokens.push(created.body.signalToken);
  }
  const valid: number[] = [];
  const bad: number[] = [];
  // Interleaved, alternating relays: 5 valid, 4 bad, repeated.
  for (let round = 0; round < 10; round++) {
    for (let k = 0; k < 5; k++) {
      const relay = (round + k) % 2 === 0 ? one : two;
      const token = tokens[round * 5 + k];
      valid.push((await apiRequest(relay.baseUrl, 'POST', `/v1/callbacks/${token}`, { status: 'OK', n: round * 5 + k }, from(ip))).status);
    }
    for (let k = 0; k < 4; k++) bad.push((await badCallback(round % 2 === 0 ? two : one, ip, 1000 + round * 4 + k)).status);
  }
  assert.deepEqual(valid, Array(50).fill(200));
  assert.deepEqual(bad, [...Array(30).fill(404), ...Array(10).fill(429)]);
  // A provider repeating an accepted callback is answered 200 (a duplicate is not a rejection).
  const repeat = await apiRequest(one.baseUrl, 'POST', `/v1/callbacks/${tokens[0]}`, { status: 'OK', n: 0 }, from(ip));
  assert.equal(repeat.status, 200);
});

test('401s are counted per client IP across both relays: past the limit 429 without a lookup, except for a key in use', async () => {
  const ip = '198.51.100.3';
  const wrong = (relay: TestRelay, i: number, headers: Record<string, string> = { 'x-api-key': `wrong-key-${i}-${'x'.repeat(32)}` }) =>
    apiRequest(relay.baseUrl, 'GET', '/v1/tasks', undefined, { ...from(ip), ...headers });
  // The project's key, in use on relay one (from another address) before the flood.
  assert.equal((await one.api('GET', '/v1/tasks', undefined, from('198.51.100.4'))).status, 200);
  const statuses = [];
  for (let i = 0; i < 10; i++) statuses.push((await wrong(i % 2 === 0 ? one : two, i)).status);
  assert.deepEqual(statuses, Array(10).fill(401));
  // The 11th, here without any key (that counts too), passes the limit.
  const limited = await wrong(one, 10, {});
  assert.equal(limited.status, 429);
  assert.equal(limited.body.code, 'rate_limited');
  assert.match(limited.body.detail, /^More than 10 failed authentications from this address in 3600 s$/);
  const retryAfter = Number(limited.headers.get('retry-after'));
  assert.ok(retryAfter > 20 && retryAfter <= 3600, `Retry-After ${retryAfter}`);
  assert.equal((await wrong(two, 11)).status, 429, 'the other relay counts the same window');
  // Once blocked, even the right key from that address is refused, on a relay that has not seen it in use…
  assert.equal((await two.api('GET', '/v1/tasks', undefined, from(ip))).status, 429);
  // …but a key this relay found active a moment ago goes through (a client behind the same NAT).
  const mine = await one.api('GET', '/v1/tasks', undefined, from(ip));
  assert.equal(mine.status, 200, JSON.stringify(mine.body));
  // Other addresses are not affected.
  assert.equal((await apiRequest(one.baseUrl, 'GET', '/v1/tasks', undefined, { ...from('198.51.100.5'), 'x-api-key': 'wrong' })).status, 401);
  const [{ hits }] = await one.running.relay.sql`select hits from rate_limits where key = ${`auth-reject:${ip}`}`;
  assert.equal(hits, 12, 'every 401 up to the block was counted once; blocked requests cost no write');
});

test('unsigned callbacks to a task that requires signatures (401) are rejections: throttled after 30', async () => {
  const ip = '198.51.100.6';
  const created = await one.api('POST', '/v1/tasks', {
    targetUrl: `${target.url}/submit`,
    waitForSignal: true,
    callbackSignature: { scheme: 'standard-webhooks', secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const statuses: number[] = [];
  for (let i = 0; i < 32; i++) {
    const relay = i % 2 === 0 ? one : two;
    statuses.push((await apiRequest(relay.baseUrl, 'POST', `/v1/callbacks/${created.body.signalToken}`, { status: 'OK', i }, from(ip))).status);
  }
  assert.deepEqual(statuses, [...Array(30).fill(401), 429, 429]);
});

test('signals refused as not JSON (415) are rejections: throttled after the limit', async () => {
  const limited = await startTestRelay({ env: { RELAY_CALLBACK_REJECT_LIMIT: '3', RELAY_RATE_LIMIT_WINDOW_SECONDS: '3600' } });
  try {
    const statuses = [];
    for (let i = 0; i < 5; i++) {
      const answer = await fetch(`${limited.baseUrl}/v1/signals/${fakeToken(i)}`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"status":"completed"}' });
      statuses.push(answer.status);
      await answer.arrayBuffer();
    }
    assert.deepEqual(statuses, [415, 415, 415, 429, 429]);
  } finally {
    await limited.stop();
  }
});

test('the per-IP ceiling never throttles valid callbacks; it holds an address that is past the rejection limit, valid callbacks included', async () => {
  const limited = await startTestRelay({ env: { RELAY_CALLBACK_IP_CEILING: '5', RELAY_CALLBACK_REJECT_LIMIT: '3', RELAY_RATE_LIMIT_WINDOW_SECONDS: '3600' } });
  try {
    const tokens: string[] = [];
    for (let i = 0; i < 25; i++) {
      const created = await limited.api('POST', '/v1/tasks', { targetUrl: `${target.url}/submit`, waitForSignal: true });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      tokens.push(created.body.signalToken);
    }
    const callback = (token: string) => apiRequest(limited.baseUrl, 'POST', `/v1/callbacks/${token}`, { status: 'OK' });
    // A provider delivering 20 valid callbacks from one address: four times the ceiling, none throttled.
    const valid = [];
    for (const token of tokens.slice(0, 20)) valid.push((await callback(token)).status);
    assert.deepEqual(valid, Array(20).fill(200));
    // Bad ones: 3 rejections, then the address is past the limit (429)…
    const bad = [];
    for (let i = 0; i < 4; i++) bad.push((await badCallback(limited, '203.0.113.1', i)).status);
    assert.deepEqual(bad, [404, 404, 404, 429]);
    // …and from then on is held to the ceiling: 5 more requests (a valid one among them is still
    // accepted), then everything is 429, valid callbacks included, without a token lookup.
    const held = [(await callback(tokens[20])).status];
    for (let i = 4; i < 8; i++) held.push((await badCallback(limited, '203.0.113.1', i)).status);
    assert.deepEqual(held, [200, 429, 429, 429, 429]);
    const past = await callback(tokens[21]);
    assert.equal(past.status, 429);
    assert.match(past.body.detail, /^More than 5 requests in 3600 s from this address, which is past its limit of rejected attempts$/);
    assert.ok(Number(past.headers.get('retry-after')) > 0);
    const [row] = await limited.running.relay.sql<{ status: string }[]>`select status from tasks where callback_hash = encode(sha256(convert_to(${tokens[21]}, 'utf8')), 'hex')`;
    assert.notEqual(row.status, 'completed', 'a throttled callback was consumed');
  } finally {
    await limited.stop();
  }
});

test('the per-key API limit, with its headers', async () => {
  const limited = await startTestRelay({ env: { RELAY_API_RATE_LIMIT: '4', RELAY_RATE_LIMIT_WINDOW_SECONDS: '3600' } });
  try {
    const answers = [];
    for (let i = 0; i < 5; i++) answers.push(await limited.api('GET', '/v1/tasks'));
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 200, 429]);
    assert.deepEqual(answers.map((a) => a.headers.get('x-ratelimit-remaining')), ['3', '2', '1', '0', '0']);
    for (const a of answers) assert.equal(a.headers.get('x-ratelimit-limit'), '4');
    const reset = Number(answers[0].headers.get('x-ratelimit-reset'));
    assert.ok(reset > Date.now() / 1000 && reset <= Date.now() / 1000 + 3600, `reset ${reset}`);
    assert.equal(answers[4].body.code, 'rate_limited');
    assert.ok(Number(answers[4].headers.get('retry-after')) > 0);
    // The limit is per key: an unauthenticated request is a 401, not a 429, and costs the key nothing.
    assert.equal((await apiRequest(limited.baseUrl, 'GET', '/v1/tasks', undefined, { 'x-api-key': 'wrong-key-wrong-key' })).status, 401);
  } finally {
    await limited.stop();
  }
});
