// Differential proof: every script of test/diff/ runs against a private real Open vSwitch 3.1
// (dummy datapath, a fresh sandbox per script) and against ovs-sim; every command's exit status,
// stderr and stdout must agree, after the one normalization in test/ovs-sim-compare.ts.
// Where OVS is missing the comparisons are skipped with a printed reason.
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { SimSwitch } from '../ovs-sim/cli.js';
import { words } from '../ovs-sim/words.js';
import { compareOutputs, scriptLines } from './ovs-sim-compare.js';
import { ovsMissing, runOnRealOvs } from './helpers/ovs-sandbox.js';

const dir = fileURLToPath(new URL('./diff/', import.meta.url));
const scripts = readdirSync(dir).filter((f) => f.endsWith('.ovs')).sort();
const missing = await ovsMissing();
if (missing) console.log(`ovs-sim-diff: ${missing}`);

test('the corpus has at least 150 scripts', (t) => {
  t.true(scripts.length >= 150, `${scripts.length} scripts`);
});

// At most this many sandboxes at once: each is an ovsdb-server and an ovs-vswitchd, and the
// machine has 2 cores.
const SLOTS = 3;
let free = SLOTS;
const waiting: (() => void)[] = [];
async function slot<T>(f: () => Promise<T>): Promise<T> {
  if (free === 0) await new Promise<void>((r) => waiting.push(r));
  else free -= 1;
  try {
    return await f();
  } finally {
    const next = waiting.shift();
    if (next) next();
    else free += 1;
  }
}

for (const name of scripts) {
  (missing ? test.skip : test)(`same as OVS 3.1: ${name}`, async (t) => {
    const lines = scriptLines(readFileSync(`${dir}${name}`, 'utf8'));
    const real = await slot(() => runOnRealOvs(lines, dir));
    const sim = new SimSwitch({ cwd: dir });
    lines.forEach((line, i) => {
      const ours = sim.run(line);
      for (const c of compareOutputs(words(line), real[i]!, ours)) t.deepEqual(c.ours, c.real, `${c.what} of: ${line}`);
    });
  });
}
