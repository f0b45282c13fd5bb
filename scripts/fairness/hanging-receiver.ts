/**
 * Issue 15 item 2: tenant A has `--callbacks N` tasks whose onComplete receiver hangs (or answers
 * at once with `--receiver fast`); each gets a callback of about 1 MiB. Meanwhile tenant B's tasks
 * complete by a small callback and B's receiver times how long its webhook took. Prints the
 * relay's RSS before, at its highest and after, and B's callback-to-webhook latencies. With
 * `--role api` the relay runs no workers, so what it holds is the prompt deliveries' alone (the
 * durable `task.notify` jobs, due 30 s later, are left to workers that do not run).
 *
 *   node scripts/fairness/hanging-receiver.ts [--callbacks 400] [--receiver hanging|fast] [--b-tasks 5] [--role all|api]
 */
import type { ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { log, percentiles, run, startLab, startServer } from './harness.ts';

const { values } = parseArgs({
  options: {
    callbacks: { type: 'string', default: '400' },
    receiver: { type: 'string', default: 'hanging' },
    'b-tasks': { type: 'string', default: '5' },
    role: { type: 'string', default: 'all' },
  },
});
const count = Number(values.callbacks);
const bTasks = Number(values['b-tasks']);
const CALLBACK_BYTES = 1024 * 1024 - 64;
const CONCURRENCY = 32;

async function inParallel<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) await work(items[next++]);
  }));
}

await run(async () => {
  const target = await startServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  const hung: ServerResponse[] = [];
  let aDeliveries = 0;
  const receiverA = await startServer((_req, res) => {
    aDeliveries++;
    if (values.receiver === 'fast') res.writeHead(200).end('ok');
    else hung.push(res);
  });
  const arrivals = new Map<string, number>();
  const receiverB = await startServer((_req, res, body) => {
    arrivals.set((JSON.parse(body.toString('utf8')) as { task: { id: string } }).task.id, performance.now());
    res.writeHead(200).end('ok');
  });
  const lab = await startLab({ role: values.role === 'api' ? 'api' : 'all' });
  const task = (receiver: string) => ({ targetUrl: `${target.url}/submit`, waitForSignal: true, onCompleteUrl: `${receiver}/hook` });

  const callbackUrls: string[] = [];
  await inParallel(Array.from({ length: count }, (_, i) => i), 16, async () => {
    const created = await lab.api(lab.a, 'POST', '/v1/tasks', task(receiverA.url));
    if (created.status !== 201) throw new Error(`create answered ${created.status}`);
    callbackUrls.push(created.body.callbackUrl as string);
  });
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const rssBeforeMb = lab.relay.rssNowMb();
  let rssMaxMb = rssBeforeMb;
  const sampler = setInterval(() => (rssMaxMb = Math.max(rssMaxMb, lab.relay.rssNowMb())), 100);

  log(`${count} callbacks of ${CALLBACK_BYTES} bytes for tenant A (receiver ${values.receiver}); RSS before ${rssBeforeMb} MB`);
  const payload = JSON.stringify({ output: 'x'.repeat(CALLBACK_BYTES - 14) });
  const callbackAgent = new Agent({ connections: CONCURRENCY });
  const statuses: Record<string, number> = {};
  const callbacksStarted = performance.now();
  await inParallel(callbackUrls, CONCURRENCY, async (url) => {
    const res = await request(url, { method: 'POST', dispatcher: callbackAgent, headers: { 'content-type': 'application/json' }, body: payload });
    await res.body.dump();
    statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
  });
  const callbacksMs = Math.round(performance.now() - callbacksStarted);
  log(`callbacks answered in ${callbacksMs} ms: ${JSON.stringify(statuses)}; tenant B now completes ${bTasks} tasks`);

  const latencies: number[] = [];
  let missing = 0;
  for (let i = 0; i < bTasks; i++) {
    const created = await lab.api(lab.b, 'POST', '/v1/tasks', task(receiverB.url));
    const id = created.body.task.id as string;
    const sentAt = performance.now();
    const answer = await request(created.body.callbackUrl as string, { method: 'POST', dispatcher: lab.b.agent, headers: { 'content-type': 'application/json' }, body: '{"output":"b"}' });
    await answer.body.dump();
    const deadline = sentAt + 60_000;
    while (!arrivals.has(id) && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    if (arrivals.has(id)) latencies.push(arrivals.get(id)! - sentAt);
    else missing++;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  clearInterval(sampler);
  const figures = {
    callbacks: count,
    receiver: values.receiver,
    role: values.role,
    callbackStatuses: statuses,
    callbacksMs,
    rssBeforeMb,
    rssMaxMb,
    rssDeltaMb: Math.round(rssMaxMb - rssBeforeMb),
    rssAfterMb: lab.relay.rssNowMb(),
    aDeliveriesSoFar: aDeliveries,
    bCallbackToWebhookMs: percentiles(latencies),
    bMissingAfter60s: missing,
  };
  await callbackAgent.destroy();
  for (const res of hung) res.destroy();
  return figures;
});
