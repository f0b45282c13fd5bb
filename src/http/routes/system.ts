import type { OpenAPIHono } from '@hono/zod-openapi';
import type { AuthEnv } from '../auth.ts';

export interface Readiness {
  /** True when the database answers and the job system runs. */
  check(): Promise<boolean>;
}

/** Liveness, readiness and the OpenAPI document. */
export function registerSystemRoutes(app: OpenAPIHono<AuthEnv>, readiness: Readiness): void {
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const ready = await readiness.check().catch(() => false);
    return c.json({ status: ready ? 'ready' : 'unavailable' }, ready ? 200 : 503);
  });
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'asyncrelay', version: '0.1.0', description: 'AsyncQueue-compatible HTTP task relay' },
  });
}
