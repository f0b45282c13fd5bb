/**
 * A Replicate-like fake provider: the submit answers at once with a prediction in
 * `starting`, and the result arrives later as a POST to the `webhook` URL that the
 * relay substituted into the body — unless the body says `"hold": true`: then it never
 * calls back (a generation longer than the run; the task stays waiting). Used by
 * bench/fakes.ts (the child process).
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';

/** Reads a request body (capped: the fakes only ever expect small JSON). */
export async function readBody(req: IncomingMessage, cap = 2 * 1024 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > cap) throw new Error('body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export interface ProviderDeps {
  delayMs: number;
  /** shared counters of the fakes process; the provider adds its own keys */
  counters: Record<string, number>;
  now: () => number;
  post: (url: string, body: string) => Promise<{ status: number; retryAfter: number }>;
}

/** Attempts per callback: a relay that is briefly overloaded (5xx, 429) gets a few more chances. */
const MAX_ATTEMPTS = 5;
const MAX_RETRY_AFTER_MS = 5_000;

export function startProvider(deps: ProviderDeps): {
  server: Server;
  submits: Map<number, number>;
  callbacks: Map<number, number>;
  /** how long the relay took to answer the accepted callback, in ms */
  callbackMs: Map<number, number>;
  /** forgets every task and zeroes the counters (between two phases) */
  reset: () => void;
} {
  const { counters, now } = deps;
  const submits = new Map<number, number>();
  const callbacks = new Map<number, number>();
  const callbackMs = new Map<number, number>();
  const reset = () => {
    Object.assign(counters, { badSubmits: 0, duplicateSubmits: 0, callbackRetries: 0, callbacksGivenUp: 0 });
    submits.clear();
    callbacks.clear();
    callbackMs.clear();
  };
  reset();

  async function callBack(n: number, url: string): Promise<void> {
    const body = JSON.stringify({ id: `pred_${n}`, status: 'succeeded', output: ['https://example.invalid/out.png'] });
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const sentAt = now();
      let waitMs = 250 * 2 ** (attempt - 1);
      try {
        const { status, retryAfter } = await deps.post(url, body);
        if (status >= 200 && status < 300) {
          callbacks.set(n, sentAt);
          callbackMs.set(n, now() - sentAt);
          return;
        }
        counters[`callbackStatus${status}`] = (counters[`callbackStatus${status}`] ?? 0) + 1;
        if (status === 429 && retryAfter > 0) waitMs = Math.min(retryAfter * 1000, MAX_RETRY_AFTER_MS);
      } catch {
        counters.callbackNetworkErrors = (counters.callbackNetworkErrors ?? 0) + 1;
      }
      if (attempt === MAX_ATTEMPTS) break;
      counters.callbackRetries++;
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
    counters.callbacksGivenUp++;
  }

  const server = createServer((req, res) => {
    const at = now();
    if (req.method !== 'POST' || req.url !== '/submit') return void res.writeHead(404).end();
    readBody(req)
      .then((raw) => {
        const body = JSON.parse(raw) as { n?: unknown; webhook?: unknown; hold?: unknown };
        const n = Number(body.n);
        const url = typeof body.webhook === 'string' ? body.webhook : '';
        if (!Number.isInteger(n) || !/^https?:\/\//.test(url)) throw new Error('no n or webhook');
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ id: `pred_${n}`, status: 'starting' }));
        // A retried dispatch reaches the same prediction: one callback per task.
        if (submits.has(n)) {
          counters.duplicateSubmits++;
          return;
        }
        submits.set(n, at);
        if (body.hold !== true) setTimeout(() => void callBack(n, url), deps.delayMs);
      })
      .catch(() => {
        counters.badSubmits++;
        if (!res.headersSent) res.writeHead(400).end();
      });
  });
  return { server, submits, callbacks, callbackMs, reset };
}
