/**
 * Task creations that arrive together are written by one statement (writers/tasks.ts,
 * db/batcher.ts). These tests call the create verb directly, several in one turn of the event
 * loop, so the batch is certain; a statement's now() is one instant, which is how they tell a
 * batch from single writes.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import postgres from 'postgres';
import { createApiKey } from '../../src/projects/api-keys.ts';
import { createTask } from '../../src/tasks/create-task.ts';
import { CreateTaskInput } from '../../src/tasks/schemas.ts';
import { startTestRelay, type TestRelay } from '../helpers/relay.ts';

let relay: TestRelay;
let sql: postgres.Sql;
before(async () => {
  relay = await startTestRelay({ env: { RELAY_ROLE: 'api' } }); // no worker: dispatch jobs stay queued
  sql = postgres(relay.database.url, { max: 2, onnotice: () => {} });
});
after(async () => {
  await sql.end();
  await relay.stop();
});

const input = (n: number) =>
  CreateTaskInput.parse({ targetUrl: `http://127.0.0.1:9/submit?n=${n}`, body: { webhook: '{asyncqueue_callback_url}', n }, metadata: { n: String(n) } });
const caller = (key: string) => ({ projectId: 'default', keyHash: relay.running.relay.hashes.apiKey(key) });

async function stored(ids: string[]) {
  const tasks = await sql`select id, created_at::text as at, status from tasks where id = any(${ids}::uuid[]) order by id`;
  const events = await sql`select task_id, type from task_events where task_id = any(${ids}::uuid[])`;
  const jobs = await sql`select data->>'taskId' as task_id, priority from pgboss.job where name = 'task.dispatch' and data->>'taskId' = any(${ids})`;
  return { tasks, events, jobs };
}

test('creates made together share one statement: every task has its event, its dispatch job and its own token', async () => {
  const created = await Promise.all([1, 2, 3, 4, 5].map((n) => createTask(relay.running.relay, caller(relay.apiKey), input(n))));
  const ids = created.map((c) => c.task.id);
  assert.equal(new Set(ids).size, 5);
  for (const [i, c] of created.entries()) {
    assert.equal(c.outcome, 'created');
    assert.equal(c.task.metadata.n, String(i + 1), 'each caller gets its own row back');
    assert.equal(c.task.targetUrl, `http://127.0.0.1:9/submit?n=${i + 1}`);
  }
  const tokens = created.map((c) => (c.outcome === 'created' ? c.token : undefined));
  assert.equal(new Set(tokens).size, 5);
  const { tasks, events, jobs } = await stored(ids);
  assert.equal(tasks.length, 5);
  assert.equal(new Set(tasks.map((t) => t.at)).size, 1, 'one statement: one now()');
  assert.deepEqual(tasks.map((t) => t.status), ['pending', 'pending', 'pending', 'pending', 'pending']);
  assert.deepEqual(events.map((e) => e.type).sort(), Array(5).fill('task.created'));
  assert.deepEqual(new Set(events.map((e) => e.task_id)), new Set(ids));
  assert.deepEqual(new Set(jobs.map((j) => j.task_id)), new Set(ids));
  assert.ok(jobs.every((j) => j.priority === 5));
});

test('a key revoked after the cache saw it fails only its own create in a batch (401), the others are written', async () => {
  const { id: keyId, key } = await createApiKey(relay.running.relay.db, relay.running.relay.hashes, 'default', 'revoked-in-batch');
  // The create path trusts the key cache for its early check and re-checks inside the INSERT.
  const warm = await relay.api('POST', '/v1/tasks', { targetUrl: 'http://127.0.0.1:9/warm', delayUntil: '2999-01-01T00:00:00Z' }, { 'x-api-key': key });
  assert.equal(warm.status, 201);
  await sql`update api_keys set revoked_at = now() where id = ${keyId}`;

  const settled = await Promise.allSettled([
    createTask(relay.running.relay, caller(relay.apiKey), input(11)),
    createTask(relay.running.relay, caller(key), input(12)),
    createTask(relay.running.relay, caller(relay.apiKey), input(13)),
  ]);
  assert.deepEqual(settled.map((s) => s.status), ['fulfilled', 'rejected', 'fulfilled']);
  const refused = (settled[1] as PromiseRejectedResult).reason;
  assert.equal(refused.status, 401);
  assert.equal(refused.code, 'unauthorized');
  const ids = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value.task.id] : []));
  const { tasks, events, jobs } = await stored(ids);
  assert.equal(tasks.length, 2);
  assert.equal(events.length, 2);
  assert.equal(jobs.length, 2);
  const [{ n }] = await sql`select count(*)::int as n from tasks where target_url = 'http://127.0.0.1:9/submit?n=12'`;
  assert.equal(n, 0, 'nothing written for the revoked key');
});

test('a delayed task in a batch gets a job that starts at its delayUntil', async () => {
  const later = new Date(Date.now() + 3_600_000).toISOString();
  const created = await Promise.all([
    createTask(relay.running.relay, caller(relay.apiKey), input(21)),
    createTask(relay.running.relay, caller(relay.apiKey), CreateTaskInput.parse({ targetUrl: 'http://127.0.0.1:9/later', delayUntil: later, priority: 9 })),
  ]);
  assert.deepEqual(created.map((c) => c.task.status), ['pending', 'delayed']);
  const [job] = await sql`select start_after, priority from pgboss.job where name = 'task.dispatch' and data->>'taskId' = ${created[1].task.id}`;
  assert.equal(job.start_after.toISOString(), later);
  assert.equal(job.priority, 9);
});
