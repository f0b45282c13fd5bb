/**
 * Self-check of the bench's fakes and stats, no relay needed:
 *   node bench/check-fakes.ts
 * A dummy "relay" takes the fake provider's callbacks (refusing the first one with
 * a 503 to exercise the retry) and answers each with a Standard Webhooks delivery
 * to the receiver, plus one replay (same webhook-id) and one forged signature. One
 * more submit asks the provider to hold its callback; a reset forgets everything.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { Webhook } from 'standardwebhooks';
import { request } from 'undici';
import { log, now, runCleanups, sleep } from './children.ts';
import { readBody } from './fake-provider.ts';
import { startFakes } from './phases.ts';
import { percentile, summarizeLifecycle, type StoredTask } from './stats.ts';

assert.equal(percentile([5, 1, 4, 2, 3], 50), 3);
assert.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 99), 10);
assert.equal(percentile([], 50), null);

const root = fileURLToPath(new URL('..', import.meta.url));
const secret = `whsec_${randomBytes(24).toString('base64')}`;
const delayMs = 100;
const tasks = 5;
const fakes = await startFakes(root, delayMs, secret);
const signer = new Webhook(secret);
let refused = false;

async function deliver(n: number, msgId: string, sign: Webhook): Promise<number> {
  const payload = JSON.stringify({ event: 'task.completed', task: { id: `task-${n}`, metadata: { n: String(n) } } });
  const ts = new Date();
  const res = await request(`http://127.0.0.1:${fakes.receiverPort}/hook`, {
    method: 'POST',
    body: payload,
    headers: {
      'content-type': 'application/json',
      'webhook-id': msgId,
      'webhook-timestamp': String(Math.floor(ts.getTime() / 1000)),
      'webhook-signature': sign.sign(msgId, ts, payload),
    },
  });
  await res.body.dump();
  return res.statusCode;
}

const callbackBodies: unknown[] = [];
const dummyRelay = createServer((req, res) => {
  void readBody(req).then(async (raw) => {
    if (!refused) {
      refused = true;
      return void res.writeHead(503).end();
    }
    res.writeHead(200).end();
    const n = Number(/\/v1\/callbacks\/n(\d+)-/.exec(req.url ?? '')?.[1]);
    callbackBodies.push(JSON.parse(raw));
    assert.equal(await deliver(n, `msg_${n}`, signer), 200);
    if (n === 0) {
      assert.equal(await deliver(n, `msg_${n}`, signer), 200); // replay → duplicate
      const forger = new Webhook(`whsec_${randomBytes(24).toString('base64')}`);
      assert.equal(await deliver(n, 'msg_forged', forger), 401);
    }
  });
});
await new Promise<void>((resolve) => dummyRelay.listen(0, '127.0.0.1', resolve));
const address = dummyRelay.address();
const relayPort = typeof address === 'object' && address ? address.port : 0;

try {
  const stored: StoredTask[] = [];
  const submit = async (n: number, hold: boolean) => {
    const token = `n${n}-${randomBytes(16).toString('hex')}`;
    const res = await request(`http://127.0.0.1:${fakes.providerPort}/submit`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ input: 'bench', webhook: `http://127.0.0.1:${relayPort}/v1/callbacks/${token}`, n, ...(hold ? { hold } : {}) }),
    });
    assert.deepEqual(await res.body.json(), { id: `pred_${n}`, status: 'starting' });
  };
  const from = now();
  for (let n = 0; n < tasks; n++) {
    const createdAt = now();
    await submit(n, false);
    stored.push({ n, id: `task-${n}`, createdAt });
  }
  await submit(tasks, true);
  for (let i = 0; i < 50 && (await fakes.count()).delivered < tasks; i++) await sleep(100);
  // Long enough for a callback of the held task to have been sent, had there been one.
  await sleep(delayMs * 3);
  const report = await fakes.report();
  assert.equal((await fakes.count()).submitted, tasks + 1);
  log('report counters', JSON.stringify(report.counters));
  assert.equal(report.deliveries.length, tasks);
  assert.equal(report.counters.duplicates, 1);
  assert.equal(report.counters.badSignatures, 1);
  assert.equal(report.counters.callbackRetries, 1);
  assert.equal(report.counters.callbackStatus503, 1);
  assert.equal(callbackBodies.length, tasks);
  for (const b of callbackBodies as Array<{ id: string; status: string; output: string[] }>) {
    assert.deepEqual(b, { id: b.id, status: 'succeeded', output: ['https://example.invalid/out.png'] });
    assert.match(b.id, /^pred_\d+$/);
  }
  assert.equal(report.callbacks.length, tasks, 'the held task was called back');
  assert.equal(report.callbackMs.length, tasks);
  const life = summarizeLifecycle(stored, {
    submitAt: new Map(report.submits),
    callbackSentAt: new Map(report.callbacks),
    deliveredAt: new Map(report.deliveries.map(([n, at, taskId, event]) => [n, { at, taskId, event }])),
  }, { from, to: now() });
  log('lifecycle', JSON.stringify(life));
  assert.equal(life.lost, 0);
  assert.equal(life.idMismatches, 0);
  assert.equal(life.completedInWindow, tasks);
  assert.equal(life.createdInWindow, tasks);
  await fakes.reset();
  assert.deepEqual(await fakes.count(), { type: 'count', delivered: 0, deliveredWarmup: 0, submitted: 0 });
  // The provider waits delayMs before its callback; the refused one waits a retry more.
  for (const [n, sent] of report.callbacks) {
    const submit = report.submits.find(([m]) => m === n)?.[1] ?? 0;
    assert.ok(sent - submit >= delayMs - 5, `callback ${n} sent ${sent - submit} ms after submit`);
  }
  log('fakes check passed');
} finally {
  dummyRelay.close();
  await runCleanups();
}
process.exit(0);
