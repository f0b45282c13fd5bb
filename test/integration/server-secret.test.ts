/**
 * The server secret (secrets/server-secret.ts): made once, even by replicas starting together,
 * sealed in `settings`, re-sealed under the first key when the keyring rotates.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { createDatabase, type Database } from '../../src/db/client.ts';
import { createKeyring } from '../../src/secrets/keyring.ts';
import { loadServerHashes } from '../../src/secrets/server-secret.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

let database: TestDatabase;
let db: Database;
before(async () => {
  database = await createTestDatabase('server_secret');
  db = createDatabase(database.url, { max: 8 });
});
after(async () => {
  await db.close();
  await database.drop();
});

const k1 = { kid: 'k1', key: randomBytes(32) };
const k2 = { kid: 'k2', key: randomBytes(32) };

test('eight replicas booting at once on an empty table agree on one secret', async () => {
  const keyring = createKeyring([k1]);
  const all = await Promise.all(Array.from({ length: 8 }, () => loadServerHashes(db.db, keyring)));
  assert.equal(new Set(all.map((h) => h.apiKey('the key'))).size, 1);
  const rows = await db.sql`select name, sealed_value from settings`;
  assert.equal(rows.length, 1);
  assert.match(rows[0].sealed_value, /^v1\.k1\./);
});

test('a rotated keyring re-seals it under the first key; the hashes stay the same', async () => {
  const hashed = (await loadServerHashes(db.db, createKeyring([k1]))).apiKey('the key');
  const rotated = await loadServerHashes(db.db, createKeyring([k2, k1]));
  assert.equal(rotated.apiKey('the key'), hashed);
  const [row] = await db.sql`select sealed_value from settings where name = 'server-secret'`;
  assert.match(row.sealed_value, /^v1\.k2\./);
  // Now k1 may go.
  assert.equal((await loadServerHashes(db.db, createKeyring([k2]))).apiKey('the key'), hashed);
  // A keyring that holds neither cannot open it: no secret, a reason, and nothing overwritten.
  const lost = await loadServerHashes(db.db, createKeyring([{ kid: 'k3', key: randomBytes(32) }]));
  assert.match(lost.unavailable ?? '', /server secret .* cannot be opened: sealed secret uses unknown key id "k2"/);
  const [still] = await db.sql`select sealed_value from settings where name = 'server-secret'`;
  assert.equal(still.sealed_value, row.sealed_value);
});
