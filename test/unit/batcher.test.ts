import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createBatcher } from '../../src/db/batcher.ts';

/** A batcher over a fake store that records every call; `gate` holds the writes until released. */
function recording(options: { maxInFlight?: number; maxBatch?: number; failMany?: (items: number[]) => boolean } = {}) {
  const calls: Array<{ kind: 'many' | 'one'; items: number[] }> = [];
  let release: () => void = () => {};
  let gate = Promise.resolve();
  const hold = () => {
    gate = new Promise<void>((resolve) => (release = resolve));
  };
  const submit = createBatcher<number, string>({
    many: async (items) => {
      calls.push({ kind: 'many', items });
      await gate;
      if (options.failMany?.(items)) throw new Error('statement failed');
      return items.map((n) => `row ${n}`);
    },
    one: async (n) => {
      calls.push({ kind: 'one', items: [n] });
      await gate;
      if (n < 0) throw new Error(`bad item ${n}`);
      return `row ${n}`;
    },
    maxInFlight: options.maxInFlight ?? 1,
    maxBatch: options.maxBatch ?? 64,
  });
  return { calls, submit, hold, release: () => release() };
}

test('items submitted in one turn are written by one statement, each caller gets its own result', async () => {
  const { calls, submit } = recording();
  const results = await Promise.all([1, 2, 3, 4].map((n) => submit(n)));
  assert.deepEqual(results, ['row 1', 'row 2', 'row 3', 'row 4']);
  assert.deepEqual(calls, [{ kind: 'many', items: [1, 2, 3, 4] }]);
});

test('a lone item is written alone; items arriving while a batch runs leave together after it', async () => {
  const { calls, submit, hold, release } = recording({ maxInFlight: 1 });
  hold();
  const first = submit(1);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(calls, [{ kind: 'one', items: [1] }]);
  const later = [2, 3, 4].map((n) => submit(n));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(calls.length, 1, 'nothing else may start while the only batch slot is taken');
  release();
  assert.deepEqual(await Promise.all([first, ...later]), ['row 1', 'row 2', 'row 3', 'row 4']);
  assert.deepEqual(calls[1], { kind: 'many', items: [2, 3, 4] });
});

test('maxBatch splits a burst, and up to maxInFlight batches run at once', async () => {
  const { calls, submit } = recording({ maxInFlight: 2, maxBatch: 3 });
  const results = await Promise.all([1, 2, 3, 4, 5, 6, 7].map((n) => submit(n)));
  assert.equal(results.length, 7);
  assert.deepEqual(calls.slice(0, 2), [
    { kind: 'many', items: [1, 2, 3] },
    { kind: 'many', items: [4, 5, 6] },
  ]);
  assert.deepEqual(calls[2], { kind: 'one', items: [7] });
});

test('when the statement fails, each item is written alone: only the bad one fails', async () => {
  const { calls, submit } = recording({ failMany: (items) => items.some((n) => n < 0) });
  const settled = await Promise.allSettled([1, -2, 3].map((n) => submit(n)));
  assert.deepEqual(settled.map((s) => s.status), ['fulfilled', 'rejected', 'fulfilled']);
  assert.equal((settled[0] as PromiseFulfilledResult<string>).value, 'row 1');
  assert.match(String((settled[1] as PromiseRejectedResult).reason), /bad item -2/);
  assert.deepEqual(calls.map((c) => c.kind), ['many', 'one', 'one', 'one']);
});
