import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CapturedResponse, OutboundResult } from '../../src/outbound/http.ts';
import { classifyTargetAnswer, retryDelayMs } from '../../src/tasks/classify.ts';

const answer = (statusCode: number, headers: Record<string, string> = {}): OutboundResult => {
  const response: CapturedResponse = { statusCode, headers, body: 'b', duration: 12 };
  return { ok: true, response };
};
const failure = (code: 'timeout' | 'network' | 'invalid_url' | 'refused'): OutboundResult => ({
  ok: false,
  error: { code, message: `${code} happened` },
  duration: 5,
});

describe('classifyTargetAnswer', () => {
  test('2xx is success and carries the response', () => {
    for (const status of [200, 201, 202, 204, 299]) {
      const verdict = classifyTargetAnswer(answer(status));
      assert.equal(verdict.kind, 'success', String(status));
      assert.equal(verdict.response?.statusCode, status);
    }
  });

  test('4xx other than 408/429 fails at once as target_rejected', () => {
    for (const status of [400, 401, 403, 404, 409, 410, 422]) {
      assert.deepEqual(classifyTargetAnswer(answer(status)), {
        kind: 'permanent',
        error: { code: 'target_rejected', message: `Target answered HTTP ${status}`, statusCode: status },
        response: { statusCode: status, headers: {}, body: 'b', duration: 12 },
      });
    }
  });

  test('408, 429 and 5xx are retried, with Retry-After read', () => {
    for (const status of [408, 429, 500, 502, 503, 504]) {
      const verdict = classifyTargetAnswer(answer(status));
      assert.equal(verdict.kind, 'retryable', String(status));
      assert.deepEqual(verdict.kind === 'retryable' && verdict.error, { code: 'target_error', message: `Target answered HTTP ${status}`, statusCode: status });
      assert.equal(verdict.kind === 'retryable' && verdict.retryAfterMs, undefined);
    }
    const limited = classifyTargetAnswer(answer(429, { 'retry-after': '7' }));
    assert.equal(limited.kind === 'retryable' && limited.retryAfterMs, 7_000);
  });

  test('a 3xx left over after redirects is a permanent target_redirect', () => {
    const verdict = classifyTargetAnswer(answer(302, { location: 'https://elsewhere/' }));
    assert.equal(verdict.kind, 'permanent');
    assert.equal(verdict.kind === 'permanent' && verdict.error.code, 'target_redirect');
    assert.equal(verdict.kind === 'permanent' && verdict.error.statusCode, 302);
  });

  test('network trouble and timeouts are retried; refused and invalid URLs are not', () => {
    assert.deepEqual(classifyTargetAnswer(failure('timeout')), { kind: 'retryable', error: { code: 'target_timeout', message: 'timeout happened' } });
    assert.deepEqual(classifyTargetAnswer(failure('network')), { kind: 'retryable', error: { code: 'target_unreachable', message: 'network happened' } });
    assert.deepEqual(classifyTargetAnswer(failure('refused')), { kind: 'permanent', error: { code: 'destination_refused', message: 'refused happened' } });
    const invalid = classifyTargetAnswer(failure('invalid_url'));
    assert.equal(invalid.kind, 'permanent');
    assert.equal(invalid.kind === 'permanent' && invalid.error.message, 'invalid_url happened');
  });
});

describe('retryDelayMs', () => {
  test('exponential 1, 2, 4, 8, 16 s and linear 1, 2, 3, 4, 5 s', () => {
    assert.deepEqual([1, 2, 3, 4, 5].map((n) => retryDelayMs('exponential', n)), [1_000, 2_000, 4_000, 8_000, 16_000]);
    assert.deepEqual([1, 2, 3, 4, 5].map((n) => retryDelayMs('linear', n)), [1_000, 2_000, 3_000, 4_000, 5_000]);
  });

  test('the scale shortens the schedule (tests use 0.1)', () => {
    assert.deepEqual([1, 2, 3].map((n) => retryDelayMs('exponential', n, undefined, 0.1)), [100, 200, 400]);
  });

  test('a longer Retry-After wins, a shorter one does not, and it is capped at an hour', () => {
    assert.equal(retryDelayMs('exponential', 1, 5_000), 5_000);
    assert.equal(retryDelayMs('exponential', 3, 500), 4_000);
    assert.equal(retryDelayMs('linear', 1, 0), 1_000);
    assert.equal(retryDelayMs('linear', 1, 10 * 3_600_000), 3_600_000);
  });
});
