import assert from 'node:assert/strict';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { HttpFake, type RecordedRequest } from '../fakes/http-fake.ts';
import { Receiver } from '../fakes/receiver.ts';
import { apiRequest, startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';
import { waitForEvent } from '../helpers/wait.ts';

// DESIGN §10: every copy-paste example of README.md runs here against the real relay, with local
// fakes standing in for Anthropic, fal.ai, Replicate and the user's receiver. The requests are read
// out of README.md itself (the curl commands are split like sh would, the fenced JSON is parsed),
// so the README cannot drift from what works; only the provider origins, `https://your.app` and
// the credentials are swapped for test values. The preset examples (#### `id`) run the same way.

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** The text of "### N. …" up to the next heading. */
function readmeExample(n: number): string {
  const start = README.indexOf(`\n### ${n}. `);
  assert.ok(start >= 0, `README.md has no example ${n}`);
  const rest = README.slice(start + 1);
  const end = rest.search(/\n##+ /);
  return end < 0 ? rest : rest.slice(0, end);
}

function fencedBlock(section: string, lang: string): string {
  const match = new RegExp('```' + lang + '\\n([\\s\\S]*?)\\n```').exec(section);
  assert.ok(match, `no \`\`\`${lang} block in:\n${section}`);
  return match[1];
}

/**
 * Splits a command into words as sh does for the README's curl lines: '…' literal, "…" with $VAR
 * expansion, backslash escapes and line continuations. A variable the test does not define fails.
 */
function shellWords(command: string, vars: Record<string, string>): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let i = 0;
  const expand = (): string => {
    const m = /^\$(?:\{(\w+)\}|(\w+))/.exec(command.slice(i));
    if (!m) return command[i++];
    const name = m[1] ?? m[2];
    assert.ok(name in vars, `README uses $${name}, which this test does not define`);
    i += m[0].length;
    return vars[name];
  };
  while (i < command.length) {
    const c = command[i];
    if (c === '\\' && command[i + 1] === '\n') i += 2;
    else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
      i++;
    } else if (c === "'") {
      const end = command.indexOf("'", i + 1);
      assert.ok(end > i, 'unterminated single quote in README command');
      word = (word ?? '') + command.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      word ??= '';
      for (i++; command[i] !== '"'; ) {
        assert.ok(i < command.length, 'unterminated double quote in README command');
        if (command[i] === '\\' && '$`"\\\n'.includes(command[i + 1])) {
          word += command[i + 1];
          i += 2;
        } else if (command[i] === '$') word += expand();
        else word += command[i++];
      }
      i++;
    } else if (c === '\\') {
      word = (word ?? '') + command[i + 1];
      i += 2;
    } else if (c === '$') word = (word ?? '') + expand();
    else {
      word = (word ?? '') + c;
      i++;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

/** Replaces every occurrence of the README's `from` with `to`, insisting it is there. */
function swap(text: string, replacements: Record<string, string>): string {
  let out = text;
  for (const [from, to] of Object.entries(replacements)) {
    assert.ok(out.includes(from), `README example no longer mentions ${from}`);
    out = out.replaceAll(from, to);
  }
  return out;
}

/**
 * Runs example N's curl command (sh -c semantics for the words; curl's -s, -H and -d) against the
 * test relay instead of http://localhost:3000, after swapping `replacements` in its -d JSON.
 */
async function runReadmeCurl(n: number, vars: Record<string, string>, replacements: Record<string, string>) {
  const words = shellWords(fencedBlock(readmeExample(n), 'sh'), vars);
  assert.equal(words[0], 'curl');
  const headers: Record<string, string> = {};
  let url: string | undefined;
  let data: string | undefined;
  for (let i = 1; i < words.length; i++) {
    if (words[i] === '-s') continue;
    if (words[i] === '-H') {
      const line = words[++i];
      headers[line.slice(0, line.indexOf(':')).trim()] = line.slice(line.indexOf(':') + 1).trim();
    } else if (words[i] === '-d') data = words[++i];
    else if (words[i].startsWith('-')) assert.fail(`the test does not know curl option ${words[i]}`);
    else url = words[i];
  }
  if (!url?.startsWith('http://localhost:3000/') || data === undefined) assert.fail(`unexpected command: ${words.join(' ')}`);
  const sent = swap(data, replacements);
  const answer = await apiRequest(relay.baseUrl, 'POST', url.slice('http://localhost:3000'.length), sent, headers);
  return { answer, sent: JSON.parse(sent) };
}

let relay: TestRelay;
let anthropic: HttpFake;
let fal: HttpFake;
let replicate: HttpFake;
let receiver: Receiver;
/** Runway, Luma, Stability and ElevenLabs stand-ins (poll and preset examples). */
let runway: HttpFake;
let luma: HttpFake;
let stability: HttpFake;
let elevenlabs: HttpFake;

before(async () => {
  relay = await startTestRelay();
  [anthropic, fal, replicate, receiver] = await Promise.all([HttpFake.start(), HttpFake.start(), HttpFake.start(), Receiver.start(relay.webhookSecret)]);
  [runway, luma, stability, elevenlabs] = await Promise.all([HttpFake.start(), HttpFake.start(), HttpFake.start(), HttpFake.start()]);
});
after(async () => {
  await relay.stop();
  await Promise.all([anthropic.close(), fal.close(), replicate.close(), receiver.close(), runway.close(), luma.close(), stability.close(), elevenlabs.close()]);
});

const anthropicKey = `sk-ant-api03-test-${randomBytes(12).toString('hex')}`;
const haiku = 'Requests wait in line\na callback rings at the door\nthe answer arrives';
/** An Anthropic Messages API answer (POST /v1/messages, 200). */
const anthropicMessage = {
  ...{ id: 'msg_01XFDUDYJgAACzvnptvVoYEL', type: 'message', role: 'assistant', model: 'claude-sonnet-4-5-20250929' },
  ...{ content: [{ type: 'text', text: haiku }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 14, output_tokens: 22 } },
};

/**
 * The fake Anthropic answers only when the credentials arrive exactly as the README gives them.
 * While `gate` is set it holds the answer (a slow generation) and says so with a 'holding' event.
 */
let gate: Promise<void> | undefined;
function serveAnthropic(): void {
  anthropic.setHandler(async (req) => {
    if (req.path !== '/v1/messages' || req.headers['x-api-key'] !== anthropicKey || req.headers['anthropic-version'] !== '2023-06-01') {
      return { status: 401, body: { type: 'error', error: { type: 'authentication_error', message: 'invalid x-api-key' } } };
    }
    anthropic.emit('holding', req);
    await gate;
    return { status: 200, headers: { 'request-id': 'req_011CUTestAnswer' }, body: anthropicMessage };
  });
}

/** README example 1's curl, with the given relay key and `https://your.app` pointed at `hookOrigin`. */
const example1 = (relayKey: string, hookOrigin: string) =>
  runReadmeCurl(1, { RELAY_KEY: relayKey, ANTHROPIC_API_KEY: anthropicKey }, { 'https://api.anthropic.com': anthropic.url, 'https://your.app': hookOrigin });

const asString = (headers: RecordedRequest['headers']): Record<string, string> =>
  Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, String(v)]));

test('README example 1: fire-and-forget LLM call answers 201 at once and delivers the model answer', async () => {
  serveAnthropic();
  let release!: () => void;
  gate = new Promise((resolve) => (release = resolve));
  try {
    const before = await relay.api('GET', '/v1/tasks?limit=100');
    // Bad path first: the same command with a wrong key is refused and creates nothing.
    const refused = await example1('wrong', receiver.fake.url);
    assert.equal(refused.answer.status, 401);
    assert.equal(refused.answer.headers.get('content-type'), 'application/problem+json');
    assert.equal(refused.answer.body.status, 401);
    assert.deepEqual((await relay.api('GET', '/v1/tasks?limit=100')).body.tasks, before.body.tasks);

    const { answer: created, sent } = await example1(relay.apiKey, receiver.fake.url);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(sent.headers['x-api-key'], anthropicKey); // the shell splice put the key in
    const task = created.body.task;
    assert.equal(created.body.callbackUrl, undefined); // nothing to wait for: no token minted
    assert.equal(task.timeout, 300);
    assert.equal(task.targetUrl, `${anthropic.url}/v1/messages`);
    assert.equal(task.onCompleteUrl, `${receiver.fake.url}/hooks/relay`);

    // The relay is now holding the model call, not the client: the 201 came first.
    const held: RecordedRequest = await waitForEvent(anthropic, 'holding', () => anthropic.requests.find((r) => r.text.includes('haiku')));
    assert.deepEqual(JSON.parse(held.text), sent.body);
    assert.equal(held.method, 'POST');
    assert.equal(held.headers['content-type'], 'application/json');
    assert.equal((await relay.api('GET', `/v1/tasks/${task.id}`)).body.task.status, 'processing');
    release();

    const [delivery] = await receiver.waitForDeliveries(task.id);
    assert.ok(delivery.payload, delivery.verifyError);
    assert.equal(delivery.request.path, '/hooks/relay');
    assert.equal(delivery.payload.event, 'task.completed');
    const result = (delivery.payload.task as any).result;
    assert.equal(result.statusCode, 200);
    assert.equal(JSON.parse(result.body).content[0].text, haiku);
    assert.deepEqual(JSON.parse(result.body), anthropicMessage);

    // Every view shows the credential redacted; none of them, nor the stored row, holds it.
    const fetched = await waitForStatus(relay, task.id, 'completed');
    const listed = (await relay.api('GET', '/v1/tasks?limit=100')).body.tasks.find((t: any) => t.id === task.id);
    for (const view of [task, fetched, listed, delivery.payload.task as any]) {
      assert.equal(view.headers['x-api-key'], '[redacted]');
      assert.equal(view.headers['anthropic-version'], '2023-06-01');
    }
    const timeline = await relay.api('GET', `/v1/tasks/${task.id}/events`);
    const [row] = await relay.running.relay.sql<{ text: string }[]>`select t::text as text from tasks t where id = ${task.id}`;
    for (const text of [JSON.stringify(created.body), JSON.stringify(fetched), JSON.stringify(listed), delivery.request.text, JSON.stringify(timeline.body), row.text]) {
      assert.ok(!text.includes(anthropicKey), `the Anthropic key leaked into: ${text.slice(0, 200)}`);
    }
  } finally {
    release();
    gate = undefined;
  }
});

/** fal's real webhook body (docs.fal.ai/model-endpoints/webhooks); kept as text so the 18-digit seed survives. */
const falRequestId = '80e732af-660e-45cd-bd63-580e4f2a94cc';
const falWebhookBody =
  `{"request_id":"${falRequestId}","gateway_request_id":"${falRequestId}","status":"OK",` +
  `"payload":{"images":[{"url":"https://v3.fal.media/files/lion/lighthouse.png","content_type":"image/png","file_name":"lighthouse.png","file_size":1824075,"width":1024,"height":1024}],"seed":196619188014358660}}`;

test('README example 2: fal.ai gets the callback URL-encoded in fal_webhook, and its webhook completes the task', async () => {
  const falKey = `test-key-id:${randomBytes(12).toString('hex')}`;
  fal.setHandler((req) => {
    const base = `${fal.url}/fal-ai/flux/requests/${falRequestId}`;
    if (req.headers.authorization !== `Key ${falKey}`) return { status: 401, body: { detail: 'Unauthorized' } };
    return {
      status: 200,
      body: { status: 'IN_QUEUE', request_id: falRequestId, gateway_request_id: falRequestId, response_url: base, status_url: `${base}/status`, cancel_url: `${base}/cancel`, queue_position: 0 },
    };
  });
  const { answer: created, sent } = await runReadmeCurl(2, { RELAY_KEY: relay.apiKey, FAL_KEY: falKey }, {
    'https://queue.fal.run': fal.url,
    'https://your.app': receiver.fake.url,
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const { task, callbackUrl } = created.body;
  assert.equal(task.targetUrl, `${fal.url}/fal-ai/flux/dev?fal_webhook={asyncqueue_callback_url}`);
  assert.equal(task.waitForSignal, true);
  assert.equal(task.maxWaitTime, 900);
  assert.equal(task.headers.authorization, '[redacted]');

  const [submit] = await fal.waitForRequests(1);
  assert.equal(submit.path, '/fal-ai/flux/dev');
  assert.equal(submit.url.search, `?fal_webhook=${encodeURIComponent(callbackUrl)}`);
  assert.deepEqual(JSON.parse(submit.text), sent.body);
  await waitForStatus(relay, task.id, 'waiting');

  // fal, done generating, POSTs its result to the URL decoded from its fal_webhook parameter.
  const hook = await fetch(submit.url.searchParams.get('fal_webhook')!, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-fal-webhook-request-id': falRequestId, 'x-fal-webhook-timestamp': String(Math.floor(Date.now() / 1000)) },
    body: falWebhookBody,
  });
  assert.equal(hook.status, 200, await hook.text());

  const [delivery] = await receiver.waitForDeliveries(task.id);
  assert.ok(delivery.payload, delivery.verifyError);
  assert.equal(delivery.payload.event, 'task.completed');
  assert.equal((delivery.payload.task as any).result.body, falWebhookBody);
  assert.equal((delivery.payload.task as any).result.statusCode, 200);
  const done = await waitForStatus(relay, task.id, 'completed');
  assert.equal(done.result.body, falWebhookBody);
  assert.equal(JSON.stringify(done).includes(falKey), false);
});

test('README example 3: Replicate gets the callback in the body, and its succeeded prediction completes the task', async () => {
  const replicateToken = `r8_test${randomBytes(12).toString('hex')}`;
  const prediction = (status: string, extra: object) => ({
    ...{ id: 'ufawqhfynnddngldkgtslldrkq', model: 'black-forest-labs/flux-schnell', version: 'dp-4d0bcc010b3049749a251855f12800be' },
    ...{ input: { prompt: 'a lighthouse at dawn' }, logs: '', output: null, data_removed: false, error: null, status, created_at: '2025-10-01T10:00:00.000Z' },
    urls: {
      get: `${replicate.url}/v1/predictions/ufawqhfynnddngldkgtslldrkq`,
      cancel: `${replicate.url}/v1/predictions/ufawqhfynnddngldkgtslldrkq/cancel`,
      web: 'https://replicate.com/p/ufawqhfynnddngldkgtslldrkq',
    },
    ...extra,
  });
  replicate.setHandler((req) =>
    req.headers.authorization === `Bearer ${replicateToken}`
      ? { status: 201, body: prediction('starting', { webhook: JSON.parse(req.text).webhook, webhook_events_filter: ['completed'] }) }
      : { status: 401, body: { title: 'Unauthenticated', detail: 'You did not pass a valid authentication token', status: 401 } },
  );
  const json = swap(fencedBlock(readmeExample(3), 'json'), {
    'r8_…': replicateToken,
    'https://api.replicate.com': replicate.url,
    'https://your.app': receiver.fake.url,
  });
  const created = await relay.api('POST', '/v1/tasks', json);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const { task, callbackUrl } = created.body;
  assert.equal(JSON.parse(task.body).webhook, '{asyncqueue_callback_url}'); // views keep the template

  const [submit] = await replicate.waitForRequests(1);
  assert.equal(submit.path, '/v1/models/black-forest-labs/flux-schnell/predictions');
  assert.deepEqual(JSON.parse(submit.text), { ...JSON.parse(json).body, webhook: callbackUrl });
  await waitForStatus(relay, task.id, 'waiting');

  // Replicate's start event (sent even with the completed filter) is progress: 202, still waiting.
  const starting = await fetch(JSON.parse(submit.text).webhook, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(prediction('starting', { webhook: callbackUrl })) });
  assert.equal(starting.status, 202, await starting.text());
  assert.equal((await relay.api('GET', `/v1/tasks/${task.id}`)).body.task.status, 'waiting');

  const succeeded = JSON.stringify(
    prediction('succeeded', {
      output: ['https://replicate.delivery/xezq/lighthouse/out-0.webp'],
      logs: 'Using seed: 1234\n100%|██████████| 4/4',
      metrics: { predict_time: 1.21, total_time: 1.64 },
      started_at: '2025-10-01T10:00:00.400Z',
      completed_at: '2025-10-01T10:00:01.640Z',
      webhook: callbackUrl,
      webhook_events_filter: ['completed'],
    }),
  );
  const hook = await fetch(JSON.parse(submit.text).webhook, { method: 'POST', headers: { 'content-type': 'application/json' }, body: succeeded });
  assert.equal(hook.status, 200, await hook.text());

  const [delivery] = await receiver.waitForDeliveries(task.id);
  assert.ok(delivery.payload, delivery.verifyError);
  assert.equal(delivery.payload.event, 'task.completed');
  assert.equal((delivery.payload.task as any).result.body, succeeded);
  assert.equal((delivery.payload.task as any).headers.authorization, '[redacted]');
  assert.equal((await waitForStatus(relay, task.id, 'completed')).result.body, succeeded);
});

/** The text of the preset example "#### `id`" up to the next heading. */
function presetExample(id: string): string {
  const start = README.indexOf(`\n#### \`${id}\``);
  assert.ok(start >= 0, `README.md has no preset example for ${id}`);
  const rest = README.slice(start + 1);
  const end = rest.slice(1).search(/\n#+ /);
  return end < 0 ? rest : rest.slice(0, end + 1);
}

const runwayKey = `key_${randomBytes(64).toString('hex')}`;
const runwayTaskId = '17f20503-6c24-4c16-946b-35dbbce2af2f';

/** Runway answers the submit with an id, then THROTTLED, RUNNING, SUCCEEDED — only with the README's headers. */
function serveRunway(): void {
  let polls = 0;
  runway.setHandler((req) => {
    if (req.headers.authorization !== `Bearer ${runwayKey}` || req.headers['x-runway-version'] !== '2024-11-06') {
      return { status: 401, body: { error: 'Invalid API key or X-Runway-Version' } };
    }
    if (req.method === 'POST' && req.path === '/v1/image_to_video') return { status: 200, body: { id: runwayTaskId } };
    if (req.method === 'GET' && req.path === `/v1/tasks/${runwayTaskId}`) {
      const status = ['THROTTLED', 'RUNNING', 'SUCCEEDED'][Math.min(polls++, 2)];
      return { status: 200, body: { id: runwayTaskId, createdAt: '2024-06-27T19:49:32.334Z', status, ...(status === 'SUCCEEDED' ? { output: ['https://dnznrvs05pmza.cloudfront.net/lighthouse.mp4'] } : {}) } };
    }
    return { status: 404, body: { error: 'Not found' } };
  });
}

test('README example 4: a Runway task (preset) is polled through THROTTLED to SUCCEEDED and delivered', async () => {
  serveRunway();
  const { answer: created } = await runReadmeCurl(4, { RELAY_KEY: relay.apiKey, RUNWAYML_API_SECRET: runwayKey }, {
    'https://api.dev.runwayml.com': runway.url,
    'https://your.app': receiver.fake.url,
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(created.body.task.provider, 'runwayml');
  assert.equal(created.body.callbackUrl, undefined);
  await waitForStatus(relay, created.body.task.id, 'polling');
  const [delivery] = await receiver.waitForDeliveries(created.body.task.id, 1, 20_000);
  assert.ok(delivery.payload, delivery.verifyError);
  assert.equal(delivery.payload.event, 'task.completed');
  assert.deepEqual(JSON.parse((delivery.payload.task as any).result.body).output, ['https://dnznrvs05pmza.cloudfront.net/lighthouse.mp4']);
  assert.equal((delivery.payload.task as any).headers.authorization, '[redacted]');
});

test('README example 4 (explicit pollConfig): the same task without the preset completes the same way', async () => {
  serveRunway();
  const json = swap(fencedBlock(readmeExample(4), 'json'), { 'key_…': runwayKey, 'https://api.dev.runwayml.com': runway.url, 'https://your.app': receiver.fake.url });
  const created = await relay.api('POST', '/v1/tasks', json);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(created.body.task.provider, null);
  const done = await waitForStatus(relay, created.body.task.id, 'completed', 20_000);
  assert.equal(JSON.parse(done.result.body).status, 'SUCCEEDED');
});

test('README preset luma: callback_url is added, dreaming is progress, completed completes', async () => {
  const generation = (state: string) => ({ id: 'c0a8e2b4-luma', state, failure_reason: null, assets: { video: state === 'completed' ? 'https://storage.cdn-luma.com/teddy.mp4' : null } });
  luma.setHandler((req) => (req.headers.authorization === 'Bearer luma-test' ? { status: 201, body: generation('queued') } : { status: 401, body: { detail: 'Invalid API key' } }));
  const json = swap(fencedBlock(presetExample('luma'), 'json'), { 'luma-…': 'luma-test', 'https://api.lumalabs.ai': luma.url, 'https://your.app': receiver.fake.url });
  const created = await relay.api('POST', '/v1/tasks', json);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const [submit] = await luma.waitForRequests(1, (r) => r.method === 'POST');
  const callbackUrl = JSON.parse(submit.text).callback_url;
  assert.equal(callbackUrl, created.body.callbackUrl);
  await waitForStatus(relay, created.body.task.id, 'waiting');
  const hook = (state: string) => fetch(callbackUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(generation(state)) });
  assert.equal((await hook('dreaming')).status, 202);
  assert.equal((await hook('completed')).status, 200);
  const [delivery] = await receiver.waitForDeliveries(created.body.task.id);
  assert.equal(JSON.parse((delivery.payload!.task as any).result.body).assets.video, 'https://storage.cdn-luma.com/teddy.mp4');
});

test('README preset stability-video: 202 then 200 with the video bytes as base64', async () => {
  const video = Buffer.concat([Buffer.from([0, 0, 0, 0x18]), Buffer.from('ftypmp42'), randomBytes(64)]);
  let polls = 0;
  stability.setHandler((req) => {
    if (req.headers.authorization !== 'Bearer sk-test') return { status: 401, body: { name: 'unauthorized', errors: ['bad key'] } };
    if (req.method === 'POST') return { status: 200, body: { id: 'a6dc6c6e20acda01' } };
    if (req.headers.accept !== 'video/*') return { status: 406, body: { errors: ['accept'] } };
    return polls++ < 1 ? { status: 202, body: { id: 'a6dc6c6e20acda01', status: 'in-progress' } } : { status: 200, headers: { 'content-type': 'video/mp4', 'finish-reason': 'SUCCESS', seed: '1' }, body: video };
  });
  const json = swap(fencedBlock(presetExample('stability-video'), 'json'), { 'sk-…': 'sk-test', 'https://api.stability.ai': stability.url, 'https://your.app': receiver.fake.url });
  const created = await relay.api('POST', '/v1/tasks', json);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const [submit] = await stability.waitForRequests(1, (r) => r.method === 'POST');
  assert.match(submit.text, /^--relay\r\nContent-Disposition: form-data; name="image"/);
  const [delivery] = await receiver.waitForDeliveries(created.body.task.id, 1, 20_000);
  const result = (delivery.payload!.task as any).result;
  assert.equal(result.bodyEncoding, 'base64');
  assert.deepEqual(Buffer.from(result.body, 'base64'), video);
});

test('README preset elevenlabs-dubbing: dubbing then dubbed completes with the metadata', async () => {
  let polls = 0;
  elevenlabs.setHandler((req) => {
    if (req.headers['xi-api-key'] !== 'sk_test') return { status: 401, body: { detail: { status: 'invalid_api_key' } } };
    if (req.method === 'POST') return { status: 200, body: { dubbing_id: '21m00Tcm4TlvDq8ikWAM', expected_duration_sec: 30 } };
    return { status: 200, body: { dubbing_id: '21m00Tcm4TlvDq8ikWAM', name: 'clip', status: polls++ < 1 ? 'dubbing' : 'dubbed', target_languages: ['es'] } };
  });
  const json = swap(fencedBlock(presetExample('elevenlabs-dubbing'), 'json'), { 'sk_…': 'sk_test', 'https://api.elevenlabs.io': elevenlabs.url, 'https://your.app': receiver.fake.url });
  const created = await relay.api('POST', '/v1/tasks', json);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const [submit] = await elevenlabs.waitForRequests(1, (r) => r.method === 'POST');
  assert.equal(submit.text, 'source_url=https%3A%2F%2Fexample.com%2Fclip.mp4&target_lang=es');
  const [delivery] = await receiver.waitForDeliveries(created.body.task.id, 1, 20_000);
  assert.equal(JSON.parse((delivery.payload!.task as any).result.body).status, 'dubbed');
});

// README example 5, "Any language, by hand", as written there.
function verifyStandardByHand(secret: string, headers: Record<string, string>, body: string, nowSeconds = Date.now() / 1000): boolean {
  const key = Buffer.from(secret.slice(secret.indexOf('whsec_') + 'whsec_'.length), 'base64');
  const expected = Buffer.from(createHmac('sha256', key).update(`${headers['webhook-id']}.${headers['webhook-timestamp']}.${body}`).digest('base64'));
  if (Math.abs(nowSeconds - Number(headers['webhook-timestamp'])) > 5 * 60) return false;
  return headers['webhook-signature'].split(' ').some((entry) => {
    const given = Buffer.from(entry.slice(entry.indexOf('v1,') + 'v1,'.length));
    return entry.startsWith('v1,') && given.length === expected.length && timingSafeEqual(given, expected);
  });
}

function verifyAsyncQueueByHand(secret: string, headers: Record<string, string>, body: string): boolean {
  const match = /^t=(\d+),v1=([0-9a-f]+)$/.exec(headers['x-asyncqueue-signature'] ?? '');
  if (!match) return false;
  const expected = Buffer.from(createHmac('sha256', secret).update(`${match[1]}.${body}`).digest('hex'));
  const given = Buffer.from(match[2]);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

test('README example 5: both verification recipes accept a delivery and reject tampering; webhook-id deduplicates a redelivery', async () => {
  // The README's express handler, line for line, on a local server.
  const wh = new Webhook(relay.webhookSecret);
  const seen = new Set<string>();
  const processed: any[] = [];
  const app = await HttpFake.start((req) => {
    let event: any;
    try {
      event = wh.verify(req.text, asString(req.headers));
    } catch {
      return { status: 400 };
    }
    if (seen.has(String(req.headers['webhook-id']))) return { status: 200 }; // duplicate
    seen.add(String(req.headers['webhook-id']));
    processed.push(event);
    return { status: 200 };
  });
  try {
    serveAnthropic();
    const { answer: created } = await example1(relay.apiKey, app.url);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const taskId = created.body.task.id;
    const [first] = await app.waitForRequests(1, (r) => r.text.includes(taskId));
    const headers = asString(first.headers);
    assert.equal(first.path, '/hooks/relay');
    assert.equal(processed.length, 1);
    assert.equal(processed[0].event, 'task.completed');
    assert.equal(processed[0].task.id, taskId);
    assert.equal(JSON.parse(processed[0].task.result.body).content[0].text, haiku);

    // By hand, both schemes accept the real delivery …
    assert.match(headers['webhook-id'], /^msg_/);
    assert.match(headers['webhook-signature'], /^v1,[A-Za-z0-9+/]+=*$/);
    assert.equal(headers['x-asyncqueue-signature'].split(',')[0], `t=${headers['webhook-timestamp']}`);
    assert.equal(verifyStandardByHand(relay.webhookSecret, headers, first.text), true);
    assert.equal(verifyAsyncQueueByHand(relay.webhookSecret, headers, first.text), true);
    // … and reject a tampered body, a wrong secret and (Standard Webhooks) a stale timestamp.
    const tampered = first.text.replace('"event":"task.completed"', '"event":"task.failed"');
    assert.notEqual(tampered, first.text);
    assert.equal(verifyStandardByHand(relay.webhookSecret, headers, tampered), false);
    assert.equal(verifyAsyncQueueByHand(relay.webhookSecret, headers, tampered), false);
    assert.throws(() => wh.verify(tampered, headers));
    const otherSecret = `whsec_${randomBytes(24).toString('base64')}`;
    assert.equal(verifyStandardByHand(otherSecret, headers, first.text), false);
    assert.equal(verifyAsyncQueueByHand(otherSecret, headers, first.text), false);
    assert.equal(verifyStandardByHand(relay.webhookSecret, headers, first.text, Number(headers['webhook-timestamp']) + 301), false);
    // The snippet answers a forged delivery 400 and processes nothing.
    const signed = ['content-type', 'webhook-id', 'webhook-timestamp', 'webhook-signature', 'x-asyncqueue-signature'];
    const forged = await fetch(`${app.url}/hooks/relay`, {
      method: 'POST',
      headers: Object.fromEntries(signed.map((name) => [name, headers[name]])),
      body: tampered,
    });
    assert.equal(forged.status, 400);
    assert.equal(processed.length, 1);

    // A redelivery carries the same webhook-id, verifies again, and the snippet skips it as a duplicate.
    const redeliver = await relay.api('POST', `/v1/tasks/${taskId}/redeliver`);
    assert.equal(redeliver.status, 202, JSON.stringify(redeliver.body));
    const real = (r: RecordedRequest) => r.text.includes(taskId) && r.text !== tampered;
    const [, second] = await app.waitForRequests(2, real);
    assert.equal(second.headers['webhook-id'], headers['webhook-id']);
    assert.equal(verifyStandardByHand(relay.webhookSecret, asString(second.headers), second.text), true);
    assert.equal(verifyAsyncQueueByHand(relay.webhookSecret, asString(second.headers), second.text), true);
    assert.equal(processed.length, 1);
    assert.deepEqual([...seen], [headers['webhook-id']]);
  } finally {
    await app.close();
  }
});
