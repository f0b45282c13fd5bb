import type { ProviderPreset } from './provider-preset.ts';

/**
 * Replicate predictions. The webhook URL is the body field `webhook`; Replicate posts the
 * prediction on `start`, `output`, `logs` and `completed` (the start event is sent even with
 * `webhook_events_filter: ["completed"]`), so only `status` decides: succeeded, or
 * failed/canceled/aborted; starting/processing are progress. Signed with Standard Webhooks.
 * Poll `urls.get`; cancel `POST urls.cancel`. Outputs expire after an hour.
 */
export const replicate: ProviderPreset = {
  id: 'replicate',
  name: 'Replicate predictions',
  docs: 'https://replicate.com/docs/topics/webhooks/receive-webhook',
  callback: {
    placement: { in: 'body', name: 'webhook' },
    classify: { statusPath: 'status', doneValues: ['succeeded'], failValues: ['failed', 'canceled', 'aborted'], errorPath: 'error' },
    signature: 'standard-webhooks',
  },
  // urls.get and urls.cancel of a prediction.
  credentialOrigins: ['https://api.replicate.com'],
  poll: {
    urlTemplate: '{startResult.body.urls.get}',
    interval: 2,
    statusPath: 'status',
    doneValues: ['succeeded'],
    failValues: ['failed', 'canceled', 'aborted'],
    errorPath: 'error',
    forwardAuth: true,
    cancelUrlTemplate: '{startResult.body.urls.cancel}',
    cancelMethod: 'POST',
  },
  output: 'the prediction object (webhook and poll alike), output in `output` (URLs expire after 1 h)',
  error: '`error` of the prediction; `status` failed, canceled or aborted',
};
