import type { Relay } from '../context.ts';
import { finishTask } from './finish-task.ts';

/**
 * The `task.deadline` job: `maxWaitTime` has passed since the task started waiting. If no
 * callback, signal or poll finished it meanwhile, it times out; otherwise this changes nothing.
 */
export async function expireTask(relay: Relay, taskId: string): Promise<void> {
  await relay.db.transaction(async (tx) => {
    await finishTask(relay.boss, tx, {
      taskId,
      from: ['waiting', 'polling'],
      to: 'timeout',
      error: { code: 'timeout', message: 'No callback or signal arrived within maxWaitTime' },
    });
  });
}
