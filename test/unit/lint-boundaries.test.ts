/**
 * The import boundaries and the cycle check in .oxlintrc.json fire: oxlint runs with the
 * repository's config on small trees written to a temporary directory, never on the real src/,
 * so these tests hold whatever state src/ is in.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const CONFIG = fileURLToPath(new URL('../../.oxlintrc.json', import.meta.url));
const OXLINT = fileURLToPath(new URL('../../node_modules/oxlint/bin/oxlint', import.meta.url));

/** Imports every boundary allows: none of these files may be reported. */
const ALLOWED: Record<string, string> = {
  'src/http/w.ts': "import { Hono } from 'hono';\nexport type W = Hono;\n",
  'src/http/routes/r.ts': "import type { W } from '../w.ts';\nimport { HTTPException } from 'hono/http-exception';\nexport const r = (w: W) => [w, HTTPException];\n",
  'src/app.ts': "import { OpenAPIHono } from '@hono/zod-openapi';\nimport type { W } from './http/w.ts';\nexport const app = (w: W) => [w, OpenAPIHono];\n",
  'src/main.ts':
    "import { serve } from '@hono/node-server';\nimport { PgBoss } from 'pg-boss';\nimport postgres from 'postgres';\nimport { app } from './app.ts';\nimport { queues } from './jobs/queues.ts';\nexport const main = [serve, PgBoss, postgres, app, queues];\n",
  'src/jobs/queues.ts': "import type { PgBoss } from 'pg-boss';\nexport const queues = (boss: PgBoss) => boss;\n",
  'src/jobs/worker.ts': "import { PgBoss } from 'pg-boss';\nimport { findRow } from '../db/sql/rows.ts';\nexport const worker = [PgBoss, findRow];\n",
  // The database layer is where drizzle-orm is imported; the domain calls its named functions.
  'src/db/sql/rows.ts':
    "import { eq, sql } from 'drizzle-orm';\nimport { pgTable } from 'drizzle-orm/pg-core';\nimport type postgres from 'postgres';\nexport const findRow = (p: postgres.Sql) => [eq, sql, pgTable, p];\n",
  'src/db/client.ts': "import { drizzle } from 'drizzle-orm/postgres-js';\nexport const client = drizzle;\n",
  'src/tasks/ok.ts': "import type postgres from 'postgres';\nimport { findRow } from '../db/sql/rows.ts';\nimport { queues } from '../jobs/queues.ts';\nexport const ok = (p: postgres.Sql) => [findRow(p), queues];\n",
  // Tests, benches and scripts get the general rules only, not the src/ boundaries.
  'test/t.test.ts': "import { Hono } from 'hono';\nimport { PgBoss } from 'pg-boss';\nimport { eq } from 'drizzle-orm';\nimport { app } from '../src/app.ts';\nexport const t = [Hono, PgBoss, eq, app];\n",
};

/** The folders that reach the database through src/db/sql only, never through drizzle-orm itself. */
const DRIZZLE_FREE = ['tasks', 'callbacks', 'delivery', 'providers', 'projects', 'jobs', 'outbound', 'secrets', 'limits', 'writers'];

/** Each file breaks one boundary, or closes a cycle. */
const VIOLATING: Record<string, string> = {
  'src/http/x.ts':
    "import { eq } from 'drizzle-orm';\nimport { pgTable } from 'drizzle-orm/pg-core';\nimport type postgres from 'postgres';\nexport const x = (p: postgres.Sql) => [eq, pgTable, p];\n",
  'src/tasks/y.ts': "import { Hono } from 'hono';\nimport type { Context } from '@hono/zod-openapi';\nexport const y = (c: Context) => [Hono, c];\n",
  'src/tasks/z.ts': "import type { W } from '../http/w.ts';\nimport { app } from '../app.ts';\nexport const z = (w: W) => [w, app];\n",
  'src/db/q.ts': "import type { PgBoss } from 'pg-boss';\nexport const q = (boss: PgBoss) => boss;\n",
  'src/jobs/handler.ts': "import { PgBoss } from 'pg-boss';\nexport const handler = PgBoss;\n",
  'src/cli.ts': "import { Hono } from 'hono';\nexport const cli = Hono;\n",
  // a → b by value, b → a by type only: still a cycle.
  'src/delivery/a.ts': "import { b } from './b.ts';\nexport type A = { n: number };\nexport const a = () => b;\n",
  'src/delivery/b.ts': "import type { A } from './a.ts';\nexport const b = (x: A) => x.n;\n",
  // Queries have one home, src/db/**: every domain folder is refused drizzle-orm, subpaths too, and
  // the modules that own pg-boss repeat the pattern (the last matching override wins).
  ...Object.fromEntries(DRIZZLE_FREE.map((dir) => [`src/${dir}/orm.ts`, "import { eq } from 'drizzle-orm';\nexport const orm = eq;\n"])),
  'src/tasks/orm-core.ts': "import { pgTable } from 'drizzle-orm/pg-core';\nexport const ormCore = pgTable;\n",
  'src/jobs/job-sql.ts': "import { PgBoss } from 'pg-boss';\nimport { sql } from 'drizzle-orm';\nexport const jobSql = [PgBoss, sql];\n",
};

const roots: string[] = [];
after(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

/** A fresh directory holding `files` and a copy of the repository's config at its root. */
function writeTree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'asyncrelay-lint-'));
  roots.push(root);
  copyFileSync(CONFIG, join(root, '.oxlintrc.json'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

interface Finding {
  file: string;
  rule: string;
  /** The import named by a restricted-import message; empty for other rules. */
  source: string;
}

function lint(root: string): { status: number | null; findings: Finding[]; output: string } {
  const run = spawnSync(process.execPath, [OXLINT, '-c', '.oxlintrc.json', '-f', 'json', 'src', 'test'], {
    cwd: root,
    encoding: 'utf8',
    timeout: 20_000,
  });
  assert.equal(run.error, undefined, `oxlint did not run: ${run.error}`);
  const report = JSON.parse(run.stdout) as { diagnostics: { filename: string; code: string; message: string }[] };
  const findings = report.diagnostics.map((d) => ({
    file: d.filename,
    rule: d.code,
    source: /^'([^']+)' import is restricted/.exec(d.message)?.[1] ?? '',
  }));
  return { status: run.status, findings, output: run.stdout + run.stderr };
}

const byKey = (a: Finding, b: Finding) => `${a.file} ${a.rule} ${a.source}`.localeCompare(`${b.file} ${b.rule} ${b.source}`);

describe('lint boundaries (.oxlintrc.json)', () => {
  test('a tree with only allowed imports passes with no finding', () => {
    const { status, findings, output } = lint(writeTree(ALLOWED));
    assert.deepEqual(findings, [], output);
    assert.equal(status, 0, output);
  });

  test('every boundary break and the type-only cycle are reported, and nothing else', () => {
    const { status, findings, output } = lint(writeTree({ ...ALLOWED, ...VIOLATING }));
    assert.equal(status, 1, output);
    const restricted = 'eslint(no-restricted-imports)';
    const cycle = 'import(no-cycle)';
    const expected: Finding[] = [
      { file: 'src/http/x.ts', rule: restricted, source: 'drizzle-orm' },
      { file: 'src/http/x.ts', rule: restricted, source: 'drizzle-orm/pg-core' },
      { file: 'src/http/x.ts', rule: restricted, source: 'postgres' },
      { file: 'src/tasks/y.ts', rule: restricted, source: 'hono' },
      { file: 'src/tasks/y.ts', rule: restricted, source: '@hono/zod-openapi' },
      { file: 'src/tasks/z.ts', rule: restricted, source: '../http/w.ts' },
      { file: 'src/tasks/z.ts', rule: restricted, source: '../app.ts' },
      { file: 'src/db/q.ts', rule: restricted, source: 'pg-boss' },
      { file: 'src/jobs/handler.ts', rule: restricted, source: 'pg-boss' },
      { file: 'src/cli.ts', rule: restricted, source: 'hono' },
      { file: 'src/delivery/a.ts', rule: cycle, source: '' },
      { file: 'src/delivery/b.ts', rule: cycle, source: '' },
      ...DRIZZLE_FREE.map((dir) => ({ file: `src/${dir}/orm.ts`, rule: restricted, source: 'drizzle-orm' })),
      { file: 'src/tasks/orm-core.ts', rule: restricted, source: 'drizzle-orm/pg-core' },
      { file: 'src/jobs/job-sql.ts', rule: restricted, source: 'drizzle-orm' },
    ];
    assert.deepEqual(findings.toSorted(byKey), expected.toSorted(byKey), output);
  });

  test('the human-readable report names the file, the import and why it is refused', () => {
    const root = writeTree({ 'src/http/x.ts': VIOLATING['src/http/x.ts'] });
    const run = spawnSync(process.execPath, [OXLINT, '-c', '.oxlintrc.json', 'src'], { cwd: root, encoding: 'utf8', timeout: 20_000 });
    assert.equal(run.status, 1, run.stdout + run.stderr);
    assert.match(run.stdout, /src\/http\/x\.ts/);
    assert.match(run.stdout, /'drizzle-orm' import is restricted/);
    assert.match(run.stdout, /src\/http\/\*\* talks to the domain, not the database/);
  });

  test('a domain file that imports drizzle-orm is told where its query belongs', () => {
    const root = writeTree({ 'src/tasks/orm.ts': VIOLATING['src/tasks/orm.ts'] });
    const run = spawnSync(process.execPath, [OXLINT, '-c', '.oxlintrc.json', 'src'], { cwd: root, encoding: 'utf8', timeout: 20_000 });
    assert.equal(run.status, 1, run.stdout + run.stderr);
    assert.match(run.stdout, /src\/tasks\/orm\.ts/);
    assert.match(run.stdout, /'drizzle-orm' import is restricted/);
    assert.match(run.stdout, /src\/db\/sql\/<table>\.ts/);
  });
});
