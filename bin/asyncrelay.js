#!/usr/bin/env node
// Runs the TypeScript CLI directly (Node >= 24 strips types); no build step.
import '../src/cli.ts';
