import { parseArgs } from 'node:util';
import pino from 'pino';
import { ConfigError, loadConfig } from './config.ts';
import { createDatabase } from './db/client.ts';
import { migrateDatabase } from './db/migrate.ts';
import { startEmbeddedPostgres } from './db/embedded.ts';
import { startRelay } from './main.ts';
import { createApiKey, listApiKeys, revokeApiKey } from './projects/api-keys.ts';
import { DEFAULT_PROJECT } from './projects/bootstrap.ts';

const USAGE = `usage: asyncrelay <command>
  serve [--role api|worker|all]     run the relay (default role from RELAY_ROLE, else all)
  migrate                           apply database migrations and exit
  keys create --name N [--project P]  mint an API key (printed once)
  keys list                         list keys (prefix only)
  keys revoke <id>                  revoke a key at once`;

function config(env: NodeJS.ProcessEnv, overrides: Record<string, string | undefined> = {}) {
  try {
    return loadConfig({ ...env, ...overrides });
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
}

async function serveCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { role: { type: 'string' } } });
  const cfg = config(process.env, values.role ? { RELAY_ROLE: values.role } : {});
  const log = pino({ level: cfg.logLevel });
  const running = await startRelay(cfg, { log });
  let signalled = false;
  const shutdown = (signal: string) => {
    if (signalled) return;
    signalled = true;
    log.info({ signal }, 'draining');
    running.stop().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

/** Runs `fn` against the configured database (embedded when DATABASE_URL is unset). */
async function withDatabase<T>(fn: (url: string) => Promise<T>): Promise<T> {
  const cfg = config(process.env);
  const embedded = cfg.databaseUrl ? undefined : await startEmbeddedPostgres({ dataDir: cfg.dataDir, log: () => {} });
  try {
    const url = cfg.databaseUrl ?? embedded!.url;
    await migrateDatabase(url);
    return await fn(url);
  } finally {
    await embedded?.stop();
  }
}

async function keysCommand(args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: { name: { type: 'string' }, project: { type: 'string' } },
  });
  await withDatabase(async (url) => {
    const database = createDatabase(url, { max: 1 });
    try {
      if (sub === 'create') {
        if (!values.name) throw new Error('keys create needs --name');
        const { id, key } = await createApiKey(database.db, values.project ?? DEFAULT_PROJECT, values.name);
        process.stdout.write(`${key}\n`);
        process.stderr.write(`created ${id} in project ${values.project ?? DEFAULT_PROJECT}; the key above is shown once\n`);
      } else if (sub === 'list') {
        for (const k of await listApiKeys(database.db)) {
          process.stdout.write(`${k.id}\t${k.projectId}\t${k.prefix}…\t${k.name}\t${k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : 'active'}\n`);
        }
      } else if (sub === 'revoke') {
        if (!positionals[0]) throw new Error('keys revoke needs a key id');
        if (!(await revokeApiKey(database.db, positionals[0]))) throw new Error(`no active key ${positionals[0]}`);
        process.stdout.write(`revoked ${positionals[0]}\n`);
      } else {
        throw new Error(USAGE);
      }
    } finally {
      await database.close();
    }
  });
}

async function main(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  switch (command) {
    case 'serve':
      return serveCommand(args);
    case 'migrate':
      await withDatabase(async () => {});
      process.stdout.write('migrations applied\n');
      return;
    case 'keys':
      return keysCommand(args);
    default:
      process.stderr.write(`${USAGE}\n`);
      process.exit(command ? 2 : 0);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
