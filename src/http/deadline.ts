import type { Context, MiddlewareHandler } from 'hono';
import type { Deadline } from '../deadline.ts';
import { AppError } from '../errors.ts';
import { problem } from './problem.ts';

export type DeadlineEnv = { Variables: { deadline: Deadline } };

/**
 * How long before the answer a write must have started: a statement that starts later could
 * commit after the client was told 503 and retried (see migrations/0009_create_deadline.sql).
 */
const WRITE_MARGIN_MS = 1000;

/**
 * Every request answers within `budgetMs` (plus whatever long-poll it asked for), whatever the
 * database does (DESIGN §8: "never hang past 10 s, never 500"). Past it the client gets 503 with
 * Retry-After, and the verb's deadline signal aborts: work still queued in this process is
 * dropped, and a create statement that only reaches PostgreSQL now writes nothing.
 */
export function requestDeadline(budgetMs: number, extraMs: (c: Context) => number = () => 0): MiddlewareHandler<DeadlineEnv> {
  return async (c, next) => {
    const ms = budgetMs + extraMs(c);
    const controller = new AbortController();
    c.set('deadline', { signal: controller.signal, writeBy: Date.now() + ms - WRITE_MARGIN_MS });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), ms);
    });
    const handled = next().then(() => 'done' as const);
    const outcome = await Promise.race([handled, late]);
    clearTimeout(timer);
    if (outcome === 'done') return;
    // An expected outcome, not a failure: work that sees it ends quietly (app.ts onError).
    controller.abort(new AppError('unavailable', 503, 'request deadline passed'));
    // The handler goes on in the background; whatever it answers now is dropped.
    handled.catch(() => {});
    c.header('retry-after', '2');
    // The handler may not have read the whole body: this connection is not reused.
    c.header('connection', 'close');
    c.res = problem(c, 503, 'unavailable', `No answer within ${Math.round(ms / 1000)} s (the database may be unavailable); retry after Retry-After`);
  };
}
