// Differential proof: every script of test/diff/ runs against a private real Open vSwitch 3.1
// (dummy datapath) and against ovs-sim; each command's output must agree, after the one
// normalization in test/helpers/ovs-compare.ts. Where OVS is missing the test is skipped with
// a printed reason.
import { readFileSync, readdirSync } from 'node:fs';
import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import { SimSwitch, words } from '../ovs-sim/cli.js';
import { dumpLines, finalFlow, traceSteps } from './helpers/ovs-compare.js';
import { ovsMissing, startSandbox } from './helpers/ovs-sandbox.js';

const dir = new URL('./diff/', import.meta.url);
const scripts = readdirSync(dir).filter((f) => f.endsWith('.ovs')).sort();
const missing = await ovsMissing();
if (missing) console.log(`ovs-sim-diff: ${missing}`);

function compare(cmd: string[], real: string, ours: string): { what: string; real: unknown; ours: unknown }[] {
  if (cmd.includes('dump-flows')) return [{ what: 'dump-flows', real: dumpLines(real), ours: dumpLines(ours) }];
  if (cmd.includes('ofproto/trace')) {
    const out: { what: string; real: unknown; ours: unknown }[] = [{ what: 'trace steps', real: traceSteps(real), ours: traceSteps(ours) }];
    if (!/tunnel/.test(real)) out.push({ what: 'final flow', real: finalFlow(real), ours: finalFlow(ours) });
    return out;
  }
  return [{ what: 'output', real: real.trim(), ours: ours.trim() }];
}

test('the corpus has scripts', (t) => {
  t.true(scripts.length >= 50, `${scripts.length} scripts`);
});

async function runScript(t: ExecutionContext, name: string): Promise<void> {
  const lines = readFileSync(new URL(name, dir), 'utf8').split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
  const sim = new SimSwitch();
  const sb = await startSandbox();
  try {
    for (const line of lines) {
      const argv = words(line);
      const real = await execa(argv[0]!, argv.slice(1), { env: sb.env, reject: false });
      const ours = sim.run(line);
      t.is(ours.status === 0, real.exitCode === 0, `${name}: exit status of: ${line}\nOVS: ${real.stderr}\nsim: ${ours.stderr}`);
      for (const c of compare(argv, real.stdout, ours.stdout)) t.deepEqual(c.ours, c.real, `${name}: ${c.what} of: ${line}`);
    }
  } finally {
    await sb.stop();
  }
}

// A few groups run side by side, each script in its own sandbox one after another: a sandbox
// per script at once would be dozens of vswitchd processes on a 2-core machine.
const GROUPS = 4;
for (let g = 0; g < GROUPS; g++) {
  const mine = scripts.filter((_, i) => i % GROUPS === g);
  (missing ? test.skip : test)(`diff against OVS 3.1: ${mine.join(', ')}`, async (t) => {
    for (const name of mine) await runScript(t, name);
  });
}
