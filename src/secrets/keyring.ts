import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject, randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { takeRandomBytes } from './random.ts';

/** One AES-256 key for secrets at rest; `kid` is written into every blob it seals. */
export interface EncryptionKey {
  /** Key id: 1–32 of `A-Z a-z 0-9 _ -` (no dots: they separate the blob's fields). */
  kid: string;
  /** Exactly 32 bytes. */
  key: Buffer;
}

/** Seals and opens secrets; see {@link createKeyring}. */
export interface Keyring {
  /** The id of the key that seals: a blob under any other id should be re-sealed (see secrets/reseal.ts). */
  readonly sealingKid: string;
  /** Encrypts with the first key: `v1.<kid>.<iv>.<ciphertext>.<tag>` (base64url fields). */
  seal(plaintext: string): string;
  /** Decrypts with the key named in the blob; throws on an unknown kid or any tampering. */
  open(blob: string): string;
}

/**
 * A blob sealed under a key id the keyring does not hold (dropped from RELAY_ENCRYPTION_KEY too
 * early): unlike tampering, it heals once the key is back, so callers answer it as unavailable.
 */
export class UnknownKeyIdError extends Error {
  readonly kid: string;
  constructor(kid: string) {
    super(`sealed secret uses unknown key id "${kid}" (not in RELAY_ENCRYPTION_KEY: put that key back, after the first, until \`asyncrelay reseal\` has re-sealed everything under the first key)`);
    this.name = 'UnknownKeyIdError';
    this.kid = kid;
  }
}

const VERSION = 'v1';
const KID = /^[A-Za-z0-9_-]{1,32}$/;
// Buffer.from(…, 'base64') silently skips junk, so the alphabet is checked first
// (standard and url-safe alphabets both accepted: operators paste either).
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;
const IV_BYTES = 12;
const TAG_BYTES = 16;

function decodeKey(material: string, label: string): Buffer {
  // Messages name the key, never its material: they end up in boot logs.
  if (!BASE64.test(material)) throw new Error(`${label} is not base64`);
  const key = Buffer.from(material, 'base64');
  if (key.length !== 32) throw new Error(`${label} decodes to ${key.length} bytes, expected 32`);
  return key;
}

/** The key id a sealed blob names (`v1.<kid>.…`), or undefined if it is not a sealed blob. */
export function kidOf(blob: string): string | undefined {
  const parts = blob.split('.', 3);
  return parts.length === 3 && parts[0] === VERSION ? parts[1] : undefined;
}

/**
 * Parses RELAY_ENCRYPTION_KEY: either one base64 32-byte key (kid "k1") or a
 * comma-separated `kid:base64` list whose first entry seals new secrets.
 * Throws an Error whose message says which entry is wrong and why.
 */
export function parseEncryptionKeys(value: string): EncryptionKey[] {
  const text = value.trim();
  if (text === '') throw new Error('encryption key is empty');
  // A base64 key cannot contain ":", so its absence means the single-key form.
  if (!text.includes(':')) return [{ kid: 'k1', key: decodeKey(text, 'encryption key') }];

  const keys: EncryptionKey[] = [];
  const entries = text.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  entries.forEach((entry, index) => {
    const colon = entry.indexOf(':');
    if (colon < 0) throw new Error(`encryption key #${index + 1} is not in the form kid:base64`);
    const kid = entry.slice(0, colon).trim();
    if (!KID.test(kid)) throw new Error(`encryption key #${index + 1} has an invalid kid (1–32 of A-Z a-z 0-9 _ -)`);
    if (keys.some((k) => k.kid === kid)) throw new Error(`encryption key id "${kid}" appears twice`);
    keys.push({ kid, key: decodeKey(entry.slice(colon + 1).trim(), `encryption key "${kid}"`) });
  });
  if (keys.length === 0) throw new Error('encryption key list is empty');
  return keys;
}

/**
 * Builds a keyring from a list of keys: the first key seals, every key opens,
 * so rotating means prepending a new key and keeping the old ones until
 * every blob has been re-sealed.
 */
export function createKeyring(keys: EncryptionKey[]): Keyring {
  if (keys.length === 0) throw new Error('a keyring needs at least one key');
  // KeyObjects, made once: building one from raw bytes on every seal/open showed up in profiles.
  const byKid = new Map<string, KeyObject>();
  for (const { kid, key } of keys) {
    if (!KID.test(kid)) throw new Error(`invalid key id "${kid}"`);
    if (key.length !== 32) throw new Error(`key "${kid}" must be 32 bytes`);
    if (byKid.has(kid)) throw new Error(`key id "${kid}" appears twice`);
    byKid.set(kid, createSecretKey(key));
  }
  const sealing = { kid: keys[0].kid, key: byKid.get(keys[0].kid)! };

  return {
    sealingKid: sealing.kid,
    seal(plaintext) {
      const iv = takeRandomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', sealing.key, iv);
      // The version and kid are authenticated too, so a blob cannot be relabelled.
      cipher.setAAD(Buffer.from(`${VERSION}.${sealing.kid}`));
      const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      const fields = [iv, ciphertext, cipher.getAuthTag()].map((b) => b.toString('base64url'));
      return [VERSION, sealing.kid, ...fields].join('.');
    },
    open(blob) {
      const parts = blob.split('.');
      if (parts.length !== 5 || parts[0] !== VERSION) throw new Error('not a sealed secret (expected v1.<kid>.<iv>.<ciphertext>.<tag>)');
      const [, kid, ivText, ciphertextText, tagText] = parts;
      const key = byKid.get(kid);
      if (!key) throw new UnknownKeyIdError(kid);
      const iv = Buffer.from(ivText, 'base64url');
      const tag = Buffer.from(tagText, 'base64url');
      // A short tag would weaken GCM's check, so its length is enforced, not trusted.
      if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw new Error('sealed secret is malformed');
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
        decipher.setAAD(Buffer.from(`${VERSION}.${kid}`));
        decipher.setAuthTag(tag);
        return Buffer.concat([decipher.update(Buffer.from(ciphertextText, 'base64url')), decipher.final()]).toString('utf8');
      } catch {
        throw new Error(`sealed secret failed authentication with key "${kid}" (tampered or wrong key)`);
      }
    },
  };
}

/**
 * Embedded mode only: reads `<dataDir>/encryption.key` ("k1:<base64>", mode 0600),
 * creating it with a fresh random key the first time. Losing this file loses
 * every sealed secret, so it is written durably and never overwritten.
 */
export function loadOrCreateKeyFile(dataDir: string): EncryptionKey[] {
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, 'encryption.key');
  try {
    return parseKeyFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  // Write a temporary file, fsync it, then link() it into place: link fails if the
  // key file appeared meanwhile (two processes booting at once), so exactly one key
  // wins, and a crash never leaves a half-written key file behind.
  const temporary = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(temporary, 'wx', 0o600);
  try {
    writeSync(fd, `k1:${randomBytes(32).toString('base64')}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(temporary, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    unlinkSync(temporary);
  }
  return parseKeyFile(file);
}

function parseKeyFile(file: string): EncryptionKey[] {
  const text = readFileSync(file, 'utf8');
  try {
    return parseEncryptionKeys(text);
  } catch (err) {
    throw new Error(`${file}: ${(err as Error).message}`);
  }
}
