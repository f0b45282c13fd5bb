/**
 * `npm test`: prepares PostgreSQL (DATABASE_URL's server, or an embedded one when unset), builds
 * a migrated template database with pg-boss installed, then runs every test file with node:test.
 * The databases of a file with a failing test are kept (test/helpers/database.ts) and listed at
 * the end; so is the embedded server's data dir, with the command that starts it again.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PgBoss } from 'pg-boss';
import postgres from 'postgres';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { migrateDatabase } from '../src/db/migrate.ts';
import { createQueues } from '../src/jobs/job-sql.ts';
import { urlForDatabase, withoutPassword } from './helpers/postgres-url.ts';

const files = process.argv.slice(2);
let embedded: { url: string; stop(): Promise<void> } | undefined;
let dataDir: string | undefined;
let adminUrl = process.env.DATABASE_URL;
if (!adminUrl) {
  dataDir = mkdtempSync(join(tmpdir(), 'asyncrelay-test-pg-'));
  process.stderr.write('DATABASE_URL unset: starting an embedded PostgreSQL for the tests\n');
  embedded = await startEmbeddedPostgres({ dataDir, log: () => {} });
  adminUrl = embedded.url;
}

const template = `relay_tpl_${randomBytes(4).toString('hex')}`;
const keptDir = mkdtempSync(join(tmpdir(), 'asyncrelay-test-kept-'));
const keptList = join(keptDir, 'databases');
const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
let code = 1;
try {
  await admin.unsafe(`create database "${template}"`);
  const templateUrl = urlForDatabase(adminUrl, template);
  await migrateDatabase(templateUrl);
  const boss = new PgBoss({ connectionString: templateUrl, supervise: false, schedule: false });
  await boss.start();
  await createQueues(boss);
  await boss.stop({ graceful: false });

  const args = [
    '--test',
    `--test-concurrency=${process.env.TEST_CONCURRENCY ?? '2'}`,
    '--test-timeout=120000',
    ...(files.length ? files : ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts']),
  ];
  const child = spawn(process.execPath, args, {
    stdio: 'inherit',
    env: { ...process.env, TEST_ADMIN_URL: adminUrl, TEST_TEMPLATE_DB: template, TEST_KEPT_LIST: keptList },
  });
  code = await new Promise<number>((resolve) => child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0))));
} finally {
  await admin.unsafe(`drop database if exists "${template}" with (force)`).catch(() => {});
  await admin.end();
  await embedded?.stop();
  reportKept(adminUrl, code);
}
process.exit(code);

/** Lists what the failing files kept; removes the embedded server's data dir unless something failed. */
function reportKept(adminUrl: string, code: number): void {
  let kept: string[] = [];
  try {
    kept = readFileSync(keptList, 'utf8').split('\n').filter(Boolean);
  } catch {
    // no file kept anything
  }
  rmSync(keptDir, { recursive: true, force: true });
  const say = (line: string) => process.stderr.write(`${line}\n`);
  if (kept.length > 0) {
    say(`\n${kept.length} test database(s) kept by the files that failed:`);
    for (const line of kept) say(`  ${line}`);
  }
  if (!dataDir) {
    if (kept.length > 0) say(`drop one when done: psql ${withoutPassword(adminUrl)} -c 'drop database "<name>"'`);
    return;
  }
  if (code === 0) {
    rmSync(dataDir, { recursive: true, force: true });
    return;
  }
  say(`the embedded PostgreSQL's data dir is kept for inspection: ${dataDir}`);
  say(`  start it again (on a new port; it prints the URLs): ${process.execPath} test/start-kept-cluster.ts ${dataDir}`);
  say(`  remove it when done: rm -rf ${dataDir}`);
}
