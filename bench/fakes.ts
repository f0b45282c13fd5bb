/**
 * The outside world of the benchmark, in one child process so that its CPU does not
 * distort the load generator's timing:
 *
 * - a fake provider (Replicate-like): `POST /submit` answers `{id, status:"starting"}`
 *   at once, then after `--delay-ms` POSTs `{status:"succeeded", output}` to the body's
 *   `webhook` URL (the relay's minted callback URL), retrying non-2xx a few times (never,
 *   when the body says `"hold": true`);
 * - an onComplete receiver: `POST /hook` verifies Standard Webhooks signatures with the
 *   reference library and records the first verified delivery per task.
 *
 * Forked by bench/run.ts with IPC:  env BENCH_WEBHOOK_SECRET, argv `--delay-ms N`.
 *   → { type: 'ready', providerPort, receiverPort }
 *   ← { type: 'count' }  → { type: 'count', delivered, deliveredWarmup, submitted }
 *   ← { type: 'report' } → FakesReport
 *   ← { type: 'cpu' }    → { type: 'cpu', ms } (this process's CPU so far)
 *   ← { type: 'reset' }  → { type: 'reset' } (forgets every task: the next phase starts clean)
 * Tasks are keyed by `n` (body.n at the provider, metadata.n at the receiver);
 * warm-up tasks use negative n so they never enter the figures.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import { Webhook } from 'standardwebhooks';
import { Agent, request } from 'undici';
import { readBody, startProvider } from './fake-provider.ts';

export interface FakesReady {
  type: 'ready';
  providerPort: number;
  receiverPort: number;
}

export interface FakesReport {
  type: 'report';
  /** [n, first submit arrival] */
  submits: Array<[number, number]>;
  /** [n, send time of the callback the relay answered 2xx] */
  callbacks: Array<[number, number]>;
  /** [n, ms the relay took to answer that callback] */
  callbackMs: Array<[number, number]>;
  /** [n, arrival, task id, event] of the first verified delivery per task */
  deliveries: Array<[number, number, string, string]>;
  counters: Record<string, number>;
}

const now = () => performance.timeOrigin + performance.now();
const { values } = parseArgs({ options: { 'delay-ms': { type: 'string', default: '200' } } });
const delayMs = Number(values['delay-ms']);
const secret = process.env.BENCH_WEBHOOK_SECRET;
if (!secret) throw new Error('fakes: BENCH_WEBHOOK_SECRET is not set');
const webhook = new Webhook(secret);

const counters: Record<string, number> = {};
const deliveries = new Map<number, [number, number, string, string]>();
const seenWebhookIds = new Set<string>();
function resetReceiver(): void {
  Object.assign(counters, {
    badSignatures: 0,
    duplicates: 0, // same webhook-id delivered again
    duplicateTasks: 0, // same task delivered again under another webhook-id
    unreadableDeliveries: 0,
  });
  deliveries.clear();
  seenWebhookIds.clear();
}
resetReceiver();

async function onHook(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const at = now();
  const raw = await readBody(req);
  const header = (name: string) => String(req.headers[name] ?? '');
  let payload: { event?: string; task?: { id?: string; metadata?: { n?: string } } };
  try {
    payload = webhook.verify(raw, {
      'webhook-id': header('webhook-id'),
      'webhook-timestamp': header('webhook-timestamp'),
      'webhook-signature': header('webhook-signature'),
    }) as typeof payload;
  } catch {
    counters.badSignatures++;
    res.writeHead(401).end();
    return;
  }
  res.writeHead(200).end();
  const id = header('webhook-id');
  if (seenWebhookIds.has(id)) {
    counters.duplicates++;
    return;
  }
  seenWebhookIds.add(id);
  const n = Number(payload.task?.metadata?.n);
  if (!Number.isInteger(n) || typeof payload.task?.id !== 'string') {
    counters.unreadableDeliveries++;
    return;
  }
  if (deliveries.has(n)) counters.duplicateTasks++;
  else deliveries.set(n, [n, at, payload.task.id, String(payload.event)]);
}

const receiver = createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/hook') return void res.writeHead(404).end();
  onHook(req, res).catch(() => {
    counters.unreadableDeliveries++;
    if (!res.headersSent) res.writeHead(400).end();
  });
});

const agent = new Agent({ connections: 64, keepAliveTimeout: 10_000 });
const provider = startProvider({ delayMs, counters, now, post: postJson });

/** POSTs JSON and returns the status (and Retry-After seconds); the body is discarded. */
async function postJson(url: string, body: string): Promise<{ status: number; retryAfter: number }> {
  const res = await request(url, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json' },
    dispatcher: agent,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  });
  await res.body.dump();
  return { status: res.statusCode, retryAfter: Number(res.headers['retry-after'] ?? 0) };
}

const listen = (server: ReturnType<typeof createServer>) =>
  new Promise<number>((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : 0);
    }),
  );
const [providerPort, receiverPort] = await Promise.all([listen(provider.server), listen(receiver)]);
process.send?.({ type: 'ready', providerPort, receiverPort } satisfies FakesReady);

process.on('message', (msg: { type?: string }) => {
  if (msg?.type === 'count') {
    let delivered = 0;
    for (const n of deliveries.keys()) if (n >= 0) delivered++;
    process.send?.({ type: 'count', delivered, deliveredWarmup: deliveries.size - delivered, submitted: provider.submits.size });
  } else if (msg?.type === 'report') {
    const report: FakesReport = {
      type: 'report',
      submits: [...provider.submits],
      callbacks: [...provider.callbacks],
      callbackMs: [...provider.callbackMs],
      deliveries: [...deliveries.values()],
      counters,
    };
    process.send?.(report);
  } else if (msg?.type === 'cpu') {
    const cpu = process.cpuUsage();
    process.send?.({ type: 'cpu', ms: (cpu.user + cpu.system) / 1000 });
  } else if (msg?.type === 'reset') {
    for (const key of Object.keys(counters)) delete counters[key];
    resetReceiver();
    provider.reset();
    process.send?.({ type: 'reset' });
  }
});

function shutdown(): void {
  provider.server.close();
  receiver.close();
  void agent.close();
  process.exit(0);
}
process.once('SIGTERM', shutdown);
process.once('disconnect', shutdown);
