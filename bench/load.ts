/**
 * The closed-loop load generator: `concurrency` workers share one keep-alive undici
 * Pool and each sends its next create as soon as the previous one is answered, so
 * exactly `concurrency` requests are in flight until the count runs out.
 */
import { Pool } from 'undici';
import { now } from './children.ts';
import type { CreateSample } from './stats.ts';

export interface LoaderOptions {
  origin: string;
  concurrency: number;
  headers: Record<string, string>;
  /** the JSON body of create number n */
  body: (n: number) => string;
  /** per-request limit on headers and body, so no single request hangs the phase */
  requestTimeoutMs?: number;
}

export interface PhaseResult {
  samples: CreateSample[];
  startedAt: number;
  finishedAt: number;
  /** creates never sent because the phase deadline passed */
  notSent: number;
}

export function createLoader(opts: LoaderOptions) {
  const timeout = opts.requestTimeoutMs ?? 30_000;
  const pool = new Pool(opts.origin, {
    connections: opts.concurrency,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    headersTimeout: timeout,
    bodyTimeout: timeout,
  });

  async function createOne(n: number): Promise<CreateSample> {
    const startedAt = now();
    try {
      const res = await pool.request({
        path: '/v1/tasks',
        method: 'POST',
        headers: { 'content-type': 'application/json', ...opts.headers },
        body: opts.body(n),
      });
      const text = await res.body.text();
      const finishedAt = now();
      let taskId: string | null = null;
      if (res.statusCode === 201) {
        const json = JSON.parse(text) as { task?: { id?: string }; id?: string };
        // The relay answers { task: { id } }, the floor { id }.
        taskId = json.task?.id ?? json.id ?? null;
      }
      const error = res.statusCode === 201 ? undefined : `${res.statusCode} ${text.slice(0, 200)}`;
      return { n, startedAt, finishedAt, status: res.statusCode, taskId, error };
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      return { n, startedAt, finishedAt: now(), status: 0, taskId: null, error };
    }
  }

  /**
   * Sends creates n = firstN … firstN+count-1 and stops early (counting the rest
   * as not sent) once `deadlineMs` has passed, so the phase is bounded in time too.
   */
  async function run(count: number, firstN: number, deadlineMs: number): Promise<PhaseResult> {
    const samples: CreateSample[] = [];
    let next = 0;
    const startedAt = now();
    const deadline = startedAt + deadlineMs;
    const worker = async () => {
      while (next < count && now() < deadline) {
        const n = firstN + next++;
        samples.push(await createOne(n));
      }
    };
    await Promise.all(Array.from({ length: Math.min(opts.concurrency, count) }, worker));
    return { samples, startedAt, finishedAt: now(), notSent: count - next };
  }

  return { run, close: () => pool.close() };
}

/** The first distinct create errors, for the progress log (never for the figures). */
export function errorSummary(samples: readonly CreateSample[], max = 3): string {
  const distinct = new Set<string>();
  for (const s of samples) if (s.error && distinct.size < max) distinct.add(s.error);
  return [...distinct].join(' | ');
}
