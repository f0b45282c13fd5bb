/**
 * `node test/start-kept-cluster.ts <data dir>`: starts the embedded PostgreSQL that a failed
 * `npm test` kept (test/run.ts prints the data dir), lists the test databases in it and keeps
 * the server running until Ctrl-C.
 */
import { join } from 'node:path';
import postgres from 'postgres';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { urlForDatabase, withoutPassword } from './helpers/postgres-url.ts';

const dataDir = process.argv[2];
if (!dataDir) {
  process.stderr.write('usage: node test/start-kept-cluster.ts <data dir printed by npm test>\n');
  process.exit(2);
}
const server = await startEmbeddedPostgres({ dataDir, log: () => {} });
const sql = postgres(server.url, { max: 1, onnotice: () => {} });
const databases = await sql<{ datname: string }[]>`select datname from pg_database where datname like 't\\_%' order by datname`;
await sql.end();
const passwordFile = join(dataDir, 'pg.password');
process.stdout.write(`PostgreSQL is running on the kept data dir ${dataDir} (Ctrl-C stops it).\n`);
process.stdout.write(`The password is in ${passwordFile}: PGPASSWORD=$(cat ${passwordFile}) psql <url>\n`);
for (const { datname } of databases) process.stdout.write(`  ${withoutPassword(urlForDatabase(server.url, datname))}\n`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void server.stop().then(() => process.exit(0)));
}
// The postmaster is a child process with its pipes read by us: it keeps this process alive.
