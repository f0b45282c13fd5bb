import { and, eq, isNull } from 'drizzle-orm';
import { createMiddleware } from 'hono/factory';
import { apiKeys } from '../../drizzle/schema.ts';
import { sha256Hex } from '../callbacks/token.ts';
import type { Db } from '../db/client.ts';
import { problem } from './problem.ts';

export type AuthEnv = { Variables: { projectId: string; requestId: string } };

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
export function requireApiKey(db: Db) {
  return createMiddleware<AuthEnv>(async (c, next) => {
    const key = presentedKey((name) => c.req.header(name));
    if (!key || key.length > 256) return problem(c, 401, 'unauthorized', 'Missing or invalid API key');
    const [row] = await db
      .select({ projectId: apiKeys.projectId })
      .from(apiKeys)
      .where(and(eq(apiKeys.keyHash, sha256Hex(key)), isNull(apiKeys.revokedAt)));
    if (!row) return problem(c, 401, 'unauthorized', 'Missing or invalid API key');
    c.set('projectId', row.projectId);
    await next();
  });
}
