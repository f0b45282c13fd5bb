import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createFairScheduler } from '../../src/limits/fair-scheduler.ts';

test('an item that finishes inside `start` passes its slot on without recursing, however long the queue', () => {
  const started: number[] = [];
  let finishAtOnce = false;
  const slots = createFairScheduler<number>({
    max: 1,
    maxPerKey: 1,
    start: (key, n) => {
      started.push(n);
      if (finishAtOnce) slots.done(key);
    },
  });
  slots.offer('a', 0); // holds the only slot
  for (let n = 1; n <= 50_000; n++) slots.offer('a', n);
  assert.deepEqual([slots.running, slots.waiting], [1, 50_000]);
  finishAtOnce = true;
  slots.done('a');
  assert.equal(started.length, 50_001);
  assert.deepEqual(started.slice(0, 4), [0, 1, 2, 3]);
  assert.deepEqual([slots.running, slots.waiting, slots.runningOf('a')], [0, 0, 0]);
});

test('counts per key and in all; a key at its cap waits while another key runs', () => {
  const running: string[] = [];
  const slots = createFairScheduler<string>({ max: 3, maxPerKey: 2, start: (_key, item) => running.push(item) });
  for (const item of ['a1', 'a2', 'a3']) slots.offer('a', item);
  assert.equal(slots.canStart('a'), false);
  assert.equal(slots.canStart('b'), true);
  slots.offer('b', 'b1');
  assert.deepEqual(running, ['a1', 'a2', 'b1']);
  assert.deepEqual([slots.runningOf('a'), slots.waitingOf('a'), slots.runningOf('b'), slots.running, slots.waiting], [2, 1, 1, 3, 1]);
  slots.done('b');
  // A free slot, but key a is at its cap: a3 still waits.
  assert.deepEqual([slots.running, slots.waiting], [2, 1]);
  slots.done('a');
  assert.deepEqual(running, ['a1', 'a2', 'b1', 'a3']);
});
