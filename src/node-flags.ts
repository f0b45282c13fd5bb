/**
 * The Node flags every launch of the relay carries: `npm start`, `bin/asyncrelay.js`, the Docker
 * image, and the bench and e2e tests that spawn it as those do (test/unit/node-flags.test.ts checks
 * they agree). A 16 MB young generation instead of V8's 64 MB semi-spaces: the relay's garbage is
 * short-lived request and row objects, the default held ~100 MB more resident (RSS) for no
 * measurable throughput, and that much less to grow under a burst.
 */
export const RELAY_NODE_FLAGS = ['--max-semi-space-size=16'];
