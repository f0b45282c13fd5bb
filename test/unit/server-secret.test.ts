import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { AppError } from '../../src/errors.ts';
import { createKeyring, kidOf } from '../../src/secrets/keyring.ts';
import { serverHashes, unavailableHashes } from '../../src/secrets/server-secret.ts';

test('API key hashes are HMACs under the secret: stable, secret-dependent, never the plain SHA-256', () => {
  const secret = randomBytes(32);
  const key = `ar_${'x'.repeat(40)}`;
  const hashes = serverHashes(secret);
  const hash = hashes.apiKey(key);
  assert.match(hash, /^hmac:[0-9a-f]{64}$/);
  assert.equal(serverHashes(Buffer.from(secret)).apiKey(key), hash, 'the same secret gives the same hash (every replica agrees)');
  assert.notEqual(serverHashes(randomBytes(32)).apiKey(key), hash);
  assert.notEqual(hashes.apiKey(`${key}y`), hash);
  assert.notEqual(hash.slice(5), createHash('sha256').update(key).digest('hex'));
  // One subkey per use: the same text hashes differently as a key and as a fingerprint.
  assert.notEqual(hashes.fingerprint(key), hash.slice(5));
  assert.match(hashes.fingerprint('{"a":1}'), /^[0-9a-f]{64}$/);
  assert.throws(() => serverHashes(randomBytes(16)), /32 bytes/);
});

test('without the secret every hash is a retryable 503 naming the problem; the reason is kept for the logs', () => {
  const hashes = unavailableHashes('the server secret cannot be opened: gone');
  assert.equal(hashes.unavailable, 'the server secret cannot be opened: gone');
  for (const use of [() => hashes.apiKey('k'), () => hashes.fingerprint('{}')]) {
    assert.throws(use, (err: unknown) => err instanceof AppError && err.status === 503 && err.code === 'unavailable' && err.retryable);
  }
});

test('a blob names the key id that sealed it; the keyring says which one seals', () => {
  const keyring = createKeyring([{ kid: 'new_2', key: randomBytes(32) }, { kid: 'old', key: randomBytes(32) }]);
  assert.equal(keyring.sealingKid, 'new_2');
  assert.equal(kidOf(keyring.seal('x')), 'new_2');
  assert.equal(kidOf('not sealed'), undefined);
  assert.equal(kidOf('v2.k1.a.b.c'), undefined);
});
