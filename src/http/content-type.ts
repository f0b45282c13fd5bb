import { createMiddleware } from 'hono/factory';
import { problem } from './problem.ts';

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json$/;

/**
 * Endpoints whose body is JSON refuse anything not declared as JSON (415) before reading it:
 * a form or text body parsed as JSON by accident is how CSRF-style requests from browsers get in
 * (a cross-site form cannot send application/json without a CORS preflight).
 * `application/json`, `application/*+json`, with no charset or UTF-8.
 */
export function requireJson() {
  return createMiddleware(async (c, next) => {
    const header = c.req.header('content-type') ?? '';
    const [type, ...params] = header.split(';').map((part) => part.trim().toLowerCase());
    const charset = params.find((p) => p.startsWith('charset='))?.slice('charset='.length).replace(/^"(.*)"$/, '$1');
    if (!JSON_TYPE.test(type) || (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8')) {
      return problem(c, 415, 'unsupported_media_type', `Content-Type must be application/json (got ${header ? JSON.stringify(header.slice(0, 100)) : 'none'})`);
    }
    await next();
  });
}
