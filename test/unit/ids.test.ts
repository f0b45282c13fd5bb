import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { uuidv7, uuidv7Time } from '../../src/ids.ts';
import { encodeCursor } from '../../src/tasks/list-tasks.ts';

describe('uuidv7', () => {
  test('is an RFC 9562 version 7 UUID carrying its millisecond timestamp', () => {
    const at = Date.UTC(2025, 0, 2, 3, 4, 5, 678);
    const id = uuidv7(at);
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(id.slice(0, 13), `${at.toString(16).padStart(12, '0').slice(0, 8)}-${at.toString(16).padStart(12, '0').slice(8)}`);
    assert.equal(uuidv7Time(id), at);
    assert.ok(Math.abs(uuidv7Time(uuidv7()) - Date.now()) < 1_000);
  });

  test('ids of later milliseconds sort after earlier ones as strings, and never collide', () => {
    const base = Date.now();
    const ids = Array.from({ length: 200 }, (_, i) => uuidv7(base + i));
    assert.deepEqual([...ids].sort(), ids);
    const sameMs = new Set(Array.from({ length: 1_000 }, () => uuidv7(base)));
    assert.equal(sameMs.size, 1_000);
  });
});

describe('list cursor', () => {
  test('is the base64url of the last id: URL-safe and reversible', () => {
    const id = uuidv7();
    const cursor = encodeCursor(id);
    assert.match(cursor, /^[A-Za-z0-9_-]+$/);
    assert.equal(encodeURIComponent(cursor), cursor);
    assert.equal(Buffer.from(cursor, 'base64url').toString(), id);
    assert.notEqual(encodeCursor(uuidv7(Date.now() + 1)), cursor);
  });
});
