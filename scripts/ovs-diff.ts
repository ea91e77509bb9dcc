// npm run ovs-diff -- [--real] [--sim] [--record DIR] [--cached DIR] [--quiet] SCRIPT.ovs...
// Runs differential-corpus scripts against a private real Open vSwitch 3.1 and against ovs-sim
// and prints, command by command, where they differ (after the normalization the tests apply).
//   --real         print real OVS's raw output of every command (to write a new script)
//   --sim          print the simulator's raw output
//   --record DIR   run real OVS only and keep its outputs in DIR (one JSON file per script)
//   --cached DIR   compare the simulator with outputs recorded in DIR (no OVS needed)
// Exit status 1 when a script differs.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { words } from '../ovs-sim/index.js';
import { type Outcome, compareOutputs, scriptLines } from '../test/helpers/ovs-compare.js';
import { ovsMissing, runOnRealOvs } from '../test/helpers/ovs-sandbox.js';

const args = process.argv.slice(2);
const opt = (name: string): string | null => (args.includes(name) ? args[args.indexOf(name) + 1] ?? null : null);
const showReal = args.includes('--real');
const showSim = args.includes('--sim');
const quiet = args.includes('--quiet');
const recordDir = opt('--record');
const cachedDir = opt('--cached');
const files = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--record' && args[i - 1] !== '--cached');

if (!cachedDir) {
  const missing = await ovsMissing();
  if (missing) {
    console.error(missing);
    process.exit(2);
  }
}

/** A small line diff: `-` real only, `+` simulator only, ` ` both. */
function lineDiff(a: string[], b: string[]): string {
  const n = a.length;
  const m = b.length;
  const L: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) L[i]![j] = a[i] === b[j] ? L[i + 1]![j + 1]! + 1 : Math.max(L[i + 1]![j]!, L[i]![j + 1]!);
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { out.push(`  ${a[i]}`); i++; j++; }
    else if (j < m && (i >= n || L[i]![j + 1]! >= L[i + 1]![j]!)) { out.push(`+ ${b[j]}`); j++; }
    else { out.push(`- ${a[i]}`); i++; }
  }
  return out.join('\n');
}

let differs = 0;
let same = 0;
for (const file of files) {
  // File arguments (add-flows, replace-flows, ...) are relative to the script's folder.
  const cwd = dirname(resolve(file));
  const lines = scriptLines(readFileSync(file, 'utf8'));
  let real: Outcome[];
  if (cachedDir) {
    real = JSON.parse(readFileSync(join(cachedDir, `${basename(file)}.json`), 'utf8')) as Outcome[];
  } else {
    real = await runOnRealOvs(lines, cwd);
  }
  if (recordDir) {
    mkdirSync(recordDir, { recursive: true });
    writeFileSync(join(recordDir, `${basename(file)}.json`), `${JSON.stringify(real, null, 1)}\n`);
    console.log(`recorded: ${file}`);
    continue;
  }
  // The simulator is loaded only when it is compared or shown, so --real works while it is broken.
  const { SimSwitch } = showReal && !showSim ? { SimSwitch: null } : await import('../ovs-sim/index.js');
  const sim = SimSwitch ? new SimSwitch({ cwd }) : null;
  let bad = 0;
  lines.forEach((line, i) => {
    const r = real[i]!;
    const ours = sim ? sim.run(line) : { stdout: '', stderr: '', status: 0 };
    if (showReal || showSim) {
      console.log(`$ ${line}`);
      if (showReal) console.log(`${r.stdout}${r.stderr ? `\n[stderr] ${r.stderr}` : ''}${r.status ? `\n[exit ${r.status}]` : ''}`);
      if (showSim) console.log(`${ours.stdout}${ours.stderr ? `\n[stderr] ${ours.stderr}` : ''}${ours.status ? `\n[exit ${ours.status}]` : ''}`);
      return;
    }
    for (const c of compareOutputs(words(line), r, ours)) {
      if (JSON.stringify(c.real) === JSON.stringify(c.ours)) continue;
      bad += 1;
      if (quiet) continue;
      console.log(`--- ${file}: ${c.what} of: ${line}`);
      if (Array.isArray(c.real) && Array.isArray(c.ours)) console.log(lineDiff(c.real as string[], c.ours as string[]));
      else {
        console.log(`real: ${typeof c.real === 'string' ? c.real : JSON.stringify(c.real, null, 1)}`);
        console.log(`sim:  ${typeof c.ours === 'string' ? c.ours : JSON.stringify(c.ours, null, 1)}`);
      }
    }
  });
  if (!showReal && !showSim) console.log(`${bad === 0 ? 'same' : `DIFFERS (${bad})`}: ${file}`);
  if (bad > 0) differs += 1;
  else same += 1;
}
if (!showReal && !showSim && !recordDir) console.log(`${same} same, ${differs} differ`);
process.exit(differs > 0 ? 1 : 0);
