import { OpenAPIHono } from '@hono/zod-openapi';
import { HTTPException } from 'hono/http-exception';
import { bodyLimit } from 'hono/body-limit';
import { requestId } from 'hono/request-id';
import type { ZodError } from 'zod';
import type { Relay } from './context.ts';
import { AppError } from './errors.ts';
import { type AuthEnv, requireApiKey } from './http/auth.ts';
import { problem } from './http/problem.ts';
import { registerCallbackRoutes } from './http/routes/callbacks.ts';
import { registerDocsRoute } from './http/routes/docs.ts';
import { registerProviderRoutes } from './http/routes/providers.ts';
import { type Readiness, registerSystemRoutes } from './http/routes/system.ts';
import { registerTaskRoutes } from './http/routes/tasks.ts';
import type { KeyCache } from './projects/key-cache.ts';

/** Largest accepted POST /v1/tasks body. */
export const TASK_BODY_LIMIT = 2 * 1024 * 1024;

export interface AppDeps {
  relay: Relay;
  keys: KeyCache;
  readiness: Readiness;
}

/** "targetUrl: must be an absolute http(s) URL; maxRetries: Too big: expected number to be <=10" */
function describeIssues(error: ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.length ? issue.path.join('.') : '(body)'}: ${issue.message}`)
    .join('; ');
}

/** The HTTP app. It never listens: main.ts serves it, tests call `app.request()` or serve it themselves. */
export function createApp({ relay, keys, readiness }: AppDeps) {
  const app = new OpenAPIHono<AuthEnv>({
    defaultHook: (result, c) => {
      if (!result.success) return problem(c, 400, 'invalid_request', describeIssues(result.error as ZodError));
    },
  });
  app.use(requestId());
  // Task bodies travel sealed in one row: a bound keeps a single request from bloating the table.
  app.on('POST', '/v1/tasks', bodyLimit({
    maxSize: TASK_BODY_LIMIT,
    onError: (c) => {
      c.header('connection', 'close'); // the rest of the body is never read
      return problem(c, 413, 'payload_too_large', `Request body exceeds ${TASK_BODY_LIMIT} bytes`);
    },
  }));
  app.use('/v1/tasks', requireApiKey(keys));
  app.use('/v1/tasks/*', requireApiKey(keys));

  registerSystemRoutes(app, readiness);
  registerDocsRoute(app);
  registerTaskRoutes(app, relay);
  registerCallbackRoutes(app, relay);
  registerProviderRoutes(app);

  app.openAPIRegistry.registerComponent('securitySchemes', 'apiKey', { type: 'apiKey', in: 'header', name: 'X-API-Key' });
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer' });

  app.notFound((c) => problem(c, 404, 'not_found', `No route for ${c.req.method} ${c.req.path}`));
  app.onError((error, c) => {
    if (error instanceof AppError) return problem(c, error.status as 400, error.code, error.message);
    if (error instanceof HTTPException && error.status < 500) {
      // hono's own validator errors, e.g. "Malformed JSON in request body".
      return problem(c, error.status as 400, 'invalid_request', error.message || 'Invalid request');
    }
    relay.log.error({ err: error, requestId: c.get('requestId'), path: c.req.path }, 'unhandled error');
    return problem(c, 500, 'internal', 'Internal error; see the relay logs with this requestId');
  });
  return app;
}
