import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { classifyParsed } from '../../src/providers/callback-rules.ts';
import { readPath, renderTemplate } from '../../src/providers/json-path.ts';
import { completePollConfig, PollConfigInput } from '../../src/providers/poll-config.ts';
import { judgePoll, judgeResultFetch, resultOf } from '../../src/providers/poll-verdict.ts';
import { PRESETS } from '../../src/providers/preset.ts';
import { verifyStandardWebhook } from '../../src/providers/verify-signature.ts';
import type { OutboundResult } from '../../src/outbound/http.ts';

const answer = (statusCode: number, body: unknown, headers: Record<string, string> = {}): OutboundResult => ({
  ok: true,
  response: { statusCode, headers, body: typeof body === 'string' ? body : JSON.stringify(body), duration: 5 },
});

test('readPath walks objects and arrays; missing steps are undefined', () => {
  const value = { urls: { get: 'g' }, output: ['a', 'b'], n: null };
  assert.equal(readPath(value, 'urls.get'), 'g');
  assert.equal(readPath(value, 'output.1'), 'b');
  assert.equal(readPath(value, 'n.x'), undefined);
  assert.equal(readPath(value, 'urls.get.x'), undefined);
  assert.equal(readPath('text', 'a'), undefined);
});

test('renderTemplate: a leading reference is a whole URL; inner ones are encoded; absent roots stay; missing values are reported', () => {
  const context = {
    startResult: { statusCode: 201, headers: { location: 'https://p.example/jobs/1' }, body: { status_url: 'https://q.example/s?a=1', id: 'a/b c' } },
    target: { origin: 'https://api.example' },
  };
  assert.deepEqual(renderTemplate('{startResult.body.status_url}', context), { text: 'https://q.example/s?a=1', missing: [] });
  assert.deepEqual(renderTemplate('{target.origin}/v1/tasks/{startResult.body.id}', context), { text: 'https://api.example/v1/tasks/a%2Fb%20c', missing: [] });
  assert.deepEqual(renderTemplate('{startResult.headers.Location}', context), { text: 'https://p.example/jobs/1', missing: [] });
  assert.deepEqual(renderTemplate('https://x/{startResult.statusCode}/{pollResult.body.id}', context), { text: 'https://x/201/{pollResult.body.id}', missing: [] });
  assert.deepEqual(renderTemplate('https://x/{startResult.body.nope}', context), { text: 'https://x/{startResult.body.nope}', missing: ['{startResult.body.nope}'] });
  assert.deepEqual(renderTemplate('https://x/{startResult.body}', context).missing, ['{startResult.body}'], 'an object is not a URL part');
});

test('completePollConfig needs urlTemplate and a status rule; defaults interval 5 s and forwardAuth false', () => {
  assert.deepEqual(completePollConfig({ statusPath: 's', doneValues: ['d'] }), { ok: false, message: 'pollConfig.urlTemplate: required' });
  const done = completePollConfig({ urlTemplate: '{startResult.body.u}', statusCodes: { running: [202], done: [200] } });
  assert.ok(done.ok);
  assert.equal(done.config.interval, 5);
  assert.equal(done.config.forwardAuth, false);
  assert.deepEqual(done.config.failValues, []);
});

test('every preset pollConfig passes the same validation a task\'s pollConfig does', () => {
  for (const preset of PRESETS) {
    const parsed = PollConfigInput.safeParse(preset.poll);
    assert.ok(parsed.success, `${preset.id}: ${parsed.error?.message}`);
    assert.ok(completePollConfig(parsed.data).ok, preset.id);
  }
});

const runway = completePollConfig(PRESETS.find((p) => p.id === 'runwayml')!.poll);
const stability = completePollConfig(PRESETS.find((p) => p.id === 'stability-video')!.poll);

test('judgePoll by status value: running, done, failed with the provider message; 429/5xx/network back off; 4xx fails', () => {
  assert.ok(runway.ok && stability.ok);
  assert.deepEqual(judgePoll(runway.config, answer(200, { status: 'THROTTLED' })), { kind: 'running', state: 'THROTTLED' });
  assert.equal(judgePoll(runway.config, answer(200, { status: 'SUCCEEDED', output: [] })).kind, 'done');
  const failed = judgePoll(runway.config, answer(200, { status: 'FAILED', failure: 'bad input', failureCode: 'INPUT' }));
  assert.equal(failed.kind, 'failed');
  assert.deepEqual(failed.kind === 'failed' && failed.error, { code: 'provider_failed', message: 'bad input' });
  assert.deepEqual(judgePoll(runway.config, answer(429, {}, { 'retry-after': '7' })), { kind: 'backoff', reason: 'HTTP 429', retryAfterMs: 7000 });
  assert.equal(judgePoll(runway.config, answer(502, 'bad gateway')).kind, 'backoff');
  assert.equal(judgePoll(runway.config, answer(200, '<html>')).kind, 'backoff');
  assert.equal(judgePoll(runway.config, { ok: false, error: { code: 'network', message: 'ECONNRESET' }, duration: 1 }).kind, 'backoff');
  assert.equal(judgePoll(runway.config, { ok: false, error: { code: 'refused', message: 'not allowed' }, duration: 1 }).kind, 'failed');
  const rejected = judgePoll(runway.config, answer(404, { error: 'Task not found' }));
  assert.deepEqual(rejected.kind === 'failed' && rejected.error, { code: 'poll_rejected', message: 'Provider answered HTTP 404', statusCode: 404 });
});

test('judgePoll by status code (Stability): 202 running, 200 done, 4xx failed with errors', () => {
  assert.ok(stability.ok);
  assert.deepEqual(judgePoll(stability.config, answer(202, { id: 'x', status: 'in-progress' })), { kind: 'running', state: '202' });
  assert.equal(judgePoll(stability.config, answer(200, 'bytes')).kind, 'done');
  const failed = judgePoll(stability.config, answer(400, { id: 'x', name: 'bad_request', errors: ['image: required'] }));
  assert.deepEqual(failed.kind === 'failed' && failed.error, { code: 'poll_rejected', message: '["image: required"]', statusCode: 400 });
});

test('judgeResultFetch (fal response_url): 2xx is the result, 422 a failure, 503 a backoff; resultPath extracts', () => {
  const fal = completePollConfig(PRESETS.find((p) => p.id === 'fal')!.poll);
  assert.ok(fal.ok);
  assert.equal(judgeResultFetch(fal.config, answer(200, { images: [] })).kind, 'done');
  const failed = judgeResultFetch(fal.config, answer(422, { detail: [{ msg: 'field required' }] }));
  assert.deepEqual(failed.kind === 'failed' && failed.error, { code: 'provider_failed', message: '[{"msg":"field required"}]', statusCode: 422 });
  assert.equal(judgeResultFetch(fal.config, answer(503, '')).kind, 'backoff');
  const response = { statusCode: 200, headers: {}, body: '{"data":{"out":[1,2]},"other":1}', duration: 3 };
  assert.deepEqual(resultOf({ ...fal.config, resultPath: 'data.out' }, response), { statusCode: 200, headers: { 'content-type': 'application/json' }, body: '[1,2]', duration: 3 });
});

test('classifyParsed: done, fail (message at errorPath or the state), anything else progress', () => {
  const rule = { statusPath: 'status', doneValues: ['succeeded'], failValues: ['failed', 'canceled'], errorPath: 'error' };
  assert.deepEqual(classifyParsed({ status: 'starting' }, rule), { kind: 'progress', state: 'starting' });
  assert.deepEqual(classifyParsed({ status: 'succeeded' }, rule), { kind: 'success', state: 'succeeded' });
  assert.deepEqual(classifyParsed({ status: 'failed', error: 'OOM' }, rule), { kind: 'failure', state: 'failed', message: 'OOM' });
  assert.deepEqual(classifyParsed({ status: 'canceled', error: null }, rule), { kind: 'failure', state: 'canceled', message: 'Provider reported status = canceled' });
  assert.deepEqual(classifyParsed(undefined, rule), { kind: 'progress', state: undefined });
  assert.deepEqual(classifyParsed({ code: 0 }, { statusPath: 'code', doneValues: [0], failValues: [1] }), { kind: 'success', state: '0' });
});

test('verifyStandardWebhook accepts what the reference library signs and nothing else', () => {
  const secret = `whsec_${randomBytes(24).toString('base64')}`;
  const body = '{"id":"p1","status":"succeeded"}';
  const now = new Date();
  const signature = new Webhook(secret).sign('msg_1', now, body);
  const headers = { 'webhook-id': 'msg_1', 'webhook-timestamp': String(Math.floor(now.getTime() / 1000)), 'webhook-signature': `v1,AAAA ${signature}` };
  assert.deepEqual(verifyStandardWebhook(secret, headers, Buffer.from(body)), { ok: true });
  assert.equal(verifyStandardWebhook(secret, headers, Buffer.from(body + ' ')).ok, false);
  assert.equal(verifyStandardWebhook(secret, { ...headers, 'webhook-id': 'msg_2' }, Buffer.from(body)).ok, false);
  assert.equal(verifyStandardWebhook(`whsec_${randomBytes(24).toString('base64')}`, headers, Buffer.from(body)).ok, false);
  assert.equal(verifyStandardWebhook(secret, headers, Buffer.from(body), now.getTime() + 301_000).ok, false);
  assert.equal(verifyStandardWebhook(secret, { ...headers, 'webhook-signature': signature.replace('v1,', 'v2,') }, Buffer.from(body)).ok, false);
});
