/**
 * Where a phase's CPU went, read from /proc: the load generator, the server under test, the
 * PostgreSQL sessions of its database, the fakes and the whole machine. On a small machine all
 * of them share the same cores, so a figure means little without knowing who was busy: a
 * saturated load generator measures itself (DESIGN §14), and the server's share against the
 * database's says where a slower server loses its time.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type postgres from 'postgres';

const ticksPerSecond = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** User + system CPU of one process, in ms; null once it is gone (or on a system without /proc). */
export function processCpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond;
  } catch {
    return null;
  }
}

/** CPU of a process and its descendants, in ms (what has exited is no longer counted). */
export function treeCpuMs(pid: number): number {
  let total = processCpuMs(pid) ?? 0;
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    for (const child of children ? children.split(/\s+/) : []) total += treeCpuMs(Number(child));
  } catch {
    // exited between two reads
  }
  return total;
}

/** Busy (non-idle, non-iowait) CPU of the whole machine, all cores together, in ms. */
export function machineBusyMs(): number | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
    return ((user + nice + system + irq + softirq + steal) * 1000) / ticksPerSecond;
  } catch {
    return null;
  }
}

/** Percent of one core over `ms` of wall time (a busy 2-core machine reads 200). */
export function pctOfCore(cpuMs: number, ms: number): number {
  return ms > 0 ? Math.round((cpuMs / ms) * 1000) / 10 : 0;
}

/**
 * CPU of the PostgreSQL backends serving one database, in ms, per backend pid. Only meaningful
 * when the server runs on this machine (its pids are ours to read); otherwise empty.
 */
export async function databaseBackendsCpu(admin: postgres.Sql, database: string): Promise<Map<number, number>> {
  const rows = await admin<{ pid: number }[]>`select pid from pg_stat_activity where datname = ${database}`;
  const cpu = new Map<number, number>();
  for (const { pid } of rows) {
    const ms = processCpuMs(pid);
    if (ms !== null) cpu.set(pid, ms);
  }
  return cpu;
}

/** What a phase's CPU meter reads: the server's process, the fakes' own count, the database's sessions. */
export interface CpuProbes {
  serverPid?: number;
  /** CPU of the fakes child so far, in ms (it reports its own, over IPC) */
  fakesCpuMs?: () => Promise<number>;
  admin?: postgres.Sql;
  database?: string;
}

/**
 * A CPU meter over one phase: `start()` reads every counter, `stop()` answers each one's share of
 * a core over the phase (null where it could not be read). Sessions of the database that opened
 * during the phase count whole; those that closed during it are missed (the relay's and the
 * floor's pools keep theirs open).
 */
export function cpuMeter(probes: CpuProbes) {
  let t0 = 0;
  let server0 = 0;
  let fakes0 = 0;
  let machine0: number | null = null;
  let db0 = new Map<number, number>();
  const dbCpu = () => (probes.admin && probes.database ? databaseBackendsCpu(probes.admin, probes.database) : Promise.resolve(new Map<number, number>()));
  return {
    async start(): Promise<void> {
      db0 = await dbCpu();
      fakes0 = probes.fakesCpuMs ? await probes.fakesCpuMs() : 0;
      t0 = performance.now();
      server0 = probes.serverPid ? treeCpuMs(probes.serverPid) : 0;
      machine0 = machineBusyMs();
    },
    /** Percent of one core each used since `start()` (the machine's can reach 100 × cores). */
    async stop() {
      const ms = performance.now() - t0;
      const server = probes.serverPid ? treeCpuMs(probes.serverPid) - server0 : null;
      const machine = machineBusyMs();
      const fakes = probes.fakesCpuMs ? (await probes.fakesCpuMs()) - fakes0 : null;
      const db1 = await dbCpu();
      let db = 0;
      for (const [pid, cpu] of db1) db += cpu - (db0.get(pid) ?? 0);
      return {
        serverCpuPct: server === null ? null : pctOfCore(server, ms),
        databaseCpuPct: db1.size > 0 ? pctOfCore(db, ms) : null,
        fakesCpuPct: fakes === null ? null : pctOfCore(fakes, ms),
        machineCpuPct: machine === null || machine0 === null ? null : pctOfCore(machine - machine0, ms),
      };
    },
  };
}

export type CpuShares = Awaited<ReturnType<ReturnType<typeof cpuMeter>['stop']>>;
