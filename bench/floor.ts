/**
 * The floor: the least a task-creating HTTP service can do on this stack — a bare
 * hono app whose `POST /v1/tasks` parses the JSON body and does one
 * `INSERT … RETURNING id` with postgres.js. The relay's createRps is compared to it.
 *
 * Runs as a child process (forked by bench/run.ts, IPC connected):
 *   env BENCH_DATABASE_URL  the bench database
 *   → sends { type: 'ready', port } once listening on 127.0.0.1:<ephemeral>
 */
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import postgres from 'postgres';

/** What the floor child reports when it listens. */
export interface FloorReady {
  type: 'ready';
  port: number;
}

const url = process.env.BENCH_DATABASE_URL;
if (!url) throw new Error('floor: BENCH_DATABASE_URL is not set');

// A pool of 10, the size a small service would pick; the relay's own pool is its business.
const sql = postgres(url, { max: 10, onnotice: () => {} });

await sql`
  create table if not exists bench_floor_tasks (
    id uuid primary key default gen_random_uuid(),
    body jsonb not null,
    created_at timestamptz not null default now()
  )`;

const app = new Hono();
app.post('/v1/tasks', async (c) => {
  const body = await c.req.json();
  const [row] = await sql<{ id: string }[]>`
    insert into bench_floor_tasks (body) values (${sql.json(body)}) returning id`;
  return c.json({ id: row.id }, 201);
});

const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => {
  process.send?.({ type: 'ready', port: info.port } satisfies FloorReady);
});

async function shutdown(): Promise<void> {
  server.close();
  await sql.end({ timeout: 5 });
  process.exit(0);
}
process.once('SIGTERM', () => void shutdown());
// The parent died or let go of us: nothing left to serve.
process.once('disconnect', () => void shutdown());
