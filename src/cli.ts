import { parseArgs } from 'node:util';
import pino from 'pino';
import { ConfigError, loadConfig } from './config.ts';
import { createDatabase } from './db/client.ts';
import { migrateDatabase } from './db/migrate.ts';
import { startEmbeddedPostgres } from './db/embedded.ts';
import { startRelay } from './main.ts';
import { createApiKey, listApiKeys, revokeApiKey } from './projects/api-keys.ts';
import { DEFAULT_PROJECT } from './projects/bootstrap.ts';
import { ensureProject } from './projects/projects.ts';
import { createKeyring, loadOrCreateKeyFile } from './secrets/keyring.ts';
import { countSealedByKid, resealProjectSecrets, resealTasks } from './secrets/reseal.ts';
import { loadServerHashes } from './secrets/server-secret.ts';

const USAGE = `usage: asyncrelay <command>
  serve [--role api|worker|all]     run the relay (default role from RELAY_ROLE, else all)
  migrate                           apply database migrations and exit
  keys create --name N [--project P]  mint an API key (printed once); a new project P gets its own webhook secret
  keys list                         list keys (prefix only)
  keys revoke <id|prefix|key>       revoke a key at once
  reseal [--batch N]                re-seal everything sealed under older encryption key ids with the
                                    first key of RELAY_ENCRYPTION_KEY (N tasks per statement, default 500;
                                    safe to run while the relay runs, and to run again after an interruption)`;

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
  // Signals are handled from the start: a SIGTERM while start-up still waits for the database
  // ends the wait and exits 0 instead of killing the process mid-boot.
  const booting = new AbortController();
  let running: Awaited<ReturnType<typeof startRelay>> | undefined;
  let signalled = false;
  const shutdown = (signal: string) => {
    if (signalled) return;
    signalled = true;
    log.info({ signal }, 'draining');
    if (!running) return booting.abort();
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
  try {
    running = await startRelay(cfg, { log, signal: booting.signal });
  } catch (error) {
    if (!booting.signal.aborted) throw error;
    log.info('stopped during start-up');
    process.exit(0);
  }
  if (signalled) await running.stop().then(() => process.exit(0));
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
  const cfg = config(process.env);
  await withDatabase(async (url) => {
    const database = createDatabase(url, { max: 1 });
    // The same keyring and server secret as the relay: keys are stored as HMACs under that secret.
    const keyring = createKeyring(cfg.encryptionKeys ?? loadOrCreateKeyFile(cfg.dataDir));
    try {
      if (sub === 'create') {
        if (!values.name) throw new Error('keys create needs --name');
        const projectId = values.project ?? DEFAULT_PROJECT;
        const hashes = await loadServerHashes(database.db, keyring);
        if (hashes.unavailable) throw new Error(`cannot create a key: ${hashes.unavailable}`);
        const { project, id, key } = await database.db.transaction(async (tx) => {
          const made = await ensureProject(tx, keyring, projectId);
          return { project: made, ...(await createApiKey(tx, hashes, projectId, values.name!)) };
        });
        // stdout carries the key alone, so `KEY=$(asyncrelay keys create …)` works.
        process.stdout.write(`${key}\n`);
        process.stderr.write(`created ${id} in project ${projectId}; the key above is shown once\n`);
        if (project.webhookSecret) {
          process.stderr.write(`created project ${projectId}; its webhook signing secret (shown once): ${project.webhookSecret}\n`);
        }
      } else if (sub === 'list') {
        for (const k of await listApiKeys(database.db)) {
          process.stdout.write(`${k.id}\t${k.projectId}\t${k.prefix}…\t${k.name}\t${k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : 'active'}\n`);
        }
      } else if (sub === 'revoke') {
        if (!positionals[0]) throw new Error('keys revoke needs a key id or prefix (see keys list)');
        const hashes = await loadServerHashes(database.db, keyring);
        const { revoked, ambiguous } = await revokeApiKey(database.db, hashes, positionals[0]);
        if (ambiguous) throw new Error(`${ambiguous} active keys match ${positionals[0]}: give the key id`);
        if (revoked.length === 0) throw new Error(`no active key matches ${positionals[0]}`);
        process.stdout.write(`revoked ${revoked.join(', ')}\n`);
      } else {
        throw new Error(USAGE);
      }
    } finally {
      await database.close();
    }
  });
}

/** `reseal`: the server secret, project secrets and tasks' sealed requests, under the first key. */
async function resealCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { batch: { type: 'string' } } });
  const batchSize = values.batch === undefined ? 500 : Number(values.batch);
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000) throw new Error('--batch must be an integer from 1 to 10000');
  const cfg = config(process.env);
  const keyring = createKeyring(cfg.encryptionKeys ?? loadOrCreateKeyFile(cfg.dataDir));
  const out = (line: string) => process.stdout.write(`${line}\n`);
  await withDatabase(async (url) => {
    const database = createDatabase(url, { max: 1 });
    try {
      const hashes = await loadServerHashes(database.db, keyring);
      out(hashes.unavailable ? `server secret: ${hashes.unavailable}` : `server secret: sealed under "${keyring.sealingKid}"`);
      const projects = await resealProjectSecrets(database.db, keyring);
      out(`project secrets: ${projects.resealed} re-sealed, ${projects.unreadable.length} cannot be opened`);
      const tasks = await resealTasks(database.sql, keyring, {
        batchSize,
        onBatch: (r) => process.stderr.write(`tasks: ${r.scanned} scanned, ${r.resealed} re-sealed, ${r.unreadable.length} cannot be opened\n`),
      });
      out(`tasks: ${tasks.resealed} re-sealed, ${tasks.unreadable.length} cannot be opened`);
      for (const { id, reason } of [...projects.unreadable, ...tasks.unreadable].slice(0, 20)) out(`  ${id}: ${reason}`);
      const byKid = await countSealedByKid(database.sql);
      const others = Object.keys(byKid).filter((kid) => kid !== keyring.sealingKid);
      if (others.length === 0 && !hashes.unavailable) {
        out(`everything is sealed under "${keyring.sealingKid}": the other keys can be dropped from RELAY_ENCRYPTION_KEY`);
        return;
      }
      out(`still sealed under other key ids: ${others.map((kid) => `${kid} (${byKid[kid]})`).join(', ') || 'the server secret'}; keep those keys`);
      process.exitCode = 1;
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
    case 'reseal':
      return resealCommand(args);
    default:
      process.stderr.write(`${USAGE}\n`);
      process.exit(command ? 2 : 0);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
