import { createMiddleware } from 'hono/factory';
import { sha256Hex } from '../callbacks/token.ts';
import type { KeyCache } from '../projects/key-cache.ts';
import type { Deadline } from './deadline.ts';
import { problem } from './problem.ts';

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
 * Resolves the caller's project from its API key. Keys are looked up by SHA-256 only; a revoked
 * key matches nothing, so revocation takes effect on the next request.
 */
export function requireApiKey(keys: KeyCache) {
  return createMiddleware<AuthEnv>(async (c, next) => {
    const key = presentedKey((name) => c.req.header(name));
    if (!key || key.length > 256) return problem(c, 401, 'unauthorized', 'Missing or invalid API key');
    const keyHash = sha256Hex(key);
    // Creation re-checks the key inside its INSERT, so only it may answer from the cache.
    const cached = c.req.method === 'POST' && c.req.path === '/v1/tasks';
    const projectId = await keys.projectOf(keyHash, { cached });
    if (!projectId) return problem(c, 401, 'unauthorized', 'Missing or invalid API key');
    c.set('projectId', projectId);
    c.set('keyHash', keyHash);
    await next();
  });
}
