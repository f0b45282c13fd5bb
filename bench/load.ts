/**
 * The closed-loop load generator, time-based: `clients` connections, each sending its next
 * create as soon as the previous one is answered, for a number of seconds. Two implementations
 * with the same settings and the same bodies:
 *
 * - `wrk` (when installed; what the peer's measure script uses, `wrk -t1 -c32`): a C client
 *   whose Lua script numbers the bodies. It costs the cores it shares with the server under test
 *   a fraction of what a Node client does, and a client's CPU comes out of the server's share:
 *   more so for the floor, whose requests are cheaper, so a heavy client flatters the ratio.
 * - `undici`, in this process: the fallback when wrk is missing.
 *
 * Either way the loader's own CPU over the phase is measured and reported: a figure taken with
 * the loader saturated is not a figure (DESIGN §14).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { now } from './children.ts';
import { pctOfCore } from './cpu.ts';
import { percentile, round } from './stats.ts';

export type LoaderKind = 'wrk' | 'undici';

export interface LoadSpec {
  /** `http://127.0.0.1:<port>`; every request is `POST /v1/tasks` */
  origin: string;
  clients: number;
  headers: Record<string, string>;
  /** The JSON body with `{{n}}` where the request's number goes (a number and a metadata string). */
  bodyTemplate: string;
}

/** One run of the loader, as it saw it. */
export interface LoadResult {
  loader: LoaderKind;
  /** the measured window on the bench's clock (see children.ts `now`) */
  startedAt: number;
  finishedAt: number;
  seconds: number;
  requests: number;
  /** answered 201 */
  ok: number;
  /** answered something else, or never answered */
  errors: number;
  okRps: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  /** the loader's own CPU over the run, in percent of one core */
  loaderCpuPct: number;
  /** a few distinct errors, for the progress log */
  errorSample: string;
}

export const N_PLACEHOLDER = '{{n}}';

// wrk runs under a shell in a process group of its own: an exit of the bench (an error, a
// signal) takes the whole group, not only the shell.
const running = new Set<number>();
process.on('exit', () => {
  for (const group of running) {
    try {
      process.kill(-group, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

export function wrkInstalled(): boolean {
  return spawnSync('wrk', ['--version'], { stdio: 'ignore' }).error === undefined;
}

export function createLoader(kind: LoaderKind, spec: LoadSpec) {
  const parts = spec.bodyTemplate.split(N_PLACEHOLDER);
  if (parts.length < 2) throw new Error(`the body template has no ${N_PLACEHOLDER}`);
  return kind === 'wrk' ? wrkLoader(spec, parts) : undiciLoader(spec, parts);
}

export type Loader = ReturnType<typeof createLoader>;

function undiciLoader(spec: LoadSpec, parts: string[]) {
  const timeout = 30_000;
  const pool = new Pool(spec.origin, {
    connections: spec.clients,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    headersTimeout: timeout,
    bodyTimeout: timeout,
  });
  const headers = { 'content-type': 'application/json', ...spec.headers };

  /** Sends creates numbered from `firstN` for `seconds`; requests in flight at the end are awaited. */
  async function run(seconds: number, firstN: number): Promise<LoadResult> {
    const latencies: number[] = [];
    const errorSample = new Set<string>();
    let next = firstN;
    let ok = 0;
    let errors = 0;
    const cpu0 = process.cpuUsage();
    const startedAt = now();
    const deadline = startedAt + seconds * 1000;
    const client = async () => {
      while (now() < deadline) {
        const body = parts.join(String(next++));
        const sentAt = now();
        try {
          const res = await pool.request({ path: '/v1/tasks', method: 'POST', headers, body });
          const text = await res.body.text();
          latencies.push(now() - sentAt);
          if (res.statusCode === 201) ok++;
          else {
            errors++;
            if (errorSample.size < 3) errorSample.add(`${res.statusCode} ${text.slice(0, 200)}`);
          }
        } catch (err) {
          errors++;
          if (errorSample.size < 3) errorSample.add(err instanceof Error ? err.message : String(err));
        }
      }
    };
    await Promise.all(Array.from({ length: spec.clients }, client));
    const finishedAt = now();
    const cpu = process.cpuUsage(cpu0);
    const wall = finishedAt - startedAt;
    return {
      loader: 'undici',
      startedAt,
      finishedAt,
      seconds: round(wall / 1000, 3) ?? 0,
      requests: ok + errors,
      ok,
      errors,
      okRps: round(ok / (wall / 1000), 1),
      p50Ms: round(percentile(latencies, 50)),
      p99Ms: round(percentile(latencies, 99)),
      maxMs: round(percentile(latencies, 100)),
      loaderCpuPct: pctOfCore((cpu.user + cpu.system) / 1000, wall),
      errorSample: [...errorSample].join(' | '),
    };
  }

  return { kind: 'undici' as const, run, close: () => pool.close() };
}

/** What the Lua script's `done` prints, on one line after `WRKJSON `. */
interface WrkSummary {
  durationUs: number;
  requests: number;
  status: number;
  connect: number;
  read: number;
  write: number;
  timeout: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
}

/** Lua long strings take the JSON as it is, unless it holds the closing bracket itself. */
function luaString(text: string): string {
  if (text.includes(']==]')) throw new Error('the body cannot be written as a Lua long string');
  return `[==[${text}]==]`;
}

function wrkScript(spec: LoadSpec, parts: string[]): string {
  const headers = Object.entries({ 'content-type': 'application/json', ...spec.headers })
    .map(([k, v]) => `wrk.headers[ ${luaString(k)} ] = ${luaString(v)}`)
    .join('\n');
  return `-- written by the bench (bench/load.ts); argument: the first request's n
local parts = { ${parts.map(luaString).join(', ')} }
local n = 0
function init(args) n = tonumber(args[1]) end
wrk.method = "POST"
${headers}
function request()
  local body = table.concat(parts, string.format("%d", n))
  n = n + 1
  return wrk.format(nil, nil, nil, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"durationUs":%d,"requests":%d,"status":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"p50Us":%d,"p99Us":%d,"maxUs":%d}\\n',
    summary.duration, summary.requests, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
`;
}

function wrkLoader(spec: LoadSpec, parts: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'relay-bench-wrk-'));
  const script = join(dir, 'create.lua');
  writeFileSync(script, wrkScript(spec, parts));

  async function run(seconds: number, firstN: number): Promise<LoadResult> {
    // The shell's `times` prints its children's CPU (wrk's, exactly) once wrk has exited.
    const args = ['-t1', `-c${spec.clients}`, `-d${seconds}s`, '--timeout', '30s', '-s', script, `${spec.origin}/v1/tasks`, '--', String(firstN)];
    const spawnedAt = now();
    const child = spawn('sh', ['-c', 'wrk "$@"; s=$?; times; exit $s', 'sh', ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    if (child.pid) running.add(child.pid);
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', resolve);
    }).finally(() => child.pid && running.delete(child.pid));
    const exitedAt = now();
    const line = out.split('\n').find((l) => l.startsWith('WRKJSON '));
    if (code !== 0 || !line) throw new Error(`wrk failed (exit ${code}): ${err.trim() || out.trim()}`);
    const s = JSON.parse(line.slice('WRKJSON '.length)) as WrkSummary;
    // `times` prints the shell's own CPU, then its children's: the last line of its two.
    const afterWrk = out.slice(out.indexOf(line) + line.length);
    const children = [...afterWrk.matchAll(/(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s/g)].at(-1);
    const cpuMs = children ? (Number(children[1]) * 60 + Number(children[2]) + Number(children[3]) * 60 + Number(children[4])) * 1000 : 0;
    const ok = s.requests - s.status;
    const socketErrors = s.connect + s.read + s.write + s.timeout;
    const errorSample = [
      s.status ? `${s.status} answers ≥ 400` : '',
      socketErrors ? `socket errors: connect ${s.connect}, read ${s.read}, write ${s.write}, timeout ${s.timeout}` : '',
    ].filter(Boolean);
    const measured = s.durationUs / 1000;
    return {
      loader: 'wrk',
      // wrk's own clock runs from its first request to its last; it exits right after.
      startedAt: exitedAt - measured,
      finishedAt: exitedAt,
      seconds: round(measured / 1000, 3) ?? 0,
      requests: s.requests,
      ok,
      errors: s.status + socketErrors,
      okRps: round(ok / (measured / 1000), 1),
      p50Ms: round(s.p50Us / 1000),
      p99Ms: round(s.p99Us / 1000),
      maxMs: round(s.maxUs / 1000),
      loaderCpuPct: pctOfCore(cpuMs, exitedAt - spawnedAt),
      errorSample: errorSample.join(' | '),
    };
  }

  return { kind: 'wrk' as const, run, close: async () => rmSync(dir, { recursive: true, force: true }) };
}
