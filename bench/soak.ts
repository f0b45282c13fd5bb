/**
 * `npm run soak` — the relay's memory under a steady load (issue: RSS grew 261 → 386 MB over
 * 5 minutes at 60 creates/s). One relay as `npm start` runs it (role all) on a fresh database,
 * the bench's fake provider and receiver, and this process creating tasks at `--rate` a second
 * for `--minutes`. RSS is sampled every 10 s; the verdict compares the end with the RSS after
 * `--warmup-minutes` (the relay's caches, pools and JIT settle first). Prints one JSON line.
 *
 *   npm run soak -- --rate 60 --minutes 30 --warmup-minutes 3
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { log, onCleanup, runCleanups, sleep } from './children.ts';
import { openBenchServer } from './database.ts';
import { startFakes } from './phases.ts';
import { generateKeys, startRelay } from './relay.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '60' },
    minutes: { type: 'string', default: '30' },
    'warmup-minutes': { type: 'string', default: '3' },
    'delay-ms': { type: 'string', default: '200' },
  },
});
const rate = Number(values.rate);
const minutes = Number(values.minutes);
const warmupMinutes = Number(values['warmup-minutes']);

async function main(): Promise<Record<string, unknown>> {
  const keys = generateKeys();
  const server = await openBenchServer();
  onCleanup(server.close);
  const db = await server.createDatabase();
  const fakes = await startFakes(root, Number(values['delay-ms']), keys.webhookSecret);
  const relay = await startRelay(root, db.url, keys, 'all');
  const body = (n: number) =>
    JSON.stringify({
      targetUrl: `http://127.0.0.1:${fakes.providerPort}/submit`,
      body: { input: 'soak', webhook: '{asyncqueue_callback_url}', n },
      onCompleteUrl: `http://127.0.0.1:${fakes.receiverPort}/hook`,
      metadata: { n: String(n) },
    });

  let created = 0;
  let failed = 0;
  const create = async (n: number) => {
    try {
      const res = await request(`${relay.origin}/v1/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': keys.apiKey },
        body: body(n),
      });
      await res.body.text();
      if (res.statusCode === 201) created++;
      else failed++;
    } catch {
      failed++;
    }
  };

  const started = Date.now();
  const endAt = started + minutes * 60_000;
  const samples: Array<{ minute: number; rssMb: number; created: number }> = [];
  const sampler = setInterval(() => {
    samples.push({ minute: Math.round(((Date.now() - started) / 60_000) * 100) / 100, rssMb: relay.rssNowMb(), created });
    const last = samples.at(-1)!;
    if (samples.length % 6 === 0) log(`t=${last.minute} min: RSS ${last.rssMb} MB, ${created} created, ${failed} failed`);
  }, 10_000);
  // A steady rate: the n-th create is due at started + n / rate seconds, whatever the answers take.
  for (let n = 0; Date.now() < endAt; n++) {
    const due = started + (n * 1000) / rate;
    const wait = due - Date.now();
    if (wait > 0) await sleep(wait);
    void create(n);
  }
  clearInterval(sampler);
  // Let the last tasks finish before counting.
  for (let i = 0; i < 60 && (await fakes.count()).delivered < created; i++) await sleep(1000);
  const { delivered } = await fakes.count();
  const warm = samples.find((s) => s.minute >= warmupMinutes) ?? samples[0];
  const end = samples.at(-1)!;
  await relay.stop();
  return {
    rate,
    minutes,
    warmupMinutes,
    created,
    failed,
    delivered,
    lost: created - delivered,
    rssWarmMb: warm.rssMb,
    rssEndMb: end.rssMb,
    rssMaxMb: relay.rssMaxMb(),
    growthPct: Math.round(((end.rssMb - warm.rssMb) / warm.rssMb) * 1000) / 10,
    perMinute: samples.filter((_, i) => i % 6 === 5).map((s) => [s.minute, s.rssMb]),
    database: server.kind,
  };
}

let exitCode = 0;
try {
  process.stdout.write(`${JSON.stringify(await main())}\n`);
} catch (err) {
  log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  exitCode = 1;
} finally {
  await runCleanups();
}
process.exit(exitCode);
