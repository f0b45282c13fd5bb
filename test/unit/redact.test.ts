import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isSensitiveHeader, REDACTED, redactHeaders } from '../../src/tasks/redact.ts';

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
