import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CALLBACK_PLACEHOLDER } from '../../src/callbacks/token.ts';
import { mentionsPlaceholder, substituteText, substituteUrl } from '../../src/tasks/template.ts';

const CALLBACK = 'https://relay.example.com/v1/callbacks/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';
const ENCODED = encodeURIComponent(CALLBACK);

describe('mentionsPlaceholder', () => {
  test('finds the placeholder in the URL, the body or any header value', () => {
    assert.equal(CALLBACK_PLACEHOLDER, '{asyncqueue_callback_url}');
    assert.equal(mentionsPlaceholder({ targetUrl: 'https://p/run?hook={asyncqueue_callback_url}', headers: {} }), true);
    assert.equal(mentionsPlaceholder({ targetUrl: 'https://p/run', headers: {}, body: '{"webhook":"{asyncqueue_callback_url}"}' }), true);
    assert.equal(mentionsPlaceholder({ targetUrl: 'https://p/run', headers: { a: 'x', 'X-Callback': 'to {asyncqueue_callback_url}' } }), true);
  });

  test('is false without it, for near misses and for a header name that looks like it', () => {
    assert.equal(mentionsPlaceholder({ targetUrl: 'https://p/run', headers: {} }), false);
    assert.equal(mentionsPlaceholder({ targetUrl: 'https://p/run', headers: {}, body: '' }), false);
    assert.equal(mentionsPlaceholder({ targetUrl: 'https://p/{asyncqueue_callback}', headers: {}, body: '{ASYNCQUEUE_CALLBACK_URL}' }), false);
    assert.equal(mentionsPlaceholder({ targetUrl: 'https://p/%7Basyncqueue_callback_url%7D', headers: {} }), false);
    assert.equal(mentionsPlaceholder({ targetUrl: 'https://p/run', headers: { '{asyncqueue_callback_url}': 'v' } }), false);
  });
});

describe('substituteUrl', () => {
  test('URL-encodes the callback URL in the query', () => {
    const url = substituteUrl('https://queue.fal.run/fal-ai/flux?fal_webhook={asyncqueue_callback_url}', CALLBACK);
    assert.equal(url, `https://queue.fal.run/fal-ai/flux?fal_webhook=${ENCODED}`);
    assert.equal(new URL(url).searchParams.get('fal_webhook'), CALLBACK);
    assert.ok(!url.slice(url.indexOf('?')).includes('/'), 'no raw slash in the query');
  });

  test('puts the plain URL in the path', () => {
    assert.equal(substituteUrl('https://p/hooks/{asyncqueue_callback_url}', CALLBACK), `https://p/hooks/${CALLBACK}`);
  });

  test('handles both places and repeats in one URL', () => {
    const url = substituteUrl('https://p/{asyncqueue_callback_url}?a={asyncqueue_callback_url}&b=1&c={asyncqueue_callback_url}', CALLBACK);
    assert.equal(url, `https://p/${CALLBACK}?a=${ENCODED}&b=1&c=${ENCODED}`);
  });

  test('leaves a URL without the placeholder, or without a token, unchanged', () => {
    assert.equal(substituteUrl('https://p/run?x=1', CALLBACK), 'https://p/run?x=1');
    assert.equal(substituteUrl('https://p/run?hook={asyncqueue_callback_url}', undefined), 'https://p/run?hook={asyncqueue_callback_url}');
  });
});

describe('substituteText', () => {
  test('replaces every occurrence and keeps a JSON body valid', () => {
    const body = '{"webhook":"{asyncqueue_callback_url}","also":["{asyncqueue_callback_url}"]}';
    const out = substituteText(body, CALLBACK);
    assert.deepEqual(JSON.parse(out), { webhook: CALLBACK, also: [CALLBACK] });
    assert.equal(substituteText('Bearer x; cb={asyncqueue_callback_url}', CALLBACK), `Bearer x; cb=${CALLBACK}`);
  });

  test('is the identity without a callback URL or without the placeholder', () => {
    assert.equal(substituteText('{asyncqueue_callback_url}', undefined), '{asyncqueue_callback_url}');
    assert.equal(substituteText('plain', CALLBACK), 'plain');
    assert.equal(substituteText('', CALLBACK), '');
  });
});
