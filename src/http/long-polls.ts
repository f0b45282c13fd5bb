import type { MiddlewareHandler } from 'hono';
import type { AuthEnv } from './auth.ts';
import { problem } from './problem.ts';

/**
 * At most `perKey` long-polls (`GET /v1/tasks/:id?wait=N`, N > 0) of one API key are open at once
 * in this process (RELAY_LONG_POLLS_PER_KEY; 0 = no cap); past it the request is answered 429 with
 * Retry-After at once, without waiting. A waiting long-poll costs no query (tasks/change-feed.ts),
 * but it holds a socket and a request's memory, and one key must not take them all. 429 rather
 * than an immediate answer with the current state: a client looping on `?wait=` would turn such
 * answers into a tight loop of reads, while a 429 tells it to back off.
 */
export function limitLongPolls(perKey: number): MiddlewareHandler<AuthEnv> {
  const open = new Map<string, number>();
  return async (c, next) => {
    if (perKey === 0 || !(Number(c.req.query('wait')) > 0)) return next();
    const key = c.get('keyHash');
    const count = open.get(key) ?? 0;
    if (count >= perKey) {
      c.header('retry-after', '1');
      return problem(c, 429, 'rate_limited', `More than ${perKey} long-polls of this API key at once; retry shortly or poll without wait`);
    }
    open.set(key, count + 1);
    try {
      await next();
    } finally {
      const left = (open.get(key) ?? 1) - 1;
      if (left > 0) open.set(key, left);
      else open.delete(key);
    }
  };
}
