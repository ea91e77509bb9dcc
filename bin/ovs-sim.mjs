#!/usr/bin/env node
// The `ovs-sim` command: runs a script of ovs-vsctl / ovs-ofctl / ovs-appctl lines (a file, or
// standard input) against the simulator and prints what Open vSwitch would. Runs the compiled
// dist/ (`npm run build`), or the TypeScript sources through tsx with ACA_DEV=1.
import { existsSync, readFileSync } from 'node:fs';

let cli = new URL('../dist/ovs-sim/index.js', import.meta.url);
if (process.env.ACA_DEV === '1') {
  const { register } = await import('tsx/esm/api');
  register();
  cli = new URL('../ovs-sim/index.ts', import.meta.url);
} else if (!existsSync(cli)) {
  console.error('ovs-sim: dist/ovs-sim/index.js is missing: run `npm run build` first (or set ACA_DEV=1 to run the TypeScript sources through tsx)');
  process.exit(1);
}
// Errors as Open vSwitch's tools print them (`ovs-sim: <what>`, exit 1), never a stack trace.
const fail = (message) => {
  process.stderr.write(`ovs-sim: ${message}\n`);
  process.exit(1);
};
const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  process.stdout.write(`ovs-sim: an Open vSwitch 3.1 simulator
usage: ovs-sim [SCRIPT]
Runs SCRIPT (or standard input): one ovs-vsctl, ovs-ofctl or ovs-appctl command line per line,
against one simulated host, and prints what Open vSwitch prints for each (stdout and stderr).
Lines starting with # are comments. Exit status: 0, or the last failing command's.

Options:
  -h, --help      display this help message
  -V, --version   display version information
`);
  process.exit(0);
}
if (args.includes('--version') || args.includes('-V')) {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  process.stdout.write(`ovs-sim (${pkg.name}) ${pkg.version}\nmodels Open vSwitch 3.1\n`);
  process.exit(0);
}
const unknown = args.find((a) => a.startsWith('-') && a !== '-');
if (unknown) fail(`unrecognized option '${unknown}' (use --help for help)`);
if (args.length > 1) fail(`exactly one script file (or none, for standard input) is allowed, not ${args.length}`);
let text;
try {
  text = readFileSync(args[0] === undefined || args[0] === '-' ? 0 : args[0], 'utf8');
} catch (e) {
  fail(`${args[0] ?? 'standard input'}: ${e.code === 'ENOENT' ? 'No such file or directory' : e.message}`);
}
let status = 0;
try {
  const { runScript } = await import(cli.href);
  for (const r of runScript(text)) {
    if (r.stdout !== '') process.stdout.write(`${r.stdout}\n`);
    if (r.stderr !== '') process.stderr.write(`${r.stderr}\n`);
    if (r.status !== 0) status = r.status;
  }
} catch (e) {
  fail(e instanceof Error ? e.message : String(e));
}
process.exit(status);
