#!/usr/bin/env node
// The `ovs-sim` command: runs a script of ovs-vsctl / ovs-ofctl / ovs-appctl lines (a file, or
// standard input) against the simulator and prints what Open vSwitch would.
import { readFileSync } from 'node:fs';
import { register } from 'tsx/esm/api';

register();
const { runScript } = await import('../ovs-sim/cli.ts');
const text = readFileSync(process.argv[2] ?? 0, 'utf8');
let status = 0;
for (const r of runScript(text)) {
  if (r.stdout !== '') process.stdout.write(`${r.stdout}\n`);
  if (r.stderr !== '') process.stderr.write(`${r.stderr}\n`);
  if (r.status !== 0) status = r.status;
}
process.exit(status);
