// The simulator's classifier keeps plain rules in columns (ovs-sim/switch/classifier.ts): a
// differential property test against a plain list of rules, and what callers see of the columns
// (copies of plain rules, one kept object for a rule a packet hit, counters on it).
import test from 'ava';
import fc from 'fast-check';
import { Bridge, Fabric, OfError, SimVm, applyBundle, flowModFromText } from '../ovs-sim/index.js';
import { FLOW_WORDS, type Flow, W } from '../ovs-sim/base/flow.js';
import { Classifier } from '../ovs-sim/switch/classifier.js';
import { Rule } from '../ovs-sim/switch/rule.js';

/** Two masks over two words: one subtable matches both words, the other the first only. */
const WORD_A = W.nw_src;
const WORD_B = W.nw_dst;
const masks: Flow[] = [new Uint32Array(FLOW_WORDS), new Uint32Array(FLOW_WORDS)];
masks[0]![WORD_A] = 0xffffffff;
masks[0]![WORD_B] = 0xff;
masks[1]![WORD_A] = 0xffff0000;

interface Ref { shape: number; a: number; b: number; priority: number; cookie: bigint; serial: number }

const flowOf = (a: number, b: number): Flow => {
  const f = new Uint32Array(FLOW_WORDS);
  f[WORD_A] = a;
  f[WORD_B] = b;
  return f;
};

const covers = (r: Ref, a: number, b: number): boolean =>
  r.shape === 0 ? r.a === a >>> 0 && (r.b & 0xff) === (b & 0xff) : ((r.a & 0xffff0000) >>> 0) === ((a & 0xffff0000) >>> 0);

function ruleOf(cls: Classifier, r: Ref): Rule {
  const st = cls.subtableFor(masks[r.shape]!);
  const rule = new Rule(3, r.priority, r.cookie, [], 0, 0, 0, 0);
  rule.subtable = st;
  rule.vals = Classifier.valsOf(st, flowOf(r.a, r.b));
  rule.created = r.serial;
  return rule;
}

/** What a rule handed out says, in the reference's terms. */
const seen = (r: Rule): string => `${r.table}/${r.priority}/${r.cookie}/${r.created}/${r.match().flow[WORD_A]}/${r.match().flow[WORD_B]}`;
const expected = (r: Ref): string => {
  const m = masks[r.shape]!;
  return `3/${r.priority}/${r.cookie}/${r.serial}/${(r.a & m[WORD_A]!) >>> 0}/${(r.b & m[WORD_B]!) >>> 0}`;
};

// Small domains: many rules share values (with other priorities), removals free slots, the
// columns grow and are squeezed, the index fills with removed entries and is made again.
const op = fc.oneof(
  // plain: put in from the flow's values (insertPlain, as a bridge's add of a plain rule does)
  // instead of as a Rule; by values: taken out by its values (removeValues, as a bundle's undo does).
  fc.record({ kind: fc.constant('add' as const), shape: fc.integer({ min: 0, max: 1 }), a: fc.integer({ min: 0, max: 5 }).map((x) => (x * 0x10001) >>> 0), b: fc.integer({ min: 0, max: 3 }), priority: fc.integer({ min: 0, max: 40 }), plain: fc.boolean() }),
  fc.record({ kind: fc.constant('remove' as const), pick: fc.nat(), byValues: fc.boolean() }),
  fc.record({ kind: fc.constant('lookup' as const), a: fc.integer({ min: 0, max: 6 }).map((x) => (x * 0x10001) >>> 0), b: fc.integer({ min: 0, max: 4 }) }),
);

test('columns: inserts, removals and lookups agree with a plain list of rules, in insertion order', (t) => {
  // Long runs (fast-check's default size stops at about 10): subtables grow past their first
  // columns, the index is made again, freed slots are squeezed out, a subtable empties and revives.
  fc.assert(fc.property(fc.array(op, { minLength: 20, maxLength: 600, size: 'max' }), (ops) => {
    const cls = new Classifier(3);
    let ref: Ref[] = [];
    let serial = 0;
    for (const o of ops) {
      if (o.kind === 'add') {
        const r: Ref = { shape: o.shape, a: o.a, b: o.b, priority: o.priority, cookie: BigInt(serial) << 40n, serial: serial++ };
        // As the bridge does: an add replaces the rule of the same match and priority.
        const same = ref.find((x) => x.shape === r.shape && x.priority === r.priority && expected(x).split('/').slice(4).join() === expected(r).split('/').slice(4).join());
        const st = cls.subtableFor(masks[r.shape]!);
        // insertPlain refuses to replace: the caller takes the long way then.
        if (o.plain) t.is(cls.insertPlain(st, flowOf(r.a, r.b), r.priority, r.cookie, [], r.serial), !same);
        if (same) {
          cls.remove(ruleOf(cls, same));
          ref = ref.filter((x) => x !== same);
        }
        if (!o.plain || same) cls.insert(ruleOf(cls, r));
        ref.push(r);
      } else if (o.kind === 'remove') {
        if (ref.length === 0) continue;
        const gone = ref[o.pick % ref.length]!;
        if (o.byValues) {
          const st = cls.subtableFor(masks[gone.shape]!);
          const values = new Uint32Array(st.idx.length + 2);
          st.copyValues(flowOf(gone.a, gone.b), values, 2);
          t.true(cls.removeValues(st, values, 2, gone.priority));
          t.false(cls.removeValues(st, values, 2, gone.priority), 'gone already');
        } else {
          t.true(cls.remove(ruleOf(cls, gone)));
        }
        ref = ref.filter((x) => x !== gone);
      } else {
        const hit = cls.lookup(flowOf(o.a, o.b));
        const want = ref.filter((r) => covers(r, o.a, o.b)).sort((x, y) => y.priority - x.priority);
        if (want.length === 0) t.is(hit, undefined);
        // Two rules of equal priority in different subtables both matching: either may win.
        else t.true(hit !== undefined && want.some((w) => w.priority === want[0]!.priority && expected(w) === seen(hit)), `lookup ${o.a},${o.b}`);
      }
      t.is(cls.size, ref.length);
    }
    // Every rule, each subtable's in insertion order (subtables in order of creation).
    const order = [0, 1].flatMap((shape) => ref.filter((r) => r.shape === shape));
    const live = order.filter((r) => ref.includes(r));
    t.deepEqual([...cls.rules()].map(seen).sort(), live.map(expected).sort());
    for (const shape of [0, 1]) {
      const st = cls.subtableFor(masks[shape]!);
      t.deepEqual([...cls.rules()].filter((r) => r.subtable === st).map(seen), ref.filter((r) => r.shape === shape).map(expected));
    }
  }), { numRuns: 150 });
});

test('a plain rule is handed out as a copy; a rule a packet hits is kept, with its counters', (t) => {
  const host = new Fabric().addHost('hv', '10.0.0.11');
  const b = host.addBridge('br0');
  const vm = new SimVm('vm', '00:00:00:00:00:01', '10.0.0.1');
  const port = host.plug('br0', vm, 'p1');
  // Through the no-text API, as the agent's sim backend adds flows (ovs-ofctl's add-flow sets
  // reset_counts, a flag: such a rule is kept as an object).
  const mods = ['10.0.0.5', '10.0.0.6'].map((ip) => flowModFromText(b, `add table=0,priority=10,in_port=${port},ip,nw_dst=${ip},actions=drop`));
  applyBundle(b, { flows: mods, groups: [], meters: [], groupDeletes: [], meterDeletes: [] });
  t.true(b.flows().every((r) => r.isPlain()), 'plain rules, kept in columns');
  const [a1] = b.flows();
  const [a2] = b.flows();
  t.not(a1, a2, 'a plain rule comes out as a new copy each time');
  t.is(seen(a1!), seen(a2!));
  a1!.priority = 99;
  t.deepEqual(b.flows().map((r) => r.priority), [10, 10], 'changing a copy changes nothing in the table');
  for (let i = 0; i < 2; i++) vm.sendUdp('10.0.0.5', '00:00:00:00:00:02', 1000, 2000, new Uint8Array(4));
  host.fabric.run();
  const counted = b.flows().filter((r) => r.nPackets > 0);
  t.is(counted.length, 1, 'one rule was hit');
  t.is(counted[0]!.nPackets, 2);
  t.regex(b.formatRule(counted[0]!, { version: 10, stats: true }), /n_packets=2,.*nw_dst=10\.0\.0\.5/);
  t.is(b.flows().find((r) => r.nPackets > 0), counted[0], 'the hit rule is one object, the same each time');
  t.false(counted[0]!.isPlain(), 'it has counters now');
});

test('a rule added as the index is made again, then deleted, leaves nothing behind (found in review)', (t) => {
  const b = new Bridge('br0');
  const bundle = (lines: string[]): void => applyBundle(b, { flows: lines.map((l) => flowModFromText(b, l)), groups: [], meters: [], groupDeletes: [], meterDeletes: [] });
  bundle(['add table=0,priority=1,actions=output:9']);
  // The fifth rule of a subtable is the one added when its index is made again.
  bundle([1, 2, 3, 4, 5].map((i) => `add table=0,priority=10,ip,nw_dst=10.0.0.${i},actions=output:${i}`));
  bundle(['delete_strict table=0,priority=10,ip,nw_dst=10.0.0.5']);
  const f = new Uint32Array(FLOW_WORDS);
  f[W.dl_type] = 0x800;
  f[W.nw_dst] = 0x0a000005;
  const hit = b.table(0).lookup(f);
  t.is(hit?.priority, 1, 'the catch-all answers');
  t.is(b.flows().length, 5);
  bundle(['add table=0,priority=10,ip,nw_dst=10.0.0.5,actions=output:5']);
  t.is(b.table(0).size, 6);
  bundle(['delete_strict table=0,priority=10,ip,nw_dst=10.0.0.5', ...[1, 2, 3].map((i) => `delete_strict table=0,priority=10,ip,nw_dst=10.0.0.${i}`)]);
  t.is(b.table(0).size, 2);
  t.deepEqual(b.flows().map((r) => r.priority).sort(), [1, 10], 'the .4 rule is still there');
  f[W.nw_dst] = 0x0a000004;
  t.is(b.table(0).lookup(f)?.priority, 10);
});

test('a failed bundle puts back a learned flow its delete removed twice over once (found in review)', (t) => {
  const b = new Bridge('br0');
  const mod = (line: string) => flowModFromText(b, line);
  applyBundle(b, { groups: [], meters: [], groupDeletes: [], meterDeletes: [], flows: [
    'add table=0,priority=5,actions=learn(table=10,cookie=0x5,delete_learned,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[])',
    'add table=10,cookie=0x5,priority=7,dl_dst=00:00:00:00:00:01,actions=drop',
  ].map(mod) });
  const before = b.flows().map((r) => `${r.table}/${r.priority}`).sort();
  // The delete selects both; removing the learn rule flushes the learned flow first. Then a flow
  // mod the switch refuses (a group it does not have) fails the whole bundle.
  const failing = ['delete table=255', 'add table=3,priority=1,actions=group:9'].map(mod);
  const e = t.throws(() => applyBundle(b, { flows: failing, groups: [], meters: [], groupDeletes: [], meterDeletes: [] }));
  t.true(e instanceof OfError && e.code === 'OFPBAC_BAD_OUT_GROUP', String(e));
  t.deepEqual(b.flows().map((r) => `${r.table}/${r.priority}`).sort(), before, 'each flow back once');
  t.is(b.table(10).size, 1);
});

test('a refused bundle leaves every table as it was, whatever it added, replaced and deleted before the refusal', (t) => {
  // Plain adds go into the columns without a Rule (their undo is a journal of values); replaces
  // and deletes the long way; the subtable grows and squeezes out freed slots mid-bundle.
  const mod = fc.oneof(
    fc.record({ kind: fc.constant('add' as const), ip: fc.integer({ min: 1, max: 40 }), priority: fc.constantFrom(10, 20), out: fc.integer({ min: 1, max: 3 }), idle: fc.constantFrom(0, 0, 0, 30) }),
    fc.record({ kind: fc.constant('delete' as const), ip: fc.integer({ min: 1, max: 40 }), priority: fc.constantFrom(10, 20) }),
  );
  const text = (m: { kind: 'add' | 'delete'; ip: number; priority: number; out?: number; idle?: number }): string => (m.kind === 'add'
    ? `add table=0,priority=${m.priority},${m.idle ? `idle_timeout=${m.idle},` : ''}ip,nw_dst=10.0.${m.ip >> 4}.${m.ip},actions=output:${m.out}`
    : `delete_strict table=0,priority=${m.priority},ip,nw_dst=10.0.${m.ip >> 4}.${m.ip}`);
  const dump = (b: Bridge): string[] => b.flows().map((r) => b.formatRule(r, { version: 10, stats: false })).sort();
  fc.assert(fc.property(fc.array(mod, { maxLength: 60 }), fc.array(mod, { minLength: 1, maxLength: 120 }), (first, second) => {
    const b = new Bridge('br0');
    const apply = (lines: string[]): void => applyBundle(b, { flows: lines.map((l) => flowModFromText(b, l)), groups: [], meters: [], groupDeletes: [], meterDeletes: [] });
    apply(first.map(text));
    const before = dump(b);
    const size = b.table(0).size;
    // The last flow mod names a group the switch does not have: the whole bundle is refused.
    const e = t.throws(() => apply([...second.map(text), 'add table=0,priority=1,actions=group:9']));
    t.true(e instanceof OfError && e.code === 'OFPBAC_BAD_OUT_GROUP', String(e));
    t.deepEqual(dump(b), before);
    t.is(b.table(0).size, size);
    // And the table still works: the same bundle without the refusal applies, and every address
    // hits what a plain model of the two bundles says (the higher priority's output).
    apply(second.map(text));
    const model = new Map<string, number>();
    for (const m of [...first, ...second]) {
      if (m.kind === 'add') model.set(`${m.priority}/${m.ip}`, m.out);
      else model.delete(`${m.priority}/${m.ip}`);
    }
    const f = new Uint32Array(FLOW_WORDS);
    f[W.dl_type] = 0x800;
    for (let ip = 1; ip <= 40; ip++) {
      f[W.nw_dst] = (0x0a000000 | ((ip >> 4) << 8) | ip) >>> 0;
      const hit = b.table(0).lookup(f);
      const want = model.get(`20/${ip}`) ?? model.get(`10/${ip}`);
      t.is(hit === undefined ? undefined : (hit.actions[0] as { port: number }).port, want, `lookup of .${ip}`);
    }
    t.is(b.table(0).size, model.size);
  }), { numRuns: 200 });
});
