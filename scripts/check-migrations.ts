/**
 * CI guard: the committed migrations must match drizzle/ (STYLE habit 10). Runs
 * `drizzle-kit generate` into a scratch copy of migrations/ and fails unless it reports no change.
 * (drizzle-kit exits 0 even on errors, so its output is what is checked.)
 */
import { execFileSync } from 'node:child_process';
import { cpSync, rmSync } from 'node:fs';

// drizzle-kit resolves --out relative to the working directory only, so the scratch copy lives here.
const scratch = '.migrations-check';
rmSync(scratch, { recursive: true, force: true });
try {
  cpSync('migrations', scratch, { recursive: true });
  const output = execFileSync(
    'node_modules/.bin/drizzle-kit',
    ['generate', '--dialect=postgresql', '--schema=./drizzle/schema.ts', `--out=./${scratch}`],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
  if (!/No schema changes/i.test(output)) {
    process.stderr.write(`${output}\ndrizzle/ and migrations/ differ: run \`npm run db:generate\` and commit migrations/\n`);
    process.exit(1);
  }
  process.stdout.write('migrations match the schema\n');
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
