import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { apiRequest, startTestRelay, type TestRelay } from '../helpers/relay.ts';

let relay: TestRelay;
before(async () => {
  relay = await startTestRelay();
});
after(async () => {
  await relay.stop();
});

test('GET /docs serves a self-contained page built from /openapi.json', async () => {
  const res = await fetch(`${relay.baseUrl}/docs`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
  const html = await res.text();
  assert.match(html, /<title>asyncrelay API<\/title>/);
  assert.match(html, /fetch\('\/openapi\.json'\)/);
  // No third-party script or stylesheet: the page must work without internet access.
  assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href="https?:/);
  const doc = await apiRequest(relay.baseUrl, 'GET', '/openapi.json');
  assert.equal(doc.status, 200);
  assert.ok(doc.body.paths['/v1/tasks'].post, 'the page has an API to render');
});
