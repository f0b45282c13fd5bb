/**
 * `npm test`: prepares PostgreSQL (DATABASE_URL's server, or an embedded one when unset), builds
 * a migrated template database with pg-boss installed, then runs every test file with node:test.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PgBoss } from 'pg-boss';
import postgres from 'postgres';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { migrateDatabase } from '../src/db/migrate.ts';
import { createQueues } from '../src/jobs/job-sql.ts';
import { urlForDatabase } from './helpers/database.ts';

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
    env: { ...process.env, TEST_ADMIN_URL: adminUrl, TEST_TEMPLATE_DB: template },
  });
  code = await new Promise<number>((resolve) => child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0))));
} finally {
  await admin.unsafe(`drop database if exists "${template}" with (force)`).catch(() => {});
  await admin.end();
  await embedded?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}
process.exit(code);
