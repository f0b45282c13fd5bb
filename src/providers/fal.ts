import type { ProviderPreset } from './provider-preset.ts';

/**
 * fal.ai queue (queue.fal.run). The webhook URL is the `fal_webhook` query parameter; fal sends
 * one webhook when done (`status` OK or ERROR, retried up to 10× over 2 h), signed with Ed25519.
 * Polling: `status_url` until COMPLETED, which is not success: the result is `GET response_url`,
 * where a non-2xx answer is the failure. Cancel: `PUT cancel_url` (only before processing starts).
 */
export const fal: ProviderPreset = {
  id: 'fal',
  name: 'fal.ai queue',
  docs: 'https://docs.fal.ai/model-endpoints/queue',
  callback: {
    placement: { in: 'query', name: 'fal_webhook' },
    classify: { statusPath: 'status', doneValues: ['OK'], failValues: ['ERROR'], errorPath: 'error' },
    signature: 'fal',
    // A result that is not JSON-serialisable comes as `payload: null` with `payload_error`: it is
    // only at response_url.
    resultMissing: { emptyPath: 'payload', markerPath: 'payload_error' },
    // fal signs every account's webhooks with one key: only the request id ties one to this task.
    requestIdPath: 'request_id',
  },
  // status_url, response_url and cancel_url are all on the queue host.
  credentialOrigins: ['https://queue.fal.run'],
  poll: {
    urlTemplate: '{startResult.body.status_url}',
    interval: 2,
    statusPath: 'status',
    doneValues: ['COMPLETED'],
    failValues: [],
    resultUrlTemplate: '{startResult.body.response_url}',
    errorPath: 'detail',
    forwardAuth: true,
    cancelUrlTemplate: '{startResult.body.cancel_url}',
    cancelMethod: 'PUT',
  },
  output: 'webhook: the whole webhook body, output in `payload`; poll: the body of GET response_url (the model output itself)',
  error: 'webhook: `error` (details in `payload.detail`); poll: a non-2xx answer of response_url, message from `detail`',
};
