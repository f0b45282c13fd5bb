import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.ts';

const key = randomBytes(32).toString('base64');

function problemsOf(env: Record<string, string | undefined>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems;
  }
  assert.fail('expected a ConfigError');
}

test('defaults for an empty environment (embedded mode)', () => {
  assert.deepEqual(loadConfig({}), {
    databaseUrl: undefined,
    port: 3000,
    host: '0.0.0.0',
    publicUrl: 'http://localhost:3000',
    apiKeys: [],
    webhookSecret: undefined,
    encryptionKeys: undefined,
    allowedNetworks: [],
    trustedProxies: [],
    rateLimits: { windowSeconds: 60, callbackRejects: 30, callbackCeiling: 1200, apiPerKey: 0, authFailures: 30 },
    createConcurrency: 12,
    createConcurrencyPerKey: 11,
    createQueuePerKey: 256,
    headersTimeoutSeconds: 10,
    requestTimeoutSeconds: 30,
    longPollsPerKey: 100,
    role: 'all',
    falJwksUrl: 'https://rest.fal.ai/.well-known/jwks.json',
    dataDir: resolve('.relay'),
    logLevel: 'info',
  });
});

test('rate limits are read as integers, 0 turning one off', () => {
  const { rateLimits } = loadConfig({ RELAY_RATE_LIMIT_WINDOW_SECONDS: '10', RELAY_CALLBACK_REJECT_LIMIT: '0', RELAY_CALLBACK_IP_CEILING: '50', RELAY_API_RATE_LIMIT: '7', RELAY_AUTH_FAILURE_LIMIT: '0' });
  assert.deepEqual(rateLimits, { windowSeconds: 10, callbackRejects: 0, callbackCeiling: 50, apiPerKey: 7, authFailures: 0 });
});

test('RELAY_CREATE_CONCURRENCY is an integer from 1 to 1000', () => {
  assert.equal(loadConfig({ RELAY_CREATE_CONCURRENCY: '3' }).createConcurrency, 3);
  for (const bad of ['0', '1001', '2.5', 'x']) assert.throws(() => loadConfig({ RELAY_CREATE_CONCURRENCY: bad }), /RELAY_CREATE_CONCURRENCY/);
});

test('the per-key create limits: all slots but one by default, never more than all of them; 0 waiting allowed', () => {
  assert.equal(loadConfig({ RELAY_CREATE_CONCURRENCY: '1' }).createConcurrencyPerKey, 1);
  assert.equal(loadConfig({ RELAY_CREATE_CONCURRENCY: '40' }).createConcurrencyPerKey, 39);
  assert.equal(loadConfig({ RELAY_CREATE_CONCURRENCY: '4', RELAY_CREATE_CONCURRENCY_PER_KEY: '9' }).createConcurrencyPerKey, 4);
  assert.equal(loadConfig({ RELAY_CREATE_QUEUE_PER_KEY: '0' }).createQueuePerKey, 0);
  for (const bad of ['0', '1001', 'x']) assert.throws(() => loadConfig({ RELAY_CREATE_CONCURRENCY_PER_KEY: bad }), /RELAY_CREATE_CONCURRENCY_PER_KEY/);
  assert.throws(() => loadConfig({ RELAY_CREATE_QUEUE_PER_KEY: '10001' }), /RELAY_CREATE_QUEUE_PER_KEY/);
  assert.equal(loadConfig({ RELAY_LONG_POLLS_PER_KEY: '0' }).longPollsPerKey, 0);
  assert.throws(() => loadConfig({ RELAY_LONG_POLLS_PER_KEY: '-1' }), /RELAY_LONG_POLLS_PER_KEY/);
});

test('request deadlines: whole seconds, and the header deadline within the request deadline', () => {
  const config = loadConfig({ RELAY_HEADERS_TIMEOUT_SECONDS: '2', RELAY_REQUEST_TIMEOUT_SECONDS: '5' });
  assert.deepEqual([config.headersTimeoutSeconds, config.requestTimeoutSeconds], [2, 5]);
  assert.deepEqual(problemsOf({ RELAY_HEADERS_TIMEOUT_SECONDS: '20', RELAY_REQUEST_TIMEOUT_SECONDS: '15' }), [
    'RELAY_HEADERS_TIMEOUT_SECONDS: must not exceed RELAY_REQUEST_TIMEOUT_SECONDS (the request deadline includes the headers)',
  ]);
  assert.deepEqual(problemsOf({ RELAY_HEADERS_TIMEOUT_SECONDS: '0', RELAY_REQUEST_TIMEOUT_SECONDS: '3601' }), [
    'RELAY_HEADERS_TIMEOUT_SECONDS: must be an integer from 1 to 600',
    'RELAY_REQUEST_TIMEOUT_SECONDS: must be an integer from 1 to 3600',
  ]);
});

test('the public URL follows PORT by default and loses its trailing slash when given', () => {
  assert.equal(loadConfig({ PORT: '8080' }).publicUrl, 'http://localhost:8080');
  assert.equal(loadConfig({ RELAY_PUBLIC_URL: 'https://relay.example.com/' }).publicUrl, 'https://relay.example.com');
  assert.equal(loadConfig({ RELAY_PUBLIC_URL: 'https://example.com/relay//' }).publicUrl, 'https://example.com/relay');
});

test('every value is parsed', () => {
  const secret = `whsec_${randomBytes(24).toString('base64')}`;
  const config = loadConfig({
    DATABASE_URL: 'postgres://relay:pw@db:5432/relay',
    PORT: '8443',
    HOST: '127.0.0.1',
    RELAY_API_KEYS: ` ${'a'.repeat(32)} , ,${'b'.repeat(40)},`,
    RELAY_WEBHOOK_SECRET: secret,
    RELAY_ENCRYPTION_KEY: key,
    RELAY_ALLOWED_NETWORKS: '127.0.0.0/8, ::1, fd00::/8',
    RELAY_TRUSTED_PROXIES: '10.0.0.1',
    RELAY_ROLE: 'worker',
    RELAY_DATA_DIR: '/var/lib/relay',
    LOG_LEVEL: 'debug',
  });
  assert.equal(config.databaseUrl, 'postgres://relay:pw@db:5432/relay');
  assert.equal(config.port, 8443);
  assert.equal(config.host, '127.0.0.1');
  assert.deepEqual(config.apiKeys, ['a'.repeat(32), 'b'.repeat(40)]);
  assert.equal(config.webhookSecret, secret);
  assert.deepEqual(config.encryptionKeys, [{ kid: 'k1', key: Buffer.from(key, 'base64') }]);
  assert.deepEqual(config.allowedNetworks, ['127.0.0.0/8', '::1/128', 'fd00::/8']);
  assert.deepEqual(config.trustedProxies, ['10.0.0.1/32']);
  assert.equal(config.role, 'worker');
  assert.equal(config.dataDir, '/var/lib/relay');
  assert.equal(config.logLevel, 'debug');
});

test('an encryption key list keeps kids and order', () => {
  const other = randomBytes(32).toString('base64');
  const { encryptionKeys } = loadConfig({ RELAY_ENCRYPTION_KEY: `new:${other},old:${key}` });
  assert.deepEqual(encryptionKeys?.map((k) => k.kid), ['new', 'old']);
});

test('blank variables count as unset', () => {
  assert.equal(loadConfig({ PORT: '', RELAY_ROLE: ' ', DATABASE_URL: '' }).port, 3000);
});

test('every problem is listed at once, one line each, naming the variable', () => {
  const env = {
    DATABASE_URL: 'mysql://user:hunter2@db/relay',
    PORT: '70000',
    RELAY_PUBLIC_URL: 'ftp://relay.example.com',
    RELAY_API_KEYS: `${'k'.repeat(32)},short`,
    RELAY_WEBHOOK_SECRET: 'whsec_c2hvcnQ=',
    RELAY_ENCRYPTION_KEY: 'k1:AAAA',
    RELAY_ALLOWED_NETWORKS: '10.0.0.0/8,10.0.0.0/33',
    RELAY_TRUSTED_PROXIES: 'proxy.local',
    RELAY_ROLE: 'both',
    RELAY_RATE_LIMIT_WINDOW_SECONDS: '0',
    RELAY_CALLBACK_REJECT_LIMIT: '-1',
    RELAY_CALLBACK_IP_CEILING: 'many',
    RELAY_API_RATE_LIMIT: '1.5',
    RELAY_AUTH_FAILURE_LIMIT: 'lots',
    RELAY_CREATE_CONCURRENCY: '0',
    LOG_LEVEL: 'loud',
  };
  const problems = problemsOf(env);
  const variables = problems.map((p) => p.split(':')[0]);
  assert.deepEqual(variables.sort(), Object.keys(env).sort());
  const err = (() => { try { loadConfig(env); } catch (e) { return e as ConfigError; } })()!;
  for (const problem of problems) assert.ok(err.message.split('\n').some((line) => line.trim() === problem));
  assert.ok(!err.message.includes('hunter2'), 'secrets stay out of the message');
  assert.ok(problems.some((p) => p.startsWith('RELAY_API_KEYS: key #2')));
  assert.ok(problems.some((p) => p.includes('"10.0.0.0/33"')));
});

test('RELAY_API_KEYS: every key shorter than 32 characters is named by position and length, never shown', () => {
  const short = 'c0ffee'.repeat(5); // 30 hex characters: 120 bits, still refused
  const problems = problemsOf({ RELAY_API_KEYS: `${'0123456789abcdef'.repeat(2)},${short},${'x'.repeat(31)},${'y'.repeat(33)}` });
  assert.deepEqual(problems, [
    'RELAY_API_KEYS: key #2 of 4 has 30 characters, at least 32 are required (e.g. openssl rand -hex 24)',
    'RELAY_API_KEYS: key #3 of 4 has 31 characters, at least 32 are required (e.g. openssl rand -hex 24)',
  ]);
  assert.ok(!problems.join('\n').includes(short));
  // The 16-hex key of issue 15 is refused too.
  assert.match(problemsOf({ RELAY_API_KEYS: '0123456789abcdef' })[0], /^RELAY_API_KEYS: key #1 of 1 has 16 characters/);
  assert.deepEqual(loadConfig({ RELAY_API_KEYS: '0123456789abcdef'.repeat(2) }).apiKeys, ['0123456789abcdef'.repeat(2)]);
});

test('PORT must be a plain integer in range', () => {
  for (const port of ['0', '65536', '3000.5', '0x10', '1e3', 'abc']) {
    assert.deepEqual(problemsOf({ PORT: port }).map((p) => p.split(':')[0]), ['PORT'], port);
  }
  assert.equal(loadConfig({ PORT: '65535' }).port, 65535);
});

test('DATABASE_URL without RELAY_ENCRYPTION_KEY is an error, even alongside other errors', () => {
  assert.deepEqual(problemsOf({ DATABASE_URL: 'postgres://localhost/relay' }).map((p) => p.split(':')[0]), ['RELAY_ENCRYPTION_KEY']);
  const problems = problemsOf({ DATABASE_URL: 'postgres://localhost/relay', RELAY_ROLE: 'nope' });
  assert.deepEqual(problems.map((p) => p.split(':')[0]).sort(), ['RELAY_ENCRYPTION_KEY', 'RELAY_ROLE']);
  assert.ok(loadConfig({ DATABASE_URL: 'postgresql://localhost/relay', RELAY_ENCRYPTION_KEY: key }).encryptionKeys);
});

test('the public URL must be a plain http(s) base', () => {
  for (const url of ['relay.example.com', 'https://u:p@relay.example.com', 'https://relay.example.com/?a=1', 'https://relay.example.com/#x']) {
    assert.deepEqual(problemsOf({ RELAY_PUBLIC_URL: url }).map((p) => p.split(':')[0]), ['RELAY_PUBLIC_URL'], url);
  }
});

test('webhook secrets need whsec_ and at least 16 bytes', () => {
  assert.ok(loadConfig({ RELAY_WEBHOOK_SECRET: `whsec_${randomBytes(16).toString('base64')}` }).webhookSecret);
  for (const secret of [randomBytes(24).toString('base64'), `whsec_${randomBytes(15).toString('base64')}`, 'whsec_not base64!']) {
    assert.deepEqual(problemsOf({ RELAY_WEBHOOK_SECRET: secret }).map((p) => p.split(':')[0]), ['RELAY_WEBHOOK_SECRET']);
  }
});
