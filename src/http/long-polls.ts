import type { MiddlewareHandler } from 'hono';
import type { AuthEnv } from './auth.ts';
import { problem } from './problem.ts';

/**
 * At most `perKey` long-polls (`GET /v1/tasks/:id?wait=N`, N > 0) of one API key are open at once
 * in this process (RELAY_LONG_POLLS_PER_KEY; 0 = no cap); past it the request is answered 429 at
 * once, with `Retry-After: N`. A waiting long-poll costs no query (db/change-feed.ts), but it
 * holds a socket and a request's memory, and one key must not take them all.
 *
 * Why 429 and why N seconds: an immediate answer with the current state would turn a client that
 * loops on `?wait=` into a tight loop of reads, and so would a short Retry-After (2,000 looping
 * clients over a cap of 100, told to retry after 1 s, were 1,900 requests a second). Told to come
 * back after the wait it asked for, an over-cap client sends no more requests than if it had
 * long-polled; it only learns of changes later.
 */
export function limitLongPolls(perKey: number): MiddlewareHandler<AuthEnv> {
  const open = new Map<string, number>();
  return async (c, next) => {
    const wait = Number(c.req.query('wait'));
    if (perKey === 0 || !(wait > 0) || !Number.isInteger(wait) || wait > 25) return next();
    const key = c.get('keyHash');
    const count = open.get(key) ?? 0;
    if (count >= perKey) {
      c.header('retry-after', String(wait));
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
