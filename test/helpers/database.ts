import { randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import postgres from 'postgres';
import { urlForDatabase, withoutPassword } from './postgres-url.ts';

export { urlForDatabase };

/**
 * Test databases are cloned from a migrated template (with pg-boss installed) that test/run.ts
 * prepares once, so each test file gets a fresh, fully migrated database in well under a second.
 *
 * They are dropped when the test file's process ends, unless something in that file failed: then
 * every database the file made is kept, and named on stderr with a URL without the password, so
 * the state that failed can be inspected. Each file runs in its own process: "the process" is
 * "the file".
 */
export function testEnv(): { adminUrl: string; template: string } {
  const adminUrl = process.env.TEST_ADMIN_URL;
  const template = process.env.TEST_TEMPLATE_DB;
  if (!adminUrl || !template) throw new Error('run tests with `npm test` (test/run.ts prepares the database)');
  return { adminUrl, template };
}

export interface TestDatabase {
  name: string;
  url: string;
  /**
   * Nothing happens yet: the database is dropped when the file ends, unless something in it
   * failed. A test's cleanup (a `finally`, an `after`) runs before node:test has marked it
   * failed, so the decision cannot be made here.
   */
  drop(): Promise<void>;
}

const made: TestDatabase[] = [];

let settled = false;
process.on('beforeExit', () => {
  if (settled || made.length === 0) return;
  settled = true;
  // node:test reports the file in its own beforeExit handler and sets process.exitCode when
  // anything failed: a test, a suite's hook, an error thrown after its test ended (a failing
  // `todo` test does not count). One turn later that verdict is in.
  setImmediate(() => void settle());
});

async function settle(): Promise<void> {
  if (Number(process.exitCode ?? 0) !== 0) {
    for (const database of made) {
      process.stderr.write(`${keptLine(database)}\n`);
      // test/run.ts lists every kept database once more at the end of the run.
      if (process.env.TEST_KEPT_LIST) appendFileSync(process.env.TEST_KEPT_LIST, `${keptLine(database)}\n`);
    }
    return;
  }
  const admin = postgres(testEnv().adminUrl, { max: 1, onnotice: () => {} });
  try {
    for (const { name } of made) await admin.unsafe(`drop database if exists "${name}" with (force)`);
  } catch (err) {
    process.stderr.write(`could not drop the test databases ${made.map((d) => d.name).join(', ')}: ${(err as Error).message}\n`);
  } finally {
    await admin.end();
  }
}

const keptLine = (database: TestDatabase) => `kept database ${database.name} for inspection: ${withoutPassword(database.url)}`;

export async function createTestDatabase(label = 'test'): Promise<TestDatabase> {
  const { adminUrl, template } = testEnv();
  const name = `t_${label.replace(/\W/g, '_').slice(0, 30)}_${randomBytes(4).toString('hex')}`.toLowerCase();
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${name}" template "${template}"`);
  } finally {
    await admin.end();
  }
  const database: TestDatabase = { name, url: urlForDatabase(adminUrl, name), drop: async () => {} };
  made.push(database);
  return database;
}
