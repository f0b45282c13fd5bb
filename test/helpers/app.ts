import { type AppDeps, appSettings, createApp } from '../../src/app.ts';
import { createDatabase } from '../../src/db/client.ts';
import { freePort } from '../../src/db/embedded.ts';
import { createKeyCache, type KeyCache } from '../../src/projects/key-cache.ts';
import { unavailableHashes } from '../../src/secrets/server-secret.ts';
import type { TestRelay } from './relay.ts';

export type TestApp = ReturnType<typeof createApp>;

/**
 * `createApp` over a test relay's Relay, wired as main.ts wires it but never served: tests call
 * `app.request()`, so no socket, no listener and no client IP (every request counts as the one
 * address "unknown" for the per-IP limits). `overrides` replace single dependencies: a failing
 * readiness, tight limits, key lookups that cannot reach the database.
 */
export function createTestApp(relay: TestRelay, overrides: Partial<AppDeps> = {}): TestApp {
  const { relay: core } = relay.running;
  const { config } = relay;
  return createApp({
    relay: core,
    keys: createKeyCache(core.db, core.hashes),
    ...appSettings(config),
    readiness: { check: async () => (await core.sql`select 1`).length === 1 },
    ...overrides,
  });
}

/**
 * API key lookups against a PostgreSQL that is not there: a pool on a loopback port nothing
 * listens on, so every lookup fails the way a database outage does (ECONNREFUSED).
 */
export async function keysWithoutDatabase(relay: TestRelay): Promise<{ keys: KeyCache; close(): Promise<void> }> {
  const gone = createDatabase(`postgres://postgres@127.0.0.1:${await freePort()}/gone`, { max: 1, connectTimeoutSeconds: 1 });
  return { keys: createKeyCache(gone.db, relay.running.relay.hashes), close: gone.close };
}

/** API key lookups of a relay whose server secret cannot be opened (its key id was dropped from RELAY_ENCRYPTION_KEY). */
export function keysWithSealedSecret(relay: TestRelay): KeyCache {
  return createKeyCache(relay.running.relay.db, unavailableHashes('the test dropped the key'));
}
