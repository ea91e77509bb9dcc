#!/usr/bin/env node
// The `aca` command: runs the compiled JavaScript in dist/ (`npm run build`; `npm install` and
// `npm test` build it). ACA_DEV=1 runs the TypeScript sources through tsx instead (development
// only: no build step, slower start).
import { existsSync } from 'node:fs';
import v8 from 'node:v8';

// A larger young generation: a controller's state can hold a million neighbors, whose objects
// would otherwise be copied into the old generation in many small scavenges.
v8.setFlagsFromString('--max-semi-space-size=32');
v8.setFlagsFromString('--min-semi-space-size=16');

let cli = new URL('../dist/agent/cli.js', import.meta.url);
if (process.env.ACA_DEV === '1') {
  const { register } = await import('tsx/esm/api');
  register();
  cli = new URL('../agent/cli.ts', import.meta.url);
} else if (!existsSync(cli)) {
  console.error('aca: dist/agent/cli.js is missing: run `npm run build` first (or set ACA_DEV=1 to run the TypeScript sources through tsx)');
  process.exit(1);
}
await import(cli.href);
