import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { problem } from './problem.ts';

/**
 * A body cap answered with 413 problem+json. When the request declares its length (and is not
 * chunked) the header decides, and the body is not touched: Node's parser delivers exactly that
 * many bytes. hono's own bodyLimit reads `c.req.raw.body` first, which makes @hono/node-server
 * build a full web Request with a ReadableStream for every request — measured as about a tenth
 * of the relay's CPU per task creation — where reading the body later through `c.req.json()` or
 * `arrayBuffer()` takes its direct path. Chunked bodies are counted by hono's bodyLimit.
 */
export function limitBody(maxSize: number, what: string): MiddlewareHandler {
  const onError = (c: Context) => {
    // The rest of the body is left unread, and @hono/node-server cuts such a socket after a
    // short drain: tell the client not to reuse it, or its next request on it hangs up.
    c.header('connection', 'close');
    return problem(c, 413, 'payload_too_large', `${what} exceeds ${maxSize} bytes`);
  };
  const counted = bodyLimit({ maxSize, onError });
  return async (c, next) => {
    const length = c.req.header('content-length');
    if (length !== undefined && c.req.header('transfer-encoding') === undefined) {
      if (Number(length) > maxSize) return onError(c);
      await next();
      return;
    }
    return counted(c, next);
  };
}
