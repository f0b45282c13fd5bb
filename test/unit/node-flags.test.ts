import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { RELAY_NODE_FLAGS } from '../../src/node-flags.ts';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

test('npm start, the bin, the Docker image and the spawned relays carry the same Node flags', () => {
  const flags = RELAY_NODE_FLAGS.join(' ');
  assert.equal(flags, '--max-semi-space-size=16');
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
  assert.equal(pkg.scripts.start, `node ${flags} src/cli.ts serve`);
  assert.equal(read('bin/asyncrelay.js').split('\n')[0], `#!/usr/bin/env -S node ${flags}`);
  assert.match(read('Dockerfile'), new RegExp(`^ENTRYPOINT \\["node", ${RELAY_NODE_FLAGS.map((f) => `"${f}"`).join(', ')}, "src/cli.ts"\\]$`, 'm'));
  assert.match(read('bench/relay.ts'), /spawn\([^\n]*\[\.\.\.RELAY_NODE_FLAGS, 'src\/cli\.ts', 'serve'\]/);
  assert.match(read('test/helpers/process.ts'), /spawn\(NODE_BIN, \[\.\.\.RELAY_NODE_FLAGS, 'src\/cli\.ts'/);
});
