import type { ProviderPreset } from './provider-preset.ts';

/**
 * Luma Dream Machine. The callback URL is the body field `callback_url`; Luma posts the
 * generation on every change (`dreaming`, `completed`, `failed`) and retries only 3 times
 * 100 ms apart, so the fallback poll matters here most. Unsigned. Poll and cancel (DELETE)
 * `/dream-machine/v1/generations/{id}` on the target's origin.
 */
export const luma: ProviderPreset = {
  id: 'luma',
  name: 'Luma Dream Machine',
  docs: 'https://docs.lumalabs.ai/changelog/callbacks-and-credits-balance',
  callback: {
    placement: { in: 'body', name: 'callback_url' },
    classify: { statusPath: 'state', doneValues: ['completed'], failValues: ['failed'], errorPath: 'failure_reason' },
  },
  poll: {
    urlTemplate: '{target.origin}/dream-machine/v1/generations/{startResult.body.id}',
    interval: 5,
    statusPath: 'state',
    doneValues: ['completed'],
    failValues: ['failed'],
    errorPath: 'failure_reason',
    forwardAuth: true,
    cancelUrlTemplate: '{target.origin}/dream-machine/v1/generations/{startResult.body.id}',
    cancelMethod: 'DELETE',
  },
  output: 'the generation object, media in `assets.video` / `assets.image`',
  error: '`failure_reason`; state failed',
};
