/** DESIGN §8: finished tasks past retention are deleted with their timeline; nothing else is. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { uuidv7 } from '../../src/ids.ts';
import { purgeTasks, uuidv7Floor } from '../../src/tasks/purge-tasks.ts';
import { HttpFake } from '../fakes/http-fake.ts';
import { startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';

let relay: TestRelay;
let target: HttpFake;
const DAY = 24 * 60 * 60 * 1000;

before(async () => {
  relay = await startTestRelay();
  target = await HttpFake.start(() => ({ status: 200, body: { ok: true } }));
});
after(async () => {
  await relay.stop();
  await target.close();
});

test('uuidv7Floor sorts below every id minted from that millisecond on, above earlier ones', () => {
  const at = Date.now();
  assert.ok(uuidv7Floor(at) <= uuidv7(at));
  assert.ok(uuidv7Floor(at) > uuidv7(at - 1));
});

test('purge deletes finished tasks past retention, keeps waiting ones and pending deliveries', async () => {
  const { sql } = relay.running.relay;
  const done = (await relay.api('POST', '/v1/tasks', { targetUrl: `${target.url}/x` })).body.task.id;
  await waitForStatus(relay, done, 'completed');
  const waiting = (await relay.api('POST', '/v1/tasks', { targetUrl: `${target.url}/x`, waitForSignal: true })).body.task.id;
  await waitForStatus(relay, waiting, 'waiting');
  const undelivered = (await relay.api('POST', '/v1/tasks', { targetUrl: `${target.url}/x` })).body.task.id;
  await waitForStatus(relay, undelivered, 'completed');
  await sql`update tasks set delivery_status = 'pending' where id = ${undelivered}`;

  // Thirty days on from now (plus one), every task of this test is past retention.
  assert.equal(await purgeTasks(relay.running.relay, 30, Date.now() + 31 * DAY), 1);
  const left = await sql<{ id: string }[]>`select id from tasks where id in (${done}, ${waiting}, ${undelivered})`;
  assert.deepEqual(left.map((r) => r.id).sort(), [waiting, undelivered].sort());
  const [events] = await sql<{ n: number }[]>`select count(*)::int as n from task_events where task_id = ${done}`;
  assert.equal(events.n, 0, 'the timeline goes with the task');

  // Inside retention nothing is touched.
  assert.equal(await purgeTasks(relay.running.relay, 30, Date.now()), 0);
});
