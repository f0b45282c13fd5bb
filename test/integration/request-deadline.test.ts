/**
 * A database that does not answer (here: a table lock held by another session) must not make
 * clients hang (DESIGN §8): a create is answered 503 with Retry-After within the request budget,
 * and once the database moves again, the create that was answered 503 is not written after all
 * (its client retries it). Readiness has its own connection and answers while the pool is stuck.
 */
import assert from 'node:assert/strict';
import { setTimeout as pause } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import postgres from 'postgres';
import { startTestRelay, type TestRelay } from '../helpers/relay.ts';

const BUDGET_MS = 1500;
let relay: TestRelay;
let locker: postgres.Sql;
let observer: postgres.Sql;

before(async () => {
  relay = await startTestRelay({ requestBudgetMs: BUDGET_MS, env: { RELAY_ROLE: 'api' } });
  locker = postgres(relay.database.url, { max: 1, onnotice: () => {} });
  observer = postgres(relay.database.url, { max: 1, onnotice: () => {} });
});
after(async () => {
  await locker.end();
  await observer.end();
  await relay.stop();
});

const create = (n: number) =>
  relay.api('POST', '/v1/tasks', { targetUrl: 'http://127.0.0.1:9/never', metadata: { case: 'deadline', n: String(n) } });

/**
 * Statements of the relay still running (waiting on the lock, or finishing after it). The api
 * role runs no workers, so the only active statements on this database are the creates.
 */
async function relayStatementsRunning(): Promise<number> {
  const [row] = await observer<{ n: number }[]>`
    select count(*)::int as n from pg_stat_activity
    where datname = current_database() and pid <> pg_backend_pid() and state = 'active'`;
  return row.n;
}

test('creates stuck behind a lock answer 503 with Retry-After within the budget, and are never written later', async () => {
  const reserved = await locker.reserve();
  await reserved`begin`;
  await reserved`lock table tasks in access exclusive mode`;
  let released = false;
  try {
    const started = Date.now();
    const answers = await Promise.all([1, 2, 3, 4, 5, 6].map(create));
    const took = Date.now() - started;
    for (const answer of answers) {
      assert.equal(answer.status, 503, JSON.stringify(answer.body));
      assert.equal(answer.body.code, 'unavailable');
      assert.equal(answer.headers.get('retry-after'), '2');
      assert.equal(answer.headers.get('content-type'), 'application/problem+json');
    }
    assert.ok(took >= BUDGET_MS - 50 && took < BUDGET_MS + 2000, `answered after ${took} ms`);

    // Readiness does not queue behind the stuck pool.
    const probeStarted = Date.now();
    const ready = await fetch(`${relay.baseUrl}/readyz`);
    assert.equal(ready.status, 200);
    assert.ok(Date.now() - probeStarted < 1000);

    const blocked = await relayStatementsRunning();
    assert.ok(blocked >= 1, 'no create statement reached the database');
    await reserved`commit`;
    released = true;
  } finally {
    if (!released) await reserved`rollback`;
    reserved.release();
  }
  // The statements that were waiting on the lock now run: each must fail its deadline check.
  for (let i = 0; (await relayStatementsRunning()) > 0; i++) {
    assert.ok(i < 100, 'relay statements still running after 10 s');
    await pause(100);
  }
  const [row] = await locker<{ n: number }[]>`select count(*)::int as n from tasks where metadata->>'case' = 'deadline'`;
  assert.equal(row.n, 0, 'a create answered 503 was written after all');

  // And the relay is fine: the next create is written.
  const next = await create(7);
  assert.equal(next.status, 201, JSON.stringify(next.body));
});
