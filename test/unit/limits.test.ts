import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clientKey } from '../../src/http/client-ip.ts';
import { createWindowCounter } from '../../src/limits/window-counter.ts';

test('clients are counted by IPv4 address or IPv6 /64', () => {
  assert.equal(clientKey('198.51.100.7'), '198.51.100.7');
  assert.equal(clientKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.equal(clientKey('2001:DB8:1:2:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64');
  assert.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(clientKey('::1'), '0:0:0:0::/64');
  assert.equal(clientKey('unknown'), 'unknown');
});

test('a fixed window counts per key and starts again at its aligned end', () => {
  const counter = createWindowCounter(60_000);
  const t0 = 1_800_000_000_000; // a multiple of 60 s
  assert.deepEqual(counter.hit('a', t0 + 1), { count: 1, resetAt: t0 + 60_000 });
  assert.deepEqual(counter.hit('a', t0 + 59_999), { count: 2, resetAt: t0 + 60_000 });
  assert.equal(counter.hit('b', t0 + 5).count, 1);
  assert.deepEqual(counter.hit('a', t0 + 60_000), { count: 1, resetAt: t0 + 120_000 });
});
