import type { ProviderPreset } from './provider-preset.ts';

/**
 * Stability AI v2beta async results: no webhooks. `GET /v2beta/results/{id}` (same API key)
 * answers 202 `{"status":"in-progress"}` while running and 200 with the media when done, so the
 * HTTP status decides. With `accept: video/*` the 200 body is the raw bytes: the task's result
 * is then base64 (`bodyEncoding: "base64"`). 4xx (404 once results expired after 24 h) fails.
 * No cancel endpoint.
 */
export const stabilityVideo: ProviderPreset = {
  id: 'stability-video',
  name: 'Stability AI async results',
  docs: 'https://platform.stability.ai/docs/api-reference',
  poll: {
    urlTemplate: '{target.origin}/v2beta/results/{startResult.body.id}',
    interval: 10,
    statusCodes: { running: [202], done: [200] },
    errorPath: 'errors',
    forwardAuth: true,
    headers: { accept: 'video/*' },
  },
  output: 'the media bytes of the 200 answer (base64 in result.body, `finish-reason` and `seed` in result.headers)',
  error: 'a 4xx answer, messages in `errors`; 404 after the result expired',
};
