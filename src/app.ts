import { OpenAPIHono } from '@hono/zod-openapi';
import { HTTPException } from 'hono/http-exception';
import { requestId } from 'hono/request-id';
import type { ZodError } from 'zod';
import type { Relay } from './context.ts';
import { AppError } from './errors.ts';
import { type AuthEnv, requireApiKey } from './http/auth.ts';
import { type AdmissionOptions, admitCreates } from './http/admission.ts';
import { limitBody } from './http/body-limit.ts';
import { limitLongPolls } from './http/long-polls.ts';
import { problem } from './http/problem.ts';
import { registerCallbackRoutes } from './http/routes/callbacks.ts';
import { registerDocsRoute } from './http/routes/docs.ts';
import { registerProviderRoutes } from './http/routes/providers.ts';
import { type Readiness, registerSystemRoutes } from './http/routes/system.ts';
import { registerTaskRoutes } from './http/routes/tasks.ts';
import type { KeyCache } from './projects/key-cache.ts';
import type { Config, RateLimitConfig } from './config.ts';
import { apiKeyLimit, callbackLimits } from './http/rate-limit.ts';
import { authFailureLimit } from './http/auth-limit.ts';
import { requireJson } from './http/content-type.ts';
import { requestDeadline } from './http/deadline.ts';
import { isDatabaseUnavailable } from './db/unavailable.ts';
import { createSharedCounter } from './limits/rejection-counter.ts';
import { parseNetworks } from './outbound/address-policy.ts';

/** Largest accepted POST /v1/tasks body. */
export const TASK_BODY_LIMIT = 2 * 1024 * 1024;

export interface AppDeps {
  relay: Relay;
  /** Aborted when the process starts draining (SIGTERM): answers close their connection. */
  draining?: AbortSignal;
  /** Longest a request may take before it is answered 503, ms (DESIGN §8: never past 10 s). Default 9000. */
  requestBudgetMs?: number;
  keys: KeyCache;
  readiness: Readiness;
  limits: RateLimitConfig;
  /** RELAY_TRUSTED_PROXIES: peers whose X-Forwarded-For names the client. */
  trustedProxies: string[];
  /** RELAY_CREATE_*: how task creations are admitted (http/admission.ts). */
  admission: AdmissionOptions;
  /** RELAY_LONG_POLLS_PER_KEY: open `?wait=` requests of one API key (http/long-polls.ts); 0 = no cap. */
  longPollsPerKey: number;
}

/** The app's settings as the configuration gives them (main.ts; tests build apps the same way). */
export function appSettings(config: Config): Pick<AppDeps, 'limits' | 'trustedProxies' | 'admission' | 'longPollsPerKey'> {
  return {
    limits: config.rateLimits,
    trustedProxies: config.trustedProxies,
    admission: { max: config.createConcurrency, maxPerKey: config.createConcurrencyPerKey, maxWaitingPerKey: config.createQueuePerKey },
    longPollsPerKey: config.longPollsPerKey,
  };
}

/** "targetUrl: must be an absolute http(s) URL; maxRetries: Too big: expected number to be <=10" */
function describeIssues(error: ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.length ? issue.path.join('.') : '(body)'}: ${issue.message}`)
    .join('; ');
}

/** The HTTP app. It never listens: main.ts serves it, tests call `app.request()` or serve it themselves. */
export function createApp({ relay, keys, readiness, limits, trustedProxies, admission, longPollsPerKey, draining, requestBudgetMs = 9_000 }: AppDeps) {
  const app = new OpenAPIHono<AuthEnv>({
    defaultHook: (result, c) => {
      if (!result.success) return problem(c, 400, 'invalid_request', describeIssues(result.error as ZodError));
    },
  });
  app.use(requestId());
  if (draining) {
    // While the process drains, every answer ends its connection, so keep-alive clients move to
    // another replica instead of having a later request cut (DESIGN §8: SIGTERM).
    app.use(async (c, next) => {
      await next();
      if (draining.aborted) c.res.headers.set('connection', 'close');
    });
  }
  // First, so the key lookup is inside the bound too; a long-poll adds the wait it asked for.
  app.use('/v1/*', requestDeadline(requestBudgetMs, (c) => 1000 * (Number(c.req.query('wait')) || 0)));
  // Task bodies travel sealed in one row: a bound keeps a single request from bloating the table.
  app.on('POST', '/v1/tasks', limitBody(TASK_BODY_LIMIT, 'Request body'));
  // '/v1/tasks/*' also matches '/v1/tasks' itself: one registration, or the key is checked twice.
  // 401s are counted per client IP like callback rejections (http/auth-limit.ts).
  const failures = authFailureLimit({
    limits,
    trustedProxies: parseNetworks(trustedProxies),
    counter: createSharedCounter(relay.sql, limits.windowSeconds),
    onError: (err) => relay.log.warn({ err }, 'authentication failure counter unavailable; not limiting'),
  });
  app.use('/v1/tasks/*', requireApiKey(keys, failures), apiKeyLimit(limits));
  // After the key: a client without one learns nothing but 401 (and its requests are not counted).
  app.on('POST', '/v1/tasks', requireJson());
  // After the cheap checks (headers, cached key, limits); it reads the body, then waits for a slot.
  app.on('POST', '/v1/tasks', admitCreates(admission));
  app.on('GET', '/v1/tasks/:id', limitLongPolls(longPollsPerKey));
  // Before the callback routes' own body limit, so that its 413 is counted as a rejection.
  const guard = callbackLimits({
    limits,
    trustedProxies: parseNetworks(trustedProxies),
    rejections: createSharedCounter(relay.sql, limits.windowSeconds),
    onError: (err) => relay.log.warn({ err }, 'callback rejection counter unavailable; not limiting'),
  });
  app.use('/v1/callbacks/*', guard);
  app.use('/v1/signals/*', guard);
  // After the guard, so that a flood of 415s still counts against the per-IP ceiling.
  app.on('POST', '/v1/signals/*', requireJson());

  registerSystemRoutes(app, readiness);
  registerDocsRoute(app);
  registerTaskRoutes(app, relay);
  registerCallbackRoutes(app, relay);
  registerProviderRoutes(app);

  app.openAPIRegistry.registerComponent('securitySchemes', 'apiKey', { type: 'apiKey', in: 'header', name: 'X-API-Key' });
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer' });

  app.notFound((c) => problem(c, 404, 'not_found', `No route for ${c.req.method} ${c.req.path}`));
  app.onError((error, c) => {
    if (error instanceof AppError) {
      // DESIGN §8: every 503 says when to come back.
      if (error.status === 503) c.header('retry-after', '2');
      return problem(c, error.status as 400, error.code, error.message);
    }
    if (isDatabaseUnavailable(error)) {
      // DESIGN §8: an outage is answered 503 with Retry-After, never 500; a provider retries its callback.
      relay.log.warn({ requestId: c.get('requestId'), code: (error as { code?: string }).code }, 'database unavailable; answered 503');
      c.header('retry-after', '2');
      return problem(c, 503, 'unavailable', 'The database is unavailable; retry after Retry-After');
    }
    if (error instanceof HTTPException && error.status < 500) {
      // hono's own validator errors, e.g. "Malformed JSON in request body".
      return problem(c, error.status as 400, 'invalid_request', error.message || 'Invalid request');
    }
    // The path of a callback or signal is its token: never logged.
    const path = c.req.path.replace(/^(\/v1\/(?:callbacks|signals)\/)[^/]+/, '$1[redacted]');
    relay.log.error({ err: error, requestId: c.get('requestId'), path }, 'unhandled error');
    return problem(c, 500, 'internal', 'Internal error; see the relay logs with this requestId');
  });
  return app;
}
