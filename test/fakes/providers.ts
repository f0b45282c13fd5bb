/**
 * Real payload shapes of providers (shared/reference/providers.md), for the fakes and the tests.
 */

/** A Replicate prediction (submit answer, poll answer and webhook body share this shape). */
export function replicatePrediction(origin: string, status: string, extra: object = {}) {
  const id = 'ufawqhfynnddngldkgtslldrkq';
  return {
    id,
    model: 'black-forest-labs/flux-schnell',
    version: '5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa',
    input: { prompt: 'a lighthouse at dawn' },
    logs: '',
    output: null,
    data_removed: false,
    error: null,
    status,
    created_at: '2025-10-01T10:00:00.000Z',
    urls: {
      get: `${origin}/v1/predictions/${id}`,
      cancel: `${origin}/v1/predictions/${id}/cancel`,
      web: `https://replicate.com/p/${id}`,
    },
    ...extra,
  };
}

export const falRequestId = '80e732af-660e-45cd-bd63-580e4f2a94cc';

/** fal's submit answer: the status, result and cancel URLs drop the model's subpath. */
export function falQueued(origin: string, requestId = falRequestId) {
  const base = `${origin}/fal-ai/flux/requests/${requestId}`;
  return { status: 'IN_QUEUE', request_id: requestId, gateway_request_id: requestId, response_url: base, status_url: `${base}/status`, cancel_url: `${base}/cancel`, queue_position: 0 };
}

export const falOkWebhook = (requestId = falRequestId) =>
  `{"request_id":"${requestId}","gateway_request_id":"${requestId}","status":"OK","payload":{"images":[{"url":"https://v3.fal.media/files/lion/lighthouse.png","content_type":"image/png","file_name":"lighthouse.png","file_size":1824075,"width":1024,"height":1024}],"seed":196619188014358660}}`;

export const falErrorWebhook = (requestId = falRequestId) =>
  `{"request_id":"${requestId}","gateway_request_id":"${requestId}","status":"ERROR","error":"Invalid status code: 422","payload":{"detail":[{"loc":["body","prompt"],"msg":"field required","type":"value_error.missing"}]}}`;

/** A Luma generation object. */
export function lumaGeneration(state: string, extra: object = {}) {
  return {
    id: '123e4567-e89b-12d3-a456-426614174000',
    state,
    failure_reason: null,
    created_at: '2025-01-01T00:00:00Z',
    generation_type: 'video',
    model: 'ray-2',
    assets: { video: state === 'completed' ? 'https://storage.cdn-luma.com/dream/video.mp4' : null, image: null, progress_video: null },
    request: { prompt: 'A teddy bear in sunglasses playing electric guitar' },
    ...extra,
  };
}
