/**
 * Issue 15 item 3: tenant A keeps `--waits N` long-polls (`GET /v1/tasks/:id?wait=25`) open on
 * one key over `--tasks` waiting tasks, each renewed as soon as it answers (after Retry-After when
 * refused); tenant B creates a task and signals it, ten times a second. B's create and signal
 * latencies are measured first without the long-polls, then with them; so is the database's
 * transaction rate (pg_stat_database), the load the long-polls put on everyone.
 *
 * `--per-key N` sets RELAY_LONG_POLLS_PER_KEY (0: no cap, every long-poll waits).
 *
 *   node scripts/fairness/long-polls.ts [--waits 2000] [--tasks 20] [--seconds 15] [--per-key N]
 */
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { Agent, request } from 'undici';
import { type Lab, log, percentiles, run, startLab, startServer } from './harness.ts';

const { values } = parseArgs({
  options: {
    waits: { type: 'string', default: '2000' },
    tasks: { type: 'string', default: '20' },
    seconds: { type: 'string', default: '15' },
    'per-key': { type: 'string' },
  },
});
const waits = Number(values.waits);
const seconds = Number(values.seconds);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** B's create → signal loop, one start every 100 ms, for `seconds`; latencies and transactions/s. */
async function measureB(lab: Lab, sql: postgres.Sql, targetUrl: string) {
  const xacts = async () => Number((await sql`select xact_commit + xact_rollback as n from pg_stat_database where datname = current_database()`)[0].n);
  const creates: number[] = [];
  const signals: number[] = [];
  const failures: Record<string, number> = {};
  const before = await xacts();
  const started = performance.now();
  while (performance.now() - started < seconds * 1000) {
    const tick = performance.now();
    const created = await lab.api(lab.b, 'POST', '/v1/tasks', { targetUrl, waitForSignal: true });
    if (created.status === 201) {
      creates.push(created.ms);
      const signal = await lab.api(lab.b, 'POST', `/v1/signals/${created.body.signalToken}`, { status: 'completed' });
      if (signal.status === 200) signals.push(signal.ms);
      else failures[`signal ${signal.status}`] = (failures[`signal ${signal.status}`] ?? 0) + 1;
    } else {
      failures[`create ${created.status}`] = (failures[`create ${created.status}`] ?? 0) + 1;
    }
    await sleep(Math.max(0, 100 - (performance.now() - tick)));
  }
  const xactsPerS = Math.round(((await xacts()) - before) / ((performance.now() - started) / 1000));
  return { creates: percentiles(creates), signals: percentiles(signals), failures, dbXactsPerS: xactsPerS };
}

await run(async () => {
  const target = await startServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  const lab = await startLab({ env: values['per-key'] === undefined ? {} : { RELAY_LONG_POLLS_PER_KEY: values['per-key'] } });
  const sql = postgres(lab.databaseUrl, { max: 1, onnotice: () => {} });
  const targetUrl = `${target.url}/submit`;
  const ids: string[] = [];
  for (let i = 0; i < Number(values.tasks); i++) {
    const created = await lab.api(lab.a, 'POST', '/v1/tasks', { targetUrl, waitForSignal: true });
    ids.push(created.body.task.id as string);
  }
  for (const id of ids) {
    while ((await lab.api(lab.a, 'GET', `/v1/tasks/${id}`)).body.task.status !== 'waiting') await sleep(50);
  }
  log(`baseline: tenant B creates and signals for ${seconds} s without long-polls`);
  const baseline = await measureB(lab, sql, targetUrl);

  const pollAgent = new Agent({ connections: null });
  const answers: Record<string, number> = {};
  let open = 0;
  let stopping = false;
  const loops = Array.from({ length: waits }, async (_, i) => {
    const id = ids[i % ids.length];
    while (!stopping) {
      let pauseMs = 0;
      open++;
      try {
        const res = await request(`${lab.origin}/v1/tasks/${id}?wait=25&seenStatus=waiting`, { dispatcher: pollAgent, headers: { 'x-api-key': lab.a.key }, headersTimeout: 60_000, bodyTimeout: 60_000 });
        await res.body.dump();
        answers[res.statusCode] = (answers[res.statusCode] ?? 0) + 1;
        if (res.statusCode === 429) pauseMs = Number(res.headers['retry-after'] ?? 1) * 1000;
      } catch {
        answers.error = (answers.error ?? 0) + 1;
        pauseMs = 100;
      } finally {
        open--;
      }
      if (pauseMs > 0 && !stopping) await sleep(pauseMs);
    }
  });
  await sleep(3000);
  log(`${open} long-polls open on tenant A's key; tenant B creates and signals for ${seconds} s`);
  const loaded = await measureB(lab, sql, targetUrl);
  const openDuring = open;
  stopping = true;
  await pollAgent.destroy();
  await Promise.all(loops);
  await sql.end();
  return { waits, perKey: values['per-key'] ?? 'default', tasks: ids.length, seconds, baseline, withLongPolls: { ...loaded, openLongPolls: openDuring, answers } };
});
