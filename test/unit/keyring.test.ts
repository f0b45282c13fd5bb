import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createKeyring, loadOrCreateKeyFile, parseEncryptionKeys, type EncryptionKey } from '../../src/secrets/keyring.ts';

const key = (kid: string): EncryptionKey => ({ kid, key: randomBytes(32) });

describe('keyring', () => {
  test('seals to the v1 format and opens it again', () => {
    const ring = createKeyring([key('k1')]);
    const secret = 'Authorization: Key fal-123 ✓ 🎉';
    const blob = ring.seal(secret);
    assert.match(blob, /^v1\.k1\.[\w-]{16}\.[\w-]*\.[\w-]{22}$/);
    assert.ok(!blob.includes('fal-123'));
    assert.equal(ring.open(blob), secret);
    assert.notEqual(ring.seal(secret), blob, 'a fresh IV every time');
    assert.equal(ring.open(ring.seal('')), '');
  });

  test('rotation: a blob sealed with the old key opens with [new, old], new blobs use the new key', () => {
    const oldKey = key('old');
    const blob = createKeyring([oldKey]).seal('provider token');
    const rotated = createKeyring([key('new'), oldKey]);
    assert.equal(rotated.open(blob), 'provider token');
    assert.match(rotated.seal('x'), /^v1\.new\./);
  });

  test('tampering with any field throws', () => {
    const ring = createKeyring([key('k1')]);
    const parts = ring.seal('do not touch').split('.');
    const flip = (s: string) => (s[0] === 'A' ? 'B' : 'A') + s.slice(1);
    for (const index of [2, 3, 4]) {
      const copy = [...parts];
      copy[index] = flip(copy[index]);
      assert.throws(() => ring.open(copy.join('.')), /failed authentication|malformed/, `field ${index}`);
    }
    assert.throws(() => ring.open('not a blob'), /not a sealed secret/);
    assert.throws(() => ring.open(`v2.${parts.slice(1).join('.')}`), /not a sealed secret/);
  });

  test('a relabelled blob (kid swapped to another known key) does not open', () => {
    const a = key('a');
    const b = key('b');
    const blob = createKeyring([a]).seal('x');
    assert.throws(() => createKeyring([b, a]).open(blob.replace('v1.a.', 'v1.b.')), /failed authentication/);
  });

  test('an unknown kid throws', () => {
    const blob = createKeyring([key('gone')]).seal('x');
    assert.throws(() => createKeyring([key('k1')]).open(blob), /unknown key id "gone"/);
  });

  test('createKeyring rejects empty, duplicate and wrong-size keys', () => {
    assert.throws(() => createKeyring([]), /at least one key/);
    assert.throws(() => createKeyring([key('a'), key('a')]), /twice/);
    assert.throws(() => createKeyring([{ kid: 'a', key: randomBytes(16) }]), /32 bytes/);
  });
});

describe('parseEncryptionKeys', () => {
  const b64 = randomBytes(32).toString('base64');
  const b64b = randomBytes(32).toString('base64url');

  test('a single key is kid k1', () => {
    const [only, ...rest] = parseEncryptionKeys(` ${b64} `);
    assert.equal(only.kid, 'k1');
    assert.deepEqual(only.key, Buffer.from(b64, 'base64'));
    assert.deepEqual(rest, []);
  });

  test('a kid:base64 list keeps its order (the first seals)', () => {
    const keys = parseEncryptionKeys(`2025b:${b64b}, 2024a:${b64},`);
    assert.deepEqual(keys.map((k) => k.kid), ['2025b', '2024a']);
    assert.deepEqual(keys[0].key, Buffer.from(b64b, 'base64url'));
  });

  test('errors say what is wrong without echoing the key', () => {
    const short = randomBytes(16).toString('base64');
    assert.throws(() => parseEncryptionKeys(''), /empty/);
    assert.throws(() => parseEncryptionKeys(short), (err: Error) => /16 bytes, expected 32/.test(err.message) && !err.message.includes(short));
    assert.throws(() => parseEncryptionKeys('not*base64!'), /not base64/);
    assert.throws(() => parseEncryptionKeys(`a:${b64},a:${b64}`), /"a" appears twice/);
    assert.throws(() => parseEncryptionKeys(`bad.kid:${b64}`), /#1 has an invalid kid/);
    assert.throws(() => parseEncryptionKeys(`a:${b64},${b64}`), /#2 is not in the form kid:base64/);
    assert.throws(() => parseEncryptionKeys(`a:${b64},b:`), /"b" is not base64/);
  });
});

describe('loadOrCreateKeyFile', () => {
  test('creates a 0600 key file once and reads the same key afterwards', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relay-keyring-'));
    try {
      const dataDir = join(dir, 'nested', 'data');
      const first = loadOrCreateKeyFile(dataDir);
      const file = join(dataDir, 'encryption.key');
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      assert.match(await readFile(file, 'utf8'), /^k1:[A-Za-z0-9+/]{43}=\n$/);
      assert.deepEqual(loadOrCreateKeyFile(dataDir), first);
      assert.equal(first[0].key.length, 32);

      await writeFile(file, 'k1:garbage');
      assert.throws(() => loadOrCreateKeyFile(dataDir), /encryption\.key: .*expected 32/);
      await writeFile(file, '');
      assert.throws(() => loadOrCreateKeyFile(dataDir), /encryption\.key: .*empty/, 'an empty file is an error, not replaced');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
