#!/usr/bin/env -S node --max-semi-space-size=16
// Runs the TypeScript CLI directly (Node >= 24 strips types); no build step.
import '../src/cli.ts';
