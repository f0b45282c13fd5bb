/**
 * Issue 15 item 1: `--slow N` connections of tenant A each POST /v1/tasks with a 260-byte body
 * sent at 1 byte/s (one key, far under its rate limit), while tenant B creates a task every
 * 500 ms with a 15 s client timeout. Prints B's create latencies, how many timed out, and when
 * and how each slow connection ended (a status line such as 408, or closed).
 *
 *   node scripts/fairness/slow-bodies.ts [--slow 12] [--seconds 20]
 */
import { connect, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { log, percentiles, run, startLab, startServer } from './harness.ts';

const { values } = parseArgs({ options: { slow: { type: 'string', default: '12' }, seconds: { type: 'string', default: '20' } } });
const slowCount = Number(values.slow);
const seconds = Number(values.seconds);
const BODY_BYTES = 260;
const B_TIMEOUT_MS = 15_000;

/** A valid task body of exactly BODY_BYTES bytes (padded in its metadata). */
function paddedBody(targetUrl: string): string {
  const bare = JSON.stringify({ targetUrl, metadata: { pad: '' } });
  return JSON.stringify({ targetUrl, metadata: { pad: 'x'.repeat(BODY_BYTES - bare.length) } });
}

interface SlowClient {
  socket: Socket;
  startedAt: number;
  endedAt?: number;
  firstLine?: string;
  sent: number;
}

function slowClient(origin: string, key: string, body: string): SlowClient {
  const url = new URL(origin);
  const socket = connect(Number(url.port), url.hostname);
  const client: SlowClient = { socket, startedAt: performance.now(), sent: 0 };
  socket.setNoDelay(true);
  socket.on('connect', () => {
    socket.write(`POST /v1/tasks HTTP/1.1\r\nHost: ${url.host}\r\nX-API-Key: ${key}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    const drip = setInterval(() => {
      if (client.sent >= body.length || socket.destroyed) return clearInterval(drip);
      socket.write(body[client.sent++]);
    }, 1000);
    socket.once('close', () => clearInterval(drip));
  });
  socket.on('data', (chunk: Buffer) => {
    client.firstLine ??= chunk.toString('latin1').split('\r\n')[0];
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    client.endedAt = performance.now();
  });
  return client;
}

await run(async () => {
  const target = await startServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  const lab = await startLab();
  const body = paddedBody(`${target.url}/submit`);
  // Warm the relay up (first create compiles the hot path) so B's first sample is not a cold start.
  for (const tenant of [lab.a, lab.b]) await lab.api(tenant, 'POST', '/v1/tasks', { targetUrl: `${target.url}/warm` });

  const clients = Array.from({ length: slowCount }, () => slowClient(lab.origin, lab.a.key, body));
  log(`${slowCount} slow clients sending ${BODY_BYTES} bytes at 1 byte/s; tenant B creates every 500 ms for ${seconds} s`);
  await new Promise((resolve) => setTimeout(resolve, 1000));

  const latencies: number[] = [];
  let timedOut = 0;
  const errors: Record<string, number> = {};
  const until = performance.now() + seconds * 1000;
  const pending: Promise<void>[] = [];
  while (performance.now() < until) {
    pending.push(
      lab.api(lab.b, 'POST', '/v1/tasks', { targetUrl: `${target.url}/submit` }, B_TIMEOUT_MS).then(
        (answer) => {
          if (answer.status === 201) latencies.push(answer.ms);
          else errors[String(answer.status)] = (errors[String(answer.status)] ?? 0) + 1;
        },
        (err: Error) => {
          if (/timeout/i.test(err.message) || (err as { code?: string }).code?.includes('TIMEOUT')) timedOut++;
          else errors[err.message] = (errors[err.message] ?? 0) + 1;
        },
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  await Promise.all(pending);
  const ended = clients.filter((c) => c.endedAt !== undefined);
  const figures = {
    slowClients: slowCount,
    seconds,
    bCreates: percentiles(latencies),
    bTimedOut: timedOut,
    bErrors: errors,
    slowEnded: ended.length,
    slowEndedAfterMs: percentiles(ended.map((c) => c.endedAt! - c.startedAt)),
    slowAnswers: [...new Set(clients.map((c) => c.firstLine ?? '(none)'))],
    slowBytesSentMax: Math.max(...clients.map((c) => c.sent)),
  };
  for (const c of clients) c.socket.destroy();
  return figures;
});
