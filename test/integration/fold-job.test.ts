/**
 * The hot paths rely on folding pg-boss's job INSERT into our own statement (db/pipeline.ts).
 * foldJob falls back to a two-statement transaction when a shape does not match, which is
 * correct but slower: these tests notice a silent fallback (a pg-boss upgrade, an edited query).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { runPlan, transact } from '../../src/db/pipeline.ts';
import { checkJobShapes, foldJob, foldJobDeferringNotify, foldJobsWhere, jobsStatement, jobStatement } from '../../src/jobs/job-sql.ts';
import { ACCEPTED_CALLBACK_JOBS, consumeCallbacks } from '../../src/db/sql/callbacks.ts';
import { CHANGED_TASK_JOBS, insertTasks, transition } from '../../src/db/sql/tasks.ts';
import { recordDelivery } from '../../src/db/sql/deliveries.ts';
import { Queues } from '../../src/jobs/queues.ts';
import { startTestRelay, type TestRelay } from '../helpers/relay.ts';

let relay: TestRelay;
before(async () => {
  relay = await startTestRelay({ env: { RELAY_ROLE: 'api' } }); // no worker: the jobs stay queued
});
after(async () => {
  await relay.stop();
});

const job = () => jobStatement(relay.running.boss, Queues.notify, { taskId: '00000000-0000-7000-8000-000000000000', generation: 0, attempt: 1 });
const statements = {
  insertTasks: () => insertTasks([{ keyHash: 'h', values: { id: '00000000-0000-7000-8000-000000000000' } as never, events: [] }]),
  transition: () => transition({ taskId: 'x', from: ['waiting'], to: 'completed' }),
  consumeCallbacks: () => consumeCallbacks([{ tokenHash: 't', bodyHash: 'b', body: '', size: 0, ref: 'r' }]),
  recordDelivery: () => recordDelivery({ taskId: 'x', status: 'delivered', attempt: 1, nextAt: null, generation: 0, events: [] }),
};

for (const [name, build] of Object.entries(statements)) {
  test(`${name} folds a pg-boss job into one statement`, async () => {
    const folded = foldJob(build(), await job());
    assert.equal(folded.length, 1, 'fell back to two statements');
    assert.match(folded[0].text, /^WITH ins AS/);
  });
}

test('a folded statement writes the job and NOTIFYs only with the row it belongs to', async () => {
  const { sql } = relay.running.relay;
  const [before] = await sql<{ n: number }[]>`select count(*)::int as n from pgboss.job where name = 'task.notify'`;
  // A transition of a task that does not exist: the job is still written (data-modifying CTEs
  // always run), which is why every job handler checks the task before acting.
  const { changed: rows } = await transact(sql, { changed: foldJob(transition({ taskId: '00000000-0000-7000-8000-000000000001', from: ['waiting'], to: 'completed' }), await job()) });
  assert.equal(rows.length, 0);
  const [afterCount] = await sql<{ n: number }[]>`select count(*)::int as n from pgboss.job where name = 'task.notify'`;
  assert.equal(afterCount.n, before.n + 1);
});

test('task creation folds its dispatch jobs and hands the NOTIFY back for after the commit', async () => {
  const dispatch = await jobsStatement(relay.running.boss, Queues.dispatch, [{ data: { taskId: 'x' }, priority: 5 }, { data: { taskId: 'y' } }]);
  for (let i = 0; i < 2; i++) {
    // Twice: the second answer comes from the cache of folded texts and must be the same.
    const folded = foldJobDeferringNotify(statements.insertTasks(), dispatch);
    const wake = folded.wake;
    assert.equal(folded.statements.length, 1, 'fell back to two statements');
    assert.doesNotMatch(folded.statements[0].text, /pg_notify/);
    assert.equal(wake?.queue, Queues.dispatch);
    assert.match(wake?.channelSql ?? '', /pgboss/);
  }
});

test('callback consumption folds its onComplete jobs with the accepted-only filter', async () => {
  const plan = await foldJobsWhere(relay.running.boss, statements.consumeCallbacks(), {
    queue: Queues.notify,
    jobs: [{ data: { callbackHash: 't', ref: 'r', generation: 0, attempt: 1 }, startAfter: 30 }],
    keep: ACCEPTED_CALLBACK_JOBS,
  });
  assert.equal(plan.statements.length, 1, 'fell back to a second round trip');
  assert.equal(plan.after, undefined);
  assert.match(plan.statements[0].text, /json_array_elements\(\$1::text::json\) j where j->'data'->>'ref' in \(select callback_ref from accepted\)/);
});

const notifyCount = async (taskId: string) => {
  const [row] = await relay.running.relay.sql<{ n: number }[]>`select count(*)::int as n from pgboss.job where name = 'task.notify' and data->>'taskId' = ${taskId}`;
  return row.n;
};

/** A waiting task of the relay's default project, written directly (the API would dispatch it). */
async function waitingTask(): Promise<string> {
  const { sql } = relay.running.relay;
  const [row] = await sql<{ id: string }[]>`
    insert into tasks (id, project_id, status, target_url, method, headers_view, request_sealed, on_complete_url,
      wait_for_signal, max_wait_time, timeout, max_retries, retry_backoff, priority, metadata)
    values (gen_random_uuid(), 'default', 'waiting', 'http://127.0.0.1:9/x', 'POST', '{}', 'x', 'http://127.0.0.1:9/hook',
      true, 600, 30, 0, 'exponential', 5, '{}')
    returning id`;
  return row.id;
}

for (const shape of ['folded', 'fallback'] as const) {
  test(`a follow-up job is written only when its compare-and-set held (${shape})`, async () => {
    const won = await waitingTask();
    const lost = await waitingTask();
    await relay.running.relay.sql`update tasks set status = 'completed' where id = ${lost}`;
    const change = transition({ taskId: won, from: ['waiting'], to: 'completed' });
    const lostChange = transition({ taskId: lost, from: ['waiting'], to: 'completed' });
    // The fallback is what runs if a pg-boss upgrade changes its SQL: a statement that does not
    // have our `with … select …` shape cannot be folded, so the jobs follow in a second round trip.
    const unfoldable = (s: typeof change) => (shape === 'fallback' ? { ...s, text: `${s.text}\n  -- x` } : s);
    for (const [taskId, statement] of [[won, unfoldable(change)], [lost, unfoldable(lostChange)]] as const) {
      const plan = await foldJobsWhere(relay.running.boss, statement, {
        queue: Queues.notify,
        jobs: [{ data: { taskId, generation: 0, attempt: 1 } }],
        keep: CHANGED_TASK_JOBS,
      });
      assert.equal(plan.after === undefined, shape === 'folded');
      await runPlan(relay.running.relay.sql, plan);
    }
    assert.equal(await notifyCount(won), 1, 'the change that happened has its job');
    assert.equal(await notifyCount(lost), 0, 'the change that lost the race wrote no job');
  });
}

test('the boot check finds every shape the folds rely on', async () => {
  const warnings: string[] = [];
  const problems = await checkJobShapes(relay.running.boss, Queues.notify, { warn: (_o: object, m: string) => warnings.push(m) } as never);
  assert.deepEqual(problems, []);
  assert.deepEqual(warnings, []);
});
