/**
 * A polling task holds no worker: its next poll is a delayed job in PostgreSQL. Stop the relay
 * between two polls and start another on the same database: the new one makes the next poll and
 * finishes the task.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { HttpFake } from '../fakes/http-fake.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { startTestRelay, type TestRelay, waitForStatus } from '../helpers/relay.ts';

let database: TestDatabase;
let provider: HttpFake;
let state = 'RUNNING';

before(async () => {
  database = await createTestDatabase('poll_restart');
  provider = await HttpFake.start((req) =>
    req.method === 'POST' ? { status: 200, body: { id: 'rw-restart' } } : { status: 200, body: { id: 'rw-restart', status: state, ...(state === 'SUCCEEDED' ? { output: ['https://cdn.example/out.mp4'] } : {}) } },
  );
});
after(async () => {
  await provider.close();
  await database.drop();
});

test('polling survives a restart: the next poll is a job, not a sleeping worker', async () => {
  let first: TestRelay | undefined = await startTestRelay({ database });
  let second: TestRelay | undefined;
  try {
    // The preset's 6 s (scaled by 0.05 in tests: 0.3 s) becomes 2 s: the restart falls between two polls.
    const created = await first.api('POST', '/v1/tasks', {
      targetUrl: `${provider.url}/v1/text_to_video`,
      headers: { authorization: 'Bearer key_restart' },
      body: {},
      provider: 'runwayml',
      pollConfig: { interval: 40 },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.task.id;
    const { encryptionKey } = first;
    await provider.waitForRequests(1, (r) => r.method === 'GET');
    await first.stop();
    first = undefined;
    state = 'SUCCEEDED';

    second = await startTestRelay({ database, env: { RELAY_ENCRYPTION_KEY: encryptionKey } });
    const done = await waitForStatus(second, id, 'completed', 20_000);
    assert.deepEqual(JSON.parse(done.result.body).output, ['https://cdn.example/out.mp4']);
    const polls = (await second.api('GET', `/v1/tasks/${id}/events`)).body.events.filter((e: any) => e.type === 'poll.attempt');
    assert.deepEqual(polls.map((e: any) => e.data.state), ['RUNNING', 'SUCCEEDED']);
    assert.equal(provider.requests.filter((r) => r.method === 'GET').length, 2);
  } finally {
    await first?.stop();
    await second?.stop();
  }
});
