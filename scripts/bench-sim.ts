// npm run bench:sim [-- --flows 100000]
// The simulator's classifier with a table of mixed masks (a Neutron-like br-tun mix and a
// security-group-like mix): insertions per second, lookups per second on one core, bytes per
// flow; and real OVS installing the same flows with `ovs-ofctl --bundle add-flows` when it is
// installed. Targets (issue 3): ≥ 1,000,000 lookups/s, ≥ 500,000 inserts/s, ≤ 400 B per flow
// (real OVS: about 1.46 KB per flow). The same flows also go the way the agent's `sim` dataplane
// sends them: its Flow objects compiled to flow mods (dataplane/backends/sim.ts, its compiler) and
// applied in one bundle (applyBundle), with no text at all.
import { writeFileSync } from 'node:fs';
import { emptyChanges } from '../dataplane/backend.js';
import { SimFlowCompiler } from '../dataplane/backends/sim.js';
import { ETH_TYPE, IP_PROTO } from '../dataplane/fields.js';
import { type Flow as DpFlow, canonicalMatch, eq, masked } from '../dataplane/flow.js';
import { applyBundle, Bridge, type Flow, newFlow, parseFlowMod, setMac, setWords, W } from '../ovs-sim/index.js';
import { ovsMissing, startSandbox } from '../test/helpers/ovs-sandbox.js';
import { collectFully, heldBytes } from './bench-memory.js';

const args = process.argv.slice(2);
const N = Number(args.includes('--flows') ? args[args.indexOf('--flows') + 1] : 100_000);
const hex = (n: number, w: number): string => n.toString(16).padStart(w, '0');
const mac = (i: number): string => `fa:16:${hex((i >> 24) & 255, 2)}:${hex((i >> 16) & 255, 2)}:${hex((i >> 8) & 255, 2)}:${hex(i & 255, 2)}`;
const ip = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

/** Half br-tun-like (unicast per MAC+VNI, VNI → local), half SG-like (prefixes and ports). */
function flowLines(n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    switch (i % 4) {
      case 0: out.push(`table=20,priority=100,metadata=${1 + (i % 500)},dl_dst=${mac(i)} actions=set_field:${1 + (i % 500)}->tun_id,set_field:${ip(i)}->tun_dst,output:4097`); break;
      case 1: out.push(`table=4,priority=1,tun_id=${i} actions=set_field:${i}->metadata,resubmit(,20)`); break;
      case 2: out.push(`table=30,priority=${100 + (i % 32)},tcp,nw_src=${ip(i & ~255)}/24,tp_dst=${1 + (i % 60000)} actions=resubmit(,40)`); break;
      default: out.push(`table=30,priority=${50 + (i % 16)},reg6=${i % 4096},ip,nw_dst=${ip(i)} actions=resubmit(,40)`); break;
    }
  }
  return out;
}

/** The same flows as the agent's dataplane model holds them. */
function dataplaneFlows(n: number): DpFlow[] {
  const out: DpFlow[] = [];
  const macBig = (i: number): bigint => BigInt(`0x${mac(i).replace(/:/g, '')}`);
  const ipNum = (i: number): number => ((10 << 24) | (i & 0xffffff)) >>> 0;
  for (let i = 0; i < n; i++) {
    const f = (table: number, priority: number, match: Parameters<typeof canonicalMatch>[0], actions: DpFlow['actions']): DpFlow => ({ table, priority, match: canonicalMatch(match), actions, cookie: 0n });
    switch (i % 4) {
      case 0: out.push(f(20, 100, [eq('metadata', 1 + (i % 500)), eq('dl_dst', macBig(i))], [
        { type: 'set_field', field: 'tun_id', value: BigInt(1 + (i % 500)) }, { type: 'set_field', field: 'tun_dst', value: BigInt(ipNum(i)) }, { type: 'output', port: 4097 }])); break;
      case 1: out.push(f(4, 1, [eq('tun_id', i)], [{ type: 'set_field', field: 'metadata', value: BigInt(i) }, { type: 'resubmit', table: 20 }])); break;
      case 2: out.push(f(30, 100 + (i % 32), [eq('dl_type', ETH_TYPE.ip), eq('nw_proto', IP_PROTO.tcp), masked('nw_src', ipNum(i & ~255), 0xffffff00), eq('tp_dst', 1 + (i % 60000))], [{ type: 'resubmit', table: 40 }])); break;
      default: out.push(f(30, 50 + (i % 16), [eq('reg6', i % 4096), eq('dl_type', ETH_TYPE.ip), eq('nw_dst', ipNum(i))], [{ type: 'resubmit', table: 40 }])); break;
    }
  }
  return out;
}

/** The agent's path: compile and apply in one bundle; returns seconds and the bridge's rule count. */
function compiledPath(flows: DpFlow[]): { s: number; rules: number } {
  const b = new Bridge('br0');
  const changes = emptyChanges();
  for (const f of flows) changes.add.push(f);
  const t0 = performance.now();
  applyBundle(b, new SimFlowCompiler().bundle(changes));
  return { s: (performance.now() - t0) / 1000, rules: b.flows().length };
}

const lines = flowLines(N);
await collectFully();
// The heap and the typed arrays' memory outside it (the classifier's columns live there).
const heapBefore = heldBytes();
let t = performance.now();
const mods = lines.map((l) => parseFlowMod(l, 'add'));
const parseS = (performance.now() - t) / 1000;
const bridge = new Bridge('br0');
t = performance.now();
// One bundle of all the adds, as `ovs-ofctl --bundle add-flows` sends them.
bridge.bundle(mods);
const insertS = (performance.now() - t) / 1000;
mods.length = 0;
await collectFully();
// Everything the bridge holds for its flows: parsed matches and actions, and the tables.
const bytesPerFlow = (heldBytes() - heapBefore) / N;

// Lookups: packets that hit the table-20 and table-30 flows, and misses.
const packets: Flow[] = [];
for (let i = 0; i < 10_000; i++) {
  const k = (i * 7919) % N;
  const p = newFlow();
  p[W.in_port] = 1;
  setWords(p, W.metadata, 2, BigInt(1 + (k % 500)));
  setMac(p, W.dl_dst, Number(`0x${mac(k).replace(/:/g, '')}`));
  p[W.dl_type] = 0x0800;
  p[W.nw_proto] = 6;
  p[W.nw_src] = ((10 << 24) | (k & 0xffff00)) >>> 0;
  p[W.nw_dst] = ((10 << 24) | k) >>> 0;
  p[W.tp_dst] = 1 + (k % 60000);
  p[W.regs + 6] = k % 4096;
  packets.push(p);
}
const tables = [bridge.table(20), bridge.table(30), bridge.table(4)];
let hits = 0;
const rounds = 30;
t = performance.now();
for (let r = 0; r < rounds; r++) for (const p of packets) for (const tb of tables) if (tb.lookup(p)) hits++;
const lookups = rounds * packets.length * tables.length;
const lookupS = (performance.now() - t) / 1000;

console.log(`# bench:sim (${new Date().toISOString()}, node ${process.version}), ${N.toLocaleString('en')} flows in 3 tables of mixed masks\n`);
console.log('| measure | simulator | target | real OVS 3.1 |');
console.log('|---|---|---|---|');
let ovsInsert = '';
if (!(await ovsMissing())) {
  const sb = await startSandbox();
  try {
    await sb.vsctl('add-br', 'br0', '--', 'set', 'bridge', 'br0', 'datapath_type=dummy', 'fail-mode=secure');
    writeFileSync(`${sb.dir}/f.txt`, `${lines.join('\n')}\n`);
    const t0 = performance.now();
    await sb.ofctl('-O', 'OpenFlow13', '--bundle', 'add-flows', 'br0', `${sb.dir}/f.txt`);
    const s = (performance.now() - t0) / 1000;
    ovsInsert = `${Math.round(N / s).toLocaleString('en')} /s (--bundle add-flows, ${s.toFixed(2)} s)`;
  } finally {
    await sb.stop();
  }
} else {
  ovsInsert = 'OVS not installed';
}
console.log(`| inserts (parsed adds applied in one bundle: flow-mod checks, classifier insert) | ${Math.round(N / insertS).toLocaleString('en')} /s | ≥ 500,000 /s | |`);
console.log(`| parse + insert (text flows in, as add-flows does) | ${Math.round(N / (parseS + insertS)).toLocaleString('en')} /s | | ${ovsInsert} |`);
const dpFlows = dataplaneFlows(N);
// Best of two, each on a fresh bridge and compiler (the first run also warms the compiler's code).
const compiled = [compiledPath(dpFlows), compiledPath(dpFlows)].sort((a, b) => a.s - b.s)[0]!;
if (compiled.rules !== N) throw new Error(`compiled path installed ${compiled.rules} rules of ${N}`);
console.log(`| compiled path (the agent's sim dataplane: Flow objects compiled to flow mods, one applyBundle) | ${Math.round(N / compiled.s).toLocaleString('en')} /s | ≥ 500,000 /s | |`);
console.log(`| lookups on one core (${hits.toLocaleString('en')} hits of ${lookups.toLocaleString('en')}) | ${Math.round(lookups / lookupS).toLocaleString('en')} /s | ≥ 1,000,000 /s | |`);
console.log(`| memory per flow (parsed flows and tables: heap and typed arrays)${global.gc ? '' : ' (run with --expose-gc for an exact figure)'} | ${Math.round(bytesPerFlow)} B | ≤ 400 B | about 1,460 B |`);
