import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { AuthEnv } from '../auth.ts';

export interface Readiness {
  /** True when the database answers and the job system runs. */
  check(): Promise<boolean>;
}

const providersRoute = createRoute({
  method: 'get',
  path: '/v1/providers',
  responses: {
    200: {
      description: 'Provider presets this relay knows, with their pollConfig',
      content: { 'application/json': { schema: z.object({ providers: z.array(z.object({ id: z.string(), pollConfig: z.record(z.string(), z.unknown()).nullable() })) }) } },
    },
  },
});

/** Liveness, readiness, the provider catalog and the OpenAPI document. */
export function registerSystemRoutes(app: OpenAPIHono<AuthEnv>, readiness: Readiness): void {
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const ready = await readiness.check().catch(() => false);
    return c.json({ status: ready ? 'ready' : 'unavailable' }, ready ? 200 : 503);
  });
  // Presets arrive with the providers work; until then the catalog is honestly empty.
  app.openapi(providersRoute, (c) => c.json({ providers: [] }, 200));
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'asyncrelay', version: '0.1.0', description: 'AsyncQueue-compatible HTTP task relay' },
  });
}
