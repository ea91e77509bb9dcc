#!/usr/bin/env node
// The `aca` command: runs the compiled JavaScript in dist/ (`npm run build`; `npm install` and
// `npm test` build it). ACA_DEV=1 runs the TypeScript sources through tsx instead (development
// only: no build step, slower start).
import { existsSync } from 'node:fs';

// No V8 heap-size flags here: V8 sizes its generations when the process starts, so those set
// from inside (v8.setFlagsFromString) do not take; operators pass them in NODE_OPTIONS (the systemd
// unit does, README "Benchmarks"). The one setting that takes at run time, pretenuring off, the
// agent applies itself when it starts (agent/v8-tuning.ts).

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
