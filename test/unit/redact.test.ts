import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isSensitiveHeader } from '../../src/outbound/header-rules.ts';
import { REDACTED, redactHeaders, redactUrl } from '../../src/tasks/redact.ts';
import { canonicalUrl } from '../../src/tasks/url-template.ts';

describe('header redaction', () => {
  test('credential-bearing names are sensitive, whatever their case', () => {
    for (const name of [
      'authorization',
      'Authorization',
      'Proxy-Authorization',
      'x-api-key',
      'X-API-KEY',
      'x-goog-api-key',
      'api-key',
      'cookie',
      'Set-Cookie',
      'x-auth-token',
      'X-Webhook-Secret',
      'x-amz-security-token',
      'x-password',
      'x-hub-signature',
      'x-session-id',
      'x-client-credential',
    ]) {
      assert.equal(isSensitiveHeader(name), true, name);
    }
  });

  test('ordinary names are not', () => {
    for (const name of ['content-type', 'Accept', 'user-agent', 'x-request-id', 'x-trace', 'prefer', 'x-fal-target-url', 'idempotency-id']) {
      assert.equal(isSensitiveHeader(name), false, name);
    }
  });

  test('redactHeaders replaces only sensitive values, keeps names and order, and copies', () => {
    const input = { 'Content-Type': 'application/json', Authorization: 'Key fal-123', 'X-Trace': 't', 'x-api-key': 'sk-1' };
    const out = redactHeaders(input);
    assert.equal(REDACTED, '[redacted]');
    assert.deepEqual(out, { 'Content-Type': 'application/json', Authorization: '[redacted]', 'X-Trace': 't', 'x-api-key': '[redacted]' });
    assert.deepEqual(Object.keys(out), Object.keys(input));
    assert.equal(input.Authorization, 'Key fal-123', 'the input is not modified');
    assert.deepEqual(redactHeaders({}), {});
  });
});

describe('URL redaction', () => {
  test('userinfo and sensitive query values are hidden, everything else kept byte for byte', () => {
    const cases: Array<[string, string]> = [
      ['https://api.example.com/v1/run?x=1', 'https://api.example.com/v1/run?x=1'],
      ['https://user:pa55@api.example.com/v1', 'https://[redacted]@api.example.com/v1'],
      ['https://tok3n@api.example.com/', 'https://[redacted]@api.example.com/'],
      ['https://h.example/p?api_key=sk-1&model=m', 'https://h.example/p?api_key=[redacted]&model=m'],
      ['https://h.example/p?key=AIza1&token=t2&X-Amz-Signature=abc&Secret=s#frag', 'https://h.example/p?key=[redacted]&token=[redacted]&X-Amz-Signature=[redacted]&Secret=[redacted]#frag'],
      ['https://h.example/p?x%2Dapi%2Dkey=v', 'https://h.example/p?x%2Dapi%2Dkey=[redacted]'],
      ['https://h.example/p?token=&flag', 'https://h.example/p?token=&flag'],
      // The placeholder is ours, not a secret, and must stay for the view to be the template.
      ['https://queue.fal.run/x?fal_webhook={asyncqueue_callback_url}&auth_token={asyncqueue_callback_url}', 'https://queue.fal.run/x?fal_webhook={asyncqueue_callback_url}&auth_token={asyncqueue_callback_url}'],
      ['https://h.example/{asyncqueue_callback_url}/p@q?a=b', 'https://h.example/{asyncqueue_callback_url}/p@q?a=b'],
      ['https://h.example/p?bad%E0=1&token=%E0', 'https://h.example/p?bad%E0=1&token=[redacted]'],
      ['https://acct.blob.core.windows.net/c/b?sv=2024-05-04&sr=b&sig=abc%3D', 'https://acct.blob.core.windows.net/c/b?sv=2024-05-04&sr=b&sig=[redacted]'],
      ['https://h.example/p?a=1;token=t;b=2', 'https://h.example/p?a=1;token=[redacted];b=2'],
      ['https://h.example/app;jsessionid=s1/run;v=1', 'https://h.example/app;jsessionid=[redacted]/run;v=1'],
      ['https://h.example/cb#access_token=t&state=x', 'https://h.example/cb#access_token=[redacted]&state=x'],
      ['https://h.example/p?PWD=x&pass=y&Pw=z&passport=ok', 'https://h.example/p?PWD=[redacted]&pass=[redacted]&Pw=[redacted]&passport=ok'],
      ['https://u:p@[::1]:8443/x', 'https://[redacted]@[::1]:8443/x'],
      ['https://h.example/?', 'https://h.example/?'],
    ];
    for (const [input, expected] of cases) assert.equal(redactUrl(input), expected, input);
  });

  test('a URL that is not canonical is shown as [redacted] as a whole, never guessed at', () => {
    assert.equal(redactUrl('http:alice:pw@h.example/'), REDACTED);
    assert.equal(redactUrl(' https://alice:pw@h.example/'), REDACTED);
  });
});

describe('canonical URL templates', () => {
  test('every spelling the WHATWG parser accepts comes out as the one it sends', () => {
    const cases: Array<[string, string]> = [
      ['http:alice:pw@h.example/p', 'http://alice:pw@h.example/p'],
      ['http:\\\\alice:pw@h.example/p', 'http://alice:pw@h.example/p'],
      ['http:/alice:pw@h.example', 'http://alice:pw@h.example/'],
      [' \u0001http://alice:pw@h.example/p ', 'http://alice:pw@h.example/p'],
      ['ht\ttp://alice:pw@h.example/p', 'http://alice:pw@h.example/p'],
      ['HTTPS://H.Example:443/a b?c d#e f', 'https://h.example/a%20b?c%20d#e%20f'],
      ['http://0x7f.1/', 'http://127.0.0.1/'],
      ['http://alice:p@ss@h.example/', 'http://alice:p%40ss@h.example/'],
    ];
    for (const [input, expected] of cases) assert.equal(canonicalUrl(input), expected, JSON.stringify(input));
  });

  test('the callback placeholder survives as written, wherever it stands', () => {
    const cases: Array<[string, string]> = [
      ['https://h.example/{asyncqueue_callback_url}', 'https://h.example/{asyncqueue_callback_url}'],
      ['https:h.example/cb/{asyncqueue_callback_url}/x?u={asyncqueue_callback_url}#{asyncqueue_callback_url}', 'https://h.example/cb/{asyncqueue_callback_url}/x?u={asyncqueue_callback_url}#{asyncqueue_callback_url}'],
      ['https://{asyncqueue_callback_url}@h.example/', 'https://{asyncqueue_callback_url}@h.example/'],
      // Braces that are not the placeholder are percent-encoded in the path, as they are sent.
      ['https://h.example/{other}', 'https://h.example/%7Bother%7D'],
    ];
    for (const [input, expected] of cases) assert.equal(canonicalUrl(input), expected, input);
  });

  test('not an absolute http(s) URL: undefined', () => {
    for (const input of ['', 'h.example/p', 'ftp://h.example/', 'javascript:alert(1)', 'http://', 'https://h.example:{asyncqueue_callback_url}/']) {
      assert.equal(canonicalUrl(input), undefined, input);
    }
  });
});
