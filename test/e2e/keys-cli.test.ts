/**
 * `asyncrelay keys …` as an operator runs it (DESIGN §2): a key for a new project comes with that
 * project's own webhook secret; the project sees only its tasks; revoking by prefix or by the key
 * itself is immediate, idempotent replays included.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { HttpFake } from '../fakes/http-fake.ts';
import { Receiver } from '../fakes/receiver.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { NODE_BIN, REPO_ROOT } from '../helpers/process.ts';
import { apiRequest, startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';

let database: TestDatabase;
let relay: TestRelay;
let target: HttpFake;
const encryptionKey = randomBytes(32).toString('base64');

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(NODE_BIN, ['src/cli.ts', 'keys', ...args], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: database.url, RELAY_ENCRYPTION_KEY: encryptionKey },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr })));
}

before(async () => {
  database = await createTestDatabase('keys_cli');
  relay = await startTestRelay({ database, env: { RELAY_ENCRYPTION_KEY: encryptionKey } });
  target = await HttpFake.start(() => ({ status: 200, body: { done: true } }));
});
after(async () => {
  await relay.stop();
  await target.close();
  await database.drop();
});

test('keys create / list / revoke, with per-project secrets and isolation', async () => {
  const created = await cli('create', '--name', 'ci', '--project', 'acme');
  assert.equal(created.code, 0, created.stderr);
  const key = created.stdout.trim();
  assert.match(key, /^ar_[0-9A-Za-z]{40}$/);
  const secret = /webhook signing secret \(shown once\): (whsec_\S+)/.exec(created.stderr)?.[1];
  assert.ok(secret, created.stderr);
  assert.notEqual(secret, relay.webhookSecret, 'the new project has its own secret');

  // A second key in the same project: no new secret.
  const second = await cli('create', '--name', 'ci-2', '--project', 'acme');
  assert.equal(second.code, 0, second.stderr);
  assert.doesNotMatch(second.stderr, /webhook signing secret/);
  assert.equal((await cli('create', '--name', 'x', '--project', 'Bad Name!')).code, 1);

  // acme's webhook is signed with acme's secret (the receiver verifies with it).
  const receiver = await Receiver.start(secret);
  try {
    const asAcme = (method: string, path: string, body?: unknown) => apiRequest(relay.baseUrl, method, path, body, { 'x-api-key': key });
    const task = (await asAcme('POST', '/v1/tasks', { targetUrl: `${target.url}/acme`, onCompleteUrl: receiver.url })).body.task;
    const [delivery] = await receiver.waitForDeliveries(task.id);
    assert.ok(delivery.payload, delivery.verifyError);
    // Isolation both ways: 404 for the other project's task, and lists hold only one's own.
    const mine = (await relay.api('POST', '/v1/tasks', { targetUrl: `${target.url}/default` })).body.task;
    await waitForStatus(relay, mine.id, 'completed');
    assert.equal((await relay.api('GET', `/v1/tasks/${task.id}`)).status, 404);
    assert.equal((await relay.api('POST', `/v1/tasks/${task.id}/redeliver`)).status, 404);
    assert.equal((await asAcme('GET', `/v1/tasks/${mine.id}`)).status, 404);
    assert.equal((await asAcme('POST', `/v1/tasks/${mine.id}/cancel`)).status, 404);
    assert.equal((await asAcme('GET', `/v1/tasks/${mine.id}/events`)).status, 404);
    assert.deepEqual((await asAcme('GET', '/v1/tasks')).body.tasks.map((t: any) => t.id), [task.id]);

    const listed = await cli('list');
    const line = listed.stdout.split('\n').find((l) => l.includes('\tci\t'));
    assert.ok(line, listed.stdout);
    const [id, project, prefix, name, state] = line.split('\t');
    assert.match(id, /^key_/);
    // Seven characters: `ar_` and four random ones, enough to tell keys apart, useless to guess one.
    assert.deepEqual([project, prefix, name, state], ['acme', `${key.slice(0, 7)}…`, 'ci', 'active']);
    assert.ok(!listed.stdout.includes(key.slice(0, 8)), 'list never shows more than the prefix');

    // An idempotent create, replayed while the key is active.
    const idempotent = (path: string) => apiRequest(relay.baseUrl, 'POST', '/v1/tasks', { targetUrl: `${target.url}/${path}`, waitForSignal: true }, { 'x-api-key': key, 'idempotency-key': 'acme-1' });
    const first = await idempotent('idem');
    assert.equal(first.status, 201);
    assert.equal((await idempotent('idem')).body.signalToken, first.body.signalToken);

    // Revoke by the listed prefix: refused at once, on the cached create path and its replays too.
    const revoked = await cli('revoke', key.slice(0, 7));
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.equal(revoked.stdout.trim(), `revoked ${id}`);
    assert.equal((await asAcme('GET', `/v1/tasks/${task.id}`)).status, 401);
    assert.equal((await asAcme('POST', '/v1/tasks', { targetUrl: `${target.url}/after` })).status, 401);
    const replay = await idempotent('idem');
    assert.equal(replay.status, 401, JSON.stringify(replay.body));
    assert.ok(!JSON.stringify(replay.body).includes(first.body.signalToken));
    assert.equal((await cli('revoke', key.slice(0, 7))).code, 1, 'nothing left to revoke');

    // The second key, revoked by the full key itself (matched by its HMAC).
    const secondKey = second.stdout.trim();
    assert.equal((await apiRequest(relay.baseUrl, 'GET', '/v1/tasks', undefined, { 'x-api-key': secondKey })).status, 200);
    const bySecret = await cli('revoke', secondKey);
    assert.equal(bySecret.code, 0, bySecret.stderr);
    assert.equal((await apiRequest(relay.baseUrl, 'GET', '/v1/tasks', undefined, { 'x-api-key': secondKey })).status, 401);
  } finally {
    await receiver.close();
  }
});
