import type { Context } from 'hono';
import { createMiddleware } from 'hono/factory';
import type { KeyCache } from '../projects/key-cache.ts';
import type { AuthFailureLimit } from './auth-limit.ts';
import type { Deadline } from '../deadline.ts';
import { problem, tooMany } from './problem.ts';

export type AuthEnv = { Variables: { projectId: string; keyHash: string; requestId: string; deadline: Deadline } };

/** The presented key: `X-API-Key: <key>` or `Authorization: Bearer <key>`. */
function presentedKey(header: (name: string) => string | undefined): string | undefined {
  const direct = header('x-api-key');
  if (direct) return direct.trim();
  const authorization = header('authorization');
  const match = authorization?.match(/^Bearer\s+(\S+)\s*$/i);
  return match?.[1];
}

/**
 * Resolves the caller's project from its API key (looked up by its HMAC; a revoked key matches
 * nothing, so revocation takes effect on the next request). With a failure limit, each 401 is
 * counted against the client's address; past the limit the address is answered 429 with
 * Retry-After, without a query, unless the key it presents is one this process found active in
 * the last minute (a client behind the same NAT as a key sprayer keeps working).
 */
export function requireApiKey(keys: KeyCache, failures?: AuthFailureLimit) {
  const refuse = async (c: Context) => {
    const retryAfter = await failures?.fail(c);
    if (retryAfter !== undefined) return tooMany(c, retryAfter, failures!.detail);
    return problem(c, 401, 'unauthorized', 'Missing or invalid API key');
  };
  return createMiddleware<AuthEnv>(async (c, next) => {
    const key = presentedKey((name) => c.req.header(name));
    const blocked = failures?.blockedFor(c);
    if (blocked !== undefined && !(key && key.length <= 256 && keys.recentlyActive(key))) return tooMany(c, blocked, failures!.detail);
    if (!key || key.length > 256) return refuse(c);
    // Creation re-checks the key inside its statements, so only it may answer from the cache.
    const cached = c.req.method === 'POST' && c.req.path === '/v1/tasks';
    const found = await keys.resolve(key, { cached });
    if (!found) return refuse(c);
    c.set('projectId', found.projectId);
    c.set('keyHash', found.keyHash);
    await next();
  });
}
