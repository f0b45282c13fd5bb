import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isSensitiveHeader, REDACTED, redactHeaders, redactUrl } from '../../src/tasks/redact.ts';

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
    ];
    for (const [input, expected] of cases) assert.equal(redactUrl(input), expected, input);
  });
});
