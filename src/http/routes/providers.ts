import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { PRESETS } from '../../providers/preset.ts';
import type { ProviderPreset } from '../../providers/provider-preset.ts';
import type { AuthEnv } from '../auth.ts';

export const ProviderView = z
  .object({
    id: z.string(),
    name: z.string(),
    docs: z.string(),
    callback: z
      .object({
        placement: z.object({ in: z.enum(['query', 'body']), name: z.string() }),
        classify: z.record(z.string(), z.unknown()),
        signature: z.string().nullable(),
        resultMissing: z.object({ emptyPath: z.string(), markerPath: z.string() }).optional()
          .openapi({ description: 'A success callback with emptyPath null and markerPath set carries no result: it is fetched by an immediate poll' }),
        requestIdPath: z.string().optional()
          .openapi({ description: "Where the submit answer names the provider's request; a signed callback must carry the same id" }),
      })
      .nullable()
      .openapi({ description: 'How the provider calls back; null for poll-only providers' }),
    pollConfig: z.record(z.string(), z.unknown()),
    credentialOrigins: z.array(z.string())
      .openapi({ description: "Origins besides the task's target that receive its credentials on polls, result fetches and cancels (forwardAuth)" }),
    pollRole: z.enum(['primary', 'fallback']).openapi({ description: 'fallback: polled slowly while a callback is awaited' }),
    cancel: z.object({ method: z.string(), urlTemplate: z.string() }).nullable(),
    output: z.string(),
    error: z.string(),
  })
  .openapi('Provider');

function toProviderView(preset: ProviderPreset): z.infer<typeof ProviderView> {
  return {
    id: preset.id,
    name: preset.name,
    docs: preset.docs,
    callback: preset.callback ? { ...preset.callback, signature: preset.callback.signature ?? null } : null,
    pollConfig: preset.poll,
    credentialOrigins: preset.credentialOrigins ?? [],
    pollRole: preset.callback ? 'fallback' : 'primary',
    cancel: preset.poll.cancelUrlTemplate ? { method: preset.poll.cancelMethod ?? 'POST', urlTemplate: preset.poll.cancelUrlTemplate } : null,
    output: preset.output,
    error: preset.error,
  };
}

const providersRoute = createRoute({
  method: 'get',
  path: '/v1/providers',
  description: 'Provider presets: where the callback URL goes, how callbacks are classified, the full pollConfig, cancel, output and error.',
  responses: {
    200: { description: 'The presets this relay knows', content: { 'application/json': { schema: z.object({ providers: z.array(ProviderView) }) } } },
  },
});

/** The provider catalog (no auth: it holds no task data). */
export function registerProviderRoutes(app: OpenAPIHono<AuthEnv>): void {
  const body = { providers: PRESETS.map(toProviderView) };
  app.openapi(providersRoute, (c) => c.json(body, 200));
}
