/**
 * Compare-and-set transitions are written several to a statement (db/sql/tasks.ts `transitions`,
 * writers/dispatch.ts `createOutcomeRecorder`). Each guard holds or fails on its own.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import postgres from 'postgres';
import { transact } from '../../src/db/pipeline.ts';
import { claimForDispatch, transitions } from '../../src/db/sql/tasks.ts';
import { recordDeliveries } from '../../src/db/sql/deliveries.ts';
import { Queues } from '../../src/jobs/queues.ts';
import { sha256Hex } from '../../src/callbacks/token.ts';
import { startTestRelay, type TestRelay } from '../helpers/relay.ts';

let relay: TestRelay;
let sql: postgres.Sql;
before(async () => {
  relay = await startTestRelay({ env: { RELAY_ROLE: 'api' } }); // no worker: tasks stay where the test puts them
  sql = postgres(relay.database.url, { max: 2, onnotice: () => {} });
});
after(async () => {
  await sql.end();
  await relay.stop();
});

async function pendingTask(): Promise<string> {
  const answer = await relay.api('POST', '/v1/tasks', { targetUrl: 'http://127.0.0.1:9/run', onCompleteUrl: 'http://127.0.0.1:9/hook' });
  assert.equal(answer.status, 201);
  return answer.body.task.id;
}
const eventsOf = async (id: string) => (await sql`select type, data from task_events where task_id = ${id} order by id`).map((e) => [e.type, e.data]);

test('one statement, two guards: the one that holds changes its task, the other records its miss', async () => {
  const [a, b] = [await pendingTask(), await pendingTask()];
  const { changed: rows } = await transact(relay.running.relay.sql, {
    changed: transitions([
      { taskId: a, from: ['pending'], to: 'failed', error: { code: 'target_rejected', message: 'no' }, result: null, events: [{ type: 'dispatch.attempt', data: { attempt: 1 } }] },
      { taskId: b, from: ['waiting'], to: 'completed', eventsIfMissed: [{ type: 'dispatch.late_response', data: {} }] },
    ]),
  });
  assert.deepEqual(rows.map((r) => r.id), [a]);
  const [ta] = await sql`select status, error, result is null as no_result, delivery_status, completed_at is not null as done from tasks where id = ${a}`;
  assert.deepEqual(ta, { status: 'failed', error: { code: 'target_rejected', message: 'no' }, no_result: true, delivery_status: 'pending', done: true });
  const [tb] = await sql`select status, completed_at from tasks where id = ${b}`;
  assert.deepEqual(tb, { status: 'pending', completed_at: null });
  assert.deepEqual((await eventsOf(a)).slice(1), [['dispatch.attempt', { attempt: 1 }], ['status.changed', { from: 'pending', to: 'failed' }]]);
  assert.deepEqual((await eventsOf(b)).slice(1), [['dispatch.late_response', {}]]);
});

test('error: null clears the column to SQL NULL; leaving it out keeps it', async () => {
  const id = await pendingTask();
  await sql`update tasks set error = '{"code":"x","message":"y"}' where id = ${id}`;
  await transact(relay.running.relay.sql, { changed: transitions([{ taskId: id, from: ['pending'], to: 'processing' }]) });
  assert.equal((await sql`select error->>'code' as code from tasks where id = ${id}`)[0].code, 'x');
  await transact(relay.running.relay.sql, { changed: transitions([{ taskId: id, from: ['processing'], to: 'waiting', error: null }]) });
  assert.equal((await sql`select error is null as cleared from tasks where id = ${id}`)[0].cleared, true);
});

test('a task may appear only once in a statement', () => {
  const id = '00000000-0000-7000-8000-000000000001';
  assert.throws(() => transitions([{ taskId: id, from: ['pending'], to: 'processing' }, { taskId: id, from: ['processing'], to: 'waiting' }]), /appears twice/);
});

test('outcomes recorded together: each task gets its change and its own follow-up job', async () => {
  const [w, c, f] = [await pendingTask(), await pendingTask(), await pendingTask()];
  await sql`update tasks set status = 'processing' where id = any(${[w, c, f]}::uuid[])`;
  const record = relay.running.relay.writers.outcome;
  await Promise.all([
    record({ change: { taskId: w, from: ['processing'], to: 'waiting' }, job: { queue: Queues.deadline, insert: { data: { taskId: w }, startAfter: 600 } } }),
    record({ change: { taskId: c, from: ['processing'], to: 'completed' }, job: { queue: Queues.notify, insert: { data: { taskId: c, generation: 0, attempt: 1 } } } }),
    record({ change: { taskId: f, from: ['processing'], to: 'failed' } }),
  ]);
  const statuses = await sql`select id, status from tasks where id = any(${[w, c, f]}::uuid[])`;
  assert.deepEqual(Object.fromEntries(statuses.map((r) => [r.id, r.status])), { [w]: 'waiting', [c]: 'completed', [f]: 'failed' });
  const jobs = await sql`select name, data->>'taskId' as task_id, start_after > now() + interval '500 seconds' as later from pgboss.job where data->>'taskId' = any(${[w, c, f]}) and name <> ${Queues.dispatch} order by name`;
  assert.deepEqual([...jobs], [
    { name: Queues.deadline, task_id: w, later: true },
    { name: Queues.notify, task_id: c, later: false },
  ]);
});

test('delivery attempts recorded in one statement: each is checked against its own round and attempt', async () => {
  const [a, b] = [await pendingTask(), await pendingTask()];
  await sql`update tasks set status = 'completed', delivery_status = 'pending', delivery_attempts = 0 where id = any(${[a, b]}::uuid[])`;
  const { recorded: rows } = await transact(relay.running.relay.sql, {
    recorded: recordDeliveries([
      { taskId: a, status: 'delivered', attempt: 1, nextAt: null, generation: 0, events: [{ type: 'delivery.succeeded', data: { attempt: 1 } }] },
      // Attempt 2 of b's round cannot be recorded before attempt 1 is.
      { taskId: b, status: 'failed', attempt: 2, nextAt: null, generation: 0, events: [{ type: 'delivery.exhausted', data: { attempts: 2 } }] },
    ]),
  });
  assert.deepEqual(rows.map((r) => r.id), [a]);
  const states = await sql`select id, delivery_status, delivery_attempts from tasks where id = any(${[a, b]}::uuid[])`;
  assert.deepEqual(Object.fromEntries(states.map((r) => [r.id, [r.delivery_status, r.delivery_attempts]])), { [a]: ['delivered', 1], [b]: ['pending', 0] });
  assert.deepEqual((await eventsOf(a)).at(-1), ['delivery.succeeded', { attempt: 1 }]);
  assert.notEqual((await eventsOf(b)).at(-1)?.[0], 'delivery.exhausted');
  assert.throws(() => recordDeliveries([
    { taskId: a, status: 'delivered', attempt: 1, nextAt: null, generation: 0, events: [] },
    { taskId: a, status: 'delivered', attempt: 2, nextAt: null, generation: 0, events: [] },
  ]), /appears twice/);
});

test('callbacks consumed together: one statement, each answered for its own token, jobs only for the accepted', async () => {
  const created = await Promise.all([1, 2, 3].map(() => relay.api('POST', '/v1/tasks', { targetUrl: 'http://127.0.0.1:9/run', waitForSignal: true, onCompleteUrl: 'http://127.0.0.1:9/hook' })));
  const tokens = created.map((c) => c.body.signalToken as string);
  // The second task has its result already: its callback is a conflict.
  await sql`update tasks set status = 'completed', callback_body_hash = 'other' where id = ${created[1].body.task.id}`;
  const consume = (token: string, n: number) => ({
    tokenHash: sha256Hex(token),
    bodyHash: sha256Hex(`body ${n}`),
    body: `body ${n}`,
    size: 6,
    lateLimit: 100,
    // The job of an accepted callback takes the ref as its id (prompt delivery brings it forward by it).
    ref: `00000000-0000-4000-8000-00000000000${n}`,
  });
  const unknown = '0'.repeat(64);
  const rows = await Promise.all([...tokens, unknown].map((t, n) => relay.running.relay.writers.callback(consume(t, n))));
  assert.deepEqual(rows.map((r) => r?.outcome), ['accepted', 'conflict', 'accepted', undefined]);
  assert.equal(rows[0]?.task.result?.body, 'body 0');
  assert.equal(rows[2]?.task.result?.body, 'body 2');
  const done = await sql`select completed_at::text as at from tasks where id = any(${[created[0].body.task.id, created[2].body.task.id]}::uuid[])`;
  assert.equal(new Set(done.map((d) => d.at)).size, 1, 'one statement: one now()');
  const jobs = await sql`select id::text, data->>'ref' as ref from pgboss.job where name = 'task.notify' and data->>'ref' like '00000000-0000-4000-8000-%' order by 1`;
  assert.deepEqual(jobs.map((j) => [j.id, j.ref]), [0, 2].map((n) => Array(2).fill(`00000000-0000-4000-8000-00000000000${n}`)));
});

test('a dispatch claim refuses anything but task ids, and a batch holding one fails only that claim', async () => {
  assert.throws(() => claimForDispatch(['00000000-0000-7000-8000-000000000001', 'x}, {y']), /not a task id/);
  const id = await pendingTask();
  const claims = await Promise.allSettled([relay.running.relay.writers.claim(id), relay.running.relay.writers.claim('not-a-uuid')]);
  assert.equal(claims[0].status, 'fulfilled');
  assert.equal((claims[0] as PromiseFulfilledResult<any>).value?.status, 'processing');
  assert.equal(claims[1].status, 'rejected');
});
