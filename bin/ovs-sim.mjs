#!/usr/bin/env node
// The `ovs-sim` command: runs a script of ovs-vsctl / ovs-ofctl / ovs-appctl lines (a file, or
// standard input) against the simulator and prints what Open vSwitch would. Runs the compiled
// dist/ (`npm run build`), or the TypeScript sources through tsx with ACA_DEV=1.
import { existsSync, readFileSync } from 'node:fs';

let cli = new URL('../dist/ovs-sim/cli.js', import.meta.url);
if (process.env.ACA_DEV === '1') {
  const { register } = await import('tsx/esm/api');
  register();
  cli = new URL('../ovs-sim/cli.ts', import.meta.url);
} else if (!existsSync(cli)) {
  console.error('ovs-sim: dist/ovs-sim/cli.js is missing: run `npm run build` first (or set ACA_DEV=1 to run the TypeScript sources through tsx)');
  process.exit(1);
}
const { runScript } = await import(cli.href);
const text = readFileSync(process.argv[2] ?? 0, 'utf8');
let status = 0;
for (const r of runScript(text)) {
  if (r.stdout !== '') process.stdout.write(`${r.stdout}\n`);
  if (r.stderr !== '') process.stderr.write(`${r.stderr}\n`);
  if (r.status !== 0) status = r.status;
}
process.exit(status);
