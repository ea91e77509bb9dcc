// Differential proof: every script of test/diff/ runs against ovs-sim and its outputs are
// compared with real Open vSwitch 3.1's, command by command (exit status, stderr and stdout, after
// the one normalization in test/ovs-sim-compare.ts). Real OVS's outputs are recorded in
// test/diff/recorded/ (`npm run ovs-diff -- --record test/diff/recorded test/diff/X.ovs`), so
// the comparison runs on any machine. Where OVS is installed, each script also runs against a
// fresh private OVS sandbox (dummy datapath) and the test fails if the recording is stale.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { SimSwitch, words } from '../ovs-sim/index.js';
import { type Outcome, compareOutputs, scriptLines } from './helpers/ovs-compare.js';
import { ovsMissing, runOnRealOvs } from './helpers/ovs-sandbox.js';

const dir = fileURLToPath(new URL('./diff/', import.meta.url));
const recorded = `${dir}recorded/`;
const scripts = readdirSync(dir).filter((f) => f.endsWith('.ovs')).sort();
const missing = await ovsMissing();
console.log(`ovs-sim-diff: ${missing ? `${missing}; comparing with the recordings only` : 'comparing with the recordings and with a real OVS sandbox per script'}`);

test('the corpus has at least 150 scripts, each with a recording', (t) => {
  t.true(scripts.length >= 150, `${scripts.length} scripts`);
  const unrecorded = scripts.filter((s) => !existsSync(`${recorded}${s}.json`));
  t.deepEqual(unrecorded, [], 'record them: npm run ovs-diff -- --record test/diff/recorded test/diff/NAME.ovs');
  const orphans = readdirSync(recorded).filter((f) => !scripts.includes(f.replace(/\.json$/, '')));
  t.deepEqual(orphans, [], 'recordings without a script');
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

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

for (const name of scripts) {
  test(`same as OVS 3.1: ${name}`, async (t) => {
    const lines = scriptLines(readFileSync(`${dir}${name}`, 'utf8'));
    const path = `${recorded}${name}.json`;
    if (!existsSync(path)) {
      t.fail(`no recording of real OVS's outputs: npm run ovs-diff -- --record test/diff/recorded test/diff/${name}`);
      return;
    }
    const rec = JSON.parse(readFileSync(path, 'utf8')) as Outcome[];
    t.is(rec.length, lines.length, `the recording has ${rec.length} outcomes for ${lines.length} command lines: re-record it`);
    if (!missing) {
      // The recording must still be what real OVS prints for this script.
      const real = await slot(() => runOnRealOvs(lines, dir));
      const stale = lines.flatMap((line, i) => compareOutputs(words(line), real[i]!, rec[i] ?? { stdout: '', stderr: '', status: -1 })
        .filter((c) => !same(c.real, c.ours)).map((c) => `${c.what} of: ${line}`));
      t.deepEqual(stale, [], `stale recording (re-record: npm run ovs-diff -- --record test/diff/recorded test/diff/${name})`);
    }
    const sim = new SimSwitch({ cwd: dir });
    lines.forEach((line, i) => {
      const ours = sim.run(line);
      for (const c of compareOutputs(words(line), rec[i]!, ours)) t.deepEqual(c.ours, c.real, `${c.what} of: ${line}`);
    });
  });
}
