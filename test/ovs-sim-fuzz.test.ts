// No input crashes the simulator: every command line, file and packet either works or fails as
// the real tool fails (a message and an exit status), never with an exception. The inputs are
// the differential corpus (test/diff/) with one command line, or one line of a file it reads,
// mutated at random: characters deleted, inserted, repeated, numbers replaced by edge values,
// tokens swapped, lines cut short. fast-check's runs are reproducible from the printed seed.
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import fc from 'fast-check';
import { SimSwitch } from '../ovs-sim/index.js';
import { scriptLines } from './helpers/ovs-compare.js';

const dir = fileURLToPath(new URL('./diff/', import.meta.url));
const scripts = readdirSync(dir).filter((f) => f.endsWith('.ovs')).sort().map((f) => ({ name: f, lines: scriptLines(readFileSync(join(dir, f), 'utf8')) }));
const files = readdirSync(join(dir, 'files')).sort().map((f) => ({ name: f, text: readFileSync(join(dir, 'files', f), 'utf8') }));

const SEED = Number(process.env.OVS_SIM_FUZZ_SEED ?? 20261203);
const RUNS = Number(process.env.OVS_SIM_FUZZ_RUNS ?? 1500);

/** Characters the parsers give meaning to, and some they do not expect. */
const CHARS = [...',=()[]{}:/-.> \'"\\\t#*0123456789abcdefxXABCDEF_', 'é', '\u0000'];
const NUMBERS = ['0', '-1', '65535', '65536', '4294967295', '4294967296', '0xffffffffffffffff', '0x10000000000000000', '99999999999999999999', '1e9', '0x', '-0', '255', '256', '4095', '4096', '32', '33', '64', '128', 'NaN'];

type Mutation =
  | { kind: 'delete'; at: number; len: number }
  | { kind: 'insert'; at: number; text: string }
  | { kind: 'repeat'; at: number; len: number }
  | { kind: 'number'; which: number; value: string }
  | { kind: 'swap'; a: number; b: number }
  | { kind: 'cut'; at: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 12 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.array(fc.constantFrom(...CHARS), { minLength: 1, maxLength: 4 }).map((a) => a.join('')) }),
  fc.record({ kind: fc.constant('repeat' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('number' as const), which: fc.nat(), value: fc.constantFrom(...NUMBERS) }),
  fc.record({ kind: fc.constant('swap' as const), a: fc.nat(), b: fc.nat() }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
);

function mutate(s: string, m: Mutation): string {
  const at = (n: number): number => (s.length === 0 ? 0 : n % (s.length + 1));
  switch (m.kind) {
    case 'delete': { const i = at(m.at); return s.slice(0, i) + s.slice(i + m.len); }
    case 'insert': { const i = at(m.at); return s.slice(0, i) + m.text + s.slice(i); }
    case 'repeat': { const i = at(m.at); return s.slice(0, i) + s.slice(i, i + m.len) + s.slice(i); }
    case 'cut': return s.slice(0, at(m.at));
    case 'number': {
      const nums = [...s.matchAll(/\d+/g)];
      if (nums.length === 0) return s + m.value;
      const n = nums[m.which % nums.length]!;
      return s.slice(0, n.index) + m.value + s.slice(n.index + n[0].length);
    }
    case 'swap': {
      // Two of the line's `,`/space-separated tokens trade places.
      const parts = s.split(/([, ])/);
      const tokens = parts.map((p, i) => i).filter((i) => i % 2 === 0);
      if (tokens.length < 2) return s;
      const a = tokens[m.a % tokens.length]!;
      const b = tokens[m.b % tokens.length]!;
      [parts[a], parts[b]] = [parts[b]!, parts[a]!];
      return parts.join('');
    }
  }
}

/** A stack trace or an internal error in what a command printed is a crash too. */
function crashed(text: string): boolean {
  return /\n\s+at .+:\d+:\d+|TypeError|RangeError|ReferenceError|SyntaxError: |Maximum call stack|undefined is not|Cannot read properties/.test(text);
}

/** Run a script on a fresh simulator; the first exception or crash-looking output, if any. */
function runAll(lines: string[], cwd: string): string | null {
  const sim = new SimSwitch({ cwd });
  for (const line of lines) {
    let r;
    try {
      r = sim.run(line);
    } catch (e) {
      return `${line}\n  threw ${e instanceof Error ? e.stack : String(e)}`;
    }
    if (crashed(r.stderr) || crashed(r.stdout)) return `${line}\n  printed ${r.stderr}${r.stdout}`;
  }
  return null;
}

test('the corpus itself runs without a crash', (t) => {
  for (const s of scripts) t.is(runAll(s.lines, dir), null, s.name);
});

test(`no crash on mutated command lines (${RUNS} scripts, seed ${SEED})`, (t) => {
  console.log(`ovs-sim-fuzz: command lines, seed ${SEED}, ${RUNS} runs (OVS_SIM_FUZZ_SEED / OVS_SIM_FUZZ_RUNS to change)`);
  const arb = fc.record({
    script: fc.nat(scripts.length - 1),
    line: fc.nat(),
    mutations: fc.array(mutation, { minLength: 1, maxLength: 3 }),
    setup: fc.nat(7),
  });
  const result = fc.check(fc.property(arb, ({ script, line, mutations, setup }) => {
    const lines = [...scripts[script]!.lines];
    // Mostly a line after the script's setup (its first ovs-ofctl/ovs-appctl line or later),
    // sometimes any line, ovs-vsctl ones included.
    const first = setup === 0 ? 0 : Math.max(0, lines.findIndex((l) => !l.startsWith('ovs-vsctl')));
    const i = first + (line % Math.max(1, lines.length - first));
    lines[i] = mutations.reduce(mutate, lines[i] ?? '');
    const problem = runAll(lines, dir);
    if (problem) throw new Error(`${scripts[script]!.name}: ${problem}`);
  }), { seed: SEED, numRuns: RUNS });
  t.false(result.failed, result.failed ? `${fc.defaultReportMessage(result) ?? ""}\n${result.errorInstance instanceof Error ? result.errorInstance.message : String(result.errorInstance)}` : "");
});

test(`no crash on mutated files and setup lines (${Math.ceil(RUNS / 3)} scripts, seed ${SEED})`, (t) => {
  const work = mkdtempSync(join(tmpdir(), 'ovs-sim-fuzz-'));
  try {
    cpSync(dir, work, { recursive: true });
    const arb = fc.record({
      file: fc.nat(files.length - 1),
      line: fc.nat(),
      mutations: fc.array(mutation, { minLength: 1, maxLength: 3 }),
      setup: fc.boolean(),
    });
    const users = (name: string): typeof scripts => scripts.filter((s) => s.lines.some((l) => l.includes(`files/${name}`)));
    const result = fc.check(fc.property(arb, ({ file, line, mutations, setup }) => {
      const f = files[file]!;
      const texts = f.text.split('\n');
      const i = line % texts.length;
      texts[i] = mutations.reduce(mutate, texts[i]!);
      writeFileSync(join(work, 'files', f.name), texts.join('\n'));
      try {
        for (const s of users(f.name)) {
          const lines = [...s.lines];
          // Sometimes the bridge and ports are the mutated part.
          if (setup) lines[line % lines.length] = mutations.reduce(mutate, lines[line % lines.length]!);
          const problem = runAll(lines, work);
          if (problem) throw new Error(`${s.name} with files/${f.name} line ${i + 1} as ${JSON.stringify(texts[i])}: ${problem}`);
        }
      } finally {
        writeFileSync(join(work, 'files', f.name), f.text);
      }
    }), { seed: SEED, numRuns: Math.ceil(RUNS / 3) });
    t.false(result.failed, result.failed ? `${fc.defaultReportMessage(result) ?? ""}\n${result.errorInstance instanceof Error ? result.errorInstance.message : String(result.errorInstance)}` : "");
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test(`no crash on random packets traced and sent out (${RUNS} packets, seed ${SEED})`, (t) => {
  const setup = [
    'ovs-vsctl add-br br0 -- set bridge br0 datapath_type=dummy fail-mode=secure',
    'ovs-vsctl add-port br0 p1 -- set interface p1 type=dummy ofport_request=1',
    'ovs-vsctl add-port br0 p2 -- set interface p2 type=dummy ofport_request=2',
    'ovs-ofctl add-flow br0 "table=0,priority=10,ip actions=ct(table=1,zone=3,nat)"',
    'ovs-ofctl add-flow br0 "table=0,priority=5 actions=learn(table=2,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),resubmit(,1)"',
    'ovs-ofctl add-flow br0 "table=1,priority=1,ct_state=+new+trk,ip actions=ct(commit,zone=3,nat(src=10.0.0.1-10.0.0.9:100-200)),output:2"',
    'ovs-ofctl add-flow br0 "table=1,priority=0 actions=dec_ttl,mod_nw_tos:8,push_vlan:0x8100,set_field:5->vlan_vid,output:2,pop_vlan,NORMAL"',
  ];
  // A real frame (Ethernet/IPv4/TCP) to mutate, and wholly random bytes.
  const base = 'ffffffffffff0000000000050800450000280001000040067ccd0a0000050a00000104d20050000000000000000050022000e0e00000';
  const arb = fc.oneof(
    fc.array(mutation, { minLength: 1, maxLength: 4 }).map((ms) => ms.reduce(mutate, base)),
    fc.uint8Array({ maxLength: 120 }).map((b) => Buffer.from(b).toString('hex')),
  );
  const result = fc.check(fc.property(arb, (hex) => {
    const lines = [...setup, `ovs-appctl ofproto/trace br0 in_port=1 ${hex}`, `ovs-ofctl packet-out br0 1 output:2 ${hex}`, `ovs-appctl ofproto/trace br0 in_port=1 ${hex}`];
    const problem = runAll(lines, dir);
    if (problem) throw new Error(problem);
  }), { seed: SEED, numRuns: RUNS });
  t.false(result.failed, result.failed ? `${fc.defaultReportMessage(result) ?? ""}\n${result.errorInstance instanceof Error ? result.errorInstance.message : String(result.errorInstance)}` : "");
});
