// The flow slots (desired and installed in one map) stay consistent with what was committed even
// when an owner's claim changes while its commit is in flight: the flow is recorded through its
// key, the installed count matches the installed flows, and the next reconcile fixes the switch.
// A flow the switch holds as its one owner wants it is kept packed (key, actions, cookie) and
// reads back whole.
import test from 'ava';
import { DryRunBackend, type FlowChanges } from '../dataplane/backend.js';
import { type FlowSlot, PackedFlow, type SlotMap, type Touched, newTouched } from '../dataplane/desired.js';
import { type Flow, bridgeOfKey, canonicalMatch, eq, flowKey, identityOfKey, makeFlowKey, masked } from '../dataplane/flow.js';
import { FlowDataplane } from '../dataplane/flow-dataplane.js';
import { comparable } from './helpers/switch-state.js';

/** A dataplane whose switch runs `during` while it takes a commit, and what it was sent. */
function holdingCommit(): { dp: FlowDataplane; sent: FlowChanges[]; during: { run: (() => void) | null }; reconcile: (t: Touched) => Promise<Map<string, string>> } {
  const sent: FlowChanges[] = [];
  const during: { run: (() => void) | null } = { run: null };
  class Backend extends DryRunBackend {
    override commit(c: FlowChanges): Promise<void> {
      sent.push(c);
      const run = during.run;
      during.run = null;
      run?.();
      return Promise.resolve();
    }
  }
  const dp = new FlowDataplane(new Backend());
  const reconcile = (dp as unknown as { reconcile(t: Touched): Promise<Map<string, string>> }).reconcile.bind(dp);
  return { dp, sent, during, reconcile };
}

const f: Flow = { table: 1, priority: 10, match: [eq('in_port', 1)], actions: [{ type: 'output', port: 2 }], cookie: 1n, owner: 'a' };

test('a claim dropped while its commit is in flight: installed stays exact and the next reconcile removes the flow', async (t) => {
  const { dp, sent, during, reconcile } = holdingCommit();
  const touched = newTouched();
  dp.desired.set('a', { flows: [f], groups: [], meters: [] }, touched);
  const later = newTouched();
  during.run = () => dp.desired.set('a', { flows: [], groups: [], meters: [] }, later);
  await reconcile(touched);
  t.is(dp.installed.size, 1, 'the switch took it: it is installed');
  t.deepEqual([...dp.installed.flows.keys()], [flowKey(f)]);
  await reconcile(later);
  t.deepEqual(sent.at(-1)!.remove.map(flowKey), [flowKey(f)], 'the next reconcile removes it');
  t.is(dp.installed.size, 0);
  t.deepEqual([...dp.installed.flows.keys()], []);
});

test('a claim dropped and made again with other actions while its commit is in flight: the next reconcile sends the new flow', async (t) => {
  const { dp, sent, during, reconcile } = holdingCommit();
  const g: Flow = { ...f, actions: [{ type: 'output', port: 3 }] };
  const touched = newTouched();
  dp.desired.set('a', { flows: [f], groups: [], meters: [] }, touched);
  const later = newTouched();
  during.run = () => {
    dp.desired.set('a', { flows: [], groups: [], meters: [] }, later);
    dp.desired.set('a', { flows: [g], groups: [], meters: [] }, later);
  };
  await reconcile(touched);
  t.deepEqual(comparable([dp.installed.flows.get(flowKey(f))!]), comparable([f]), 'what the switch took is what is installed');
  await reconcile(later);
  t.deepEqual(sent.at(-1)!.modify, [g], 'the next reconcile sends the new actions');
  t.deepEqual(comparable([dp.installed.flows.get(flowKey(f))!]), comparable([g]));
  t.is(dp.installed.size, 1);
});

// ---- packed flows: a flow the switch holds as its one owner wants it is kept as key, actions and cookie ----

/** What the desired table keeps at a key: a slot, or the packed flow standing for one. */
const entryOf = (dp: FlowDataplane, key: string): FlowSlot | PackedFlow => (dp.desired as unknown as { slots: SlotMap }).slots.map.get(key)!;
const claimAt = (dp: FlowDataplane, key: string): unknown => { const e = entryOf(dp, key); return e instanceof PackedFlow ? e : e.claim; };
const whole = (x: Flow): Flow => ({ ...x, key: flowKey(x) });

test('a flow installed as its one owner wants it is kept packed, reads back whole, and a rebuild of the same flow keeps no second copy', async (t) => {
  const { dp, sent, reconcile } = holdingCommit();
  const k = flowKey(f);
  const touched = newTouched();
  dp.desired.set('a', { flows: [f], groups: [], meters: [] }, touched);
  await reconcile(touched);
  const packed = entryOf(dp, k);
  t.true(packed instanceof PackedFlow, 'packed once the switch holds it, standing in the map for wanted and held alike');
  t.deepEqual(dp.installed.flows.get(k), whole(f), 'installed reads back whole');
  t.deepEqual([...dp.installed.flows.values()], [whole(f)]);
  t.deepEqual(dp.desired.active(k), whole(f), 'and so does the desired flow');
  t.deepEqual(dp.desired.ownerOutput('a')?.flows, [whole(f)], 'and the owner\'s output');

  const rebuilt = newTouched();
  dp.desired.set('a', { flows: [{ ...f, match: [eq('in_port', 1)] }], groups: [], meters: [] }, rebuilt);
  await reconcile(rebuilt);
  t.is(sent.length, 1, 'an equal rebuild sends nothing');
  t.is(entryOf(dp, k), packed, 'and the rebuilt flow is not kept: the packed one stands for it');

  // The switch lost everything (an OVS restart): the packed flow is sent whole and packed again.
  dp.installed.clear();
  const all = newTouched();
  dp.desired.touchAllFlows(all);
  await reconcile(all);
  t.deepEqual(sent.at(-1)!.add, [whole(f)], 'sent whole');
  t.is(entryOf(dp, k), packed, 'and packed again');
  t.is(dp.installed.size, 1);
});

test('a packed flow joined by a second owner\'s conjunction clause merges, and packs again when that owner leaves', async (t) => {
  const { dp, sent, reconcile } = holdingCommit();
  const conj = (owner: string, id: number): Flow => ({ ...f, actions: [{ type: 'conjunction', id, clause: 0, nClauses: 2 }], cookie: 7n, owner });
  const k = flowKey(f);
  const step = async (owner: string, flows: Flow[]): Promise<void> => {
    const touched = newTouched();
    dp.desired.set(owner, { flows, groups: [], meters: [] }, touched);
    await reconcile(touched);
  };
  await step('a', [conj('a', 1)]);
  t.true(claimAt(dp, k) instanceof PackedFlow);
  await step('b', [conj('b', 2)]);
  t.deepEqual(sent.at(-1)!.modify.map((x) => x.actions), [[...conj('a', 1).actions, ...conj('b', 2).actions]], 'one flow with both clauses');
  t.deepEqual(dp.installed.flows.get(k)!.actions, [...conj('a', 1).actions, ...conj('b', 2).actions]);
  t.true(Array.isArray(claimAt(dp, k)), 'two claims are kept whole');
  t.deepEqual(dp.desired.flowOwners(k), ['a', 'b']);
  await step('b', []);
  t.deepEqual(sent.at(-1)!.modify.map((x) => x.actions), [conj('a', 1).actions], 'back to the first owner\'s clause');
  t.true(claimAt(dp, k) instanceof PackedFlow, 'packed again');
  t.deepEqual(dp.installed.flows.get(k), whole(conj('a', 1)));
  await step('a', []);
  t.deepEqual(sent.at(-1)!.remove, [whole(conj('a', 1))], 'a removal is sent whole');
  t.is(dp.installed.size, 0);
});

test('a flow key gives back the identity it was made from: bridge, table, priority and every match field', (t) => {
  const ids: Pick<Flow, 'bridge' | 'table' | 'priority' | 'match'>[] = [
    { table: 0, priority: 0, match: [] },
    { table: 1, priority: 10, match: [eq('in_port', 1)] },
    { bridge: 'br-ex', table: 3, priority: 100, match: [eq('in_port', 0), masked('metadata', 0x10, 0xff), eq('dl_dst', 0xfa163e000001n)] },
    { table: 254, priority: 65535, match: canonicalMatch([masked('reg6', 0x30000, 0xffff0000), eq('dl_type', 0x806), eq('arp_tpa', 0x0a000001)]) },
  ];
  for (const id of ids) t.deepEqual(identityOfKey(makeFlowKey(id.table, id.priority, id.match, id.bridge)), id);
  t.throws(() => identityOfKey('1/10/zz=1'), { message: /unknown field tag zz/ });
});

test('installed flows give their keys, bridges and cookies without being made whole', async (t) => {
  const { dp, reconcile } = holdingCommit();
  const ex: Flow = { bridge: 'br-ex', table: 0, priority: 5, match: [eq('in_port', 2)], actions: [{ type: 'output', port: 1 }], cookie: 9n, owner: 'b' };
  const touched = newTouched();
  dp.desired.set('a', { flows: [f], groups: [], meters: [] }, touched);
  dp.desired.set('b', { flows: [ex], groups: [], meters: [] }, touched);
  await reconcile(touched);
  t.true(entryOf(dp, flowKey(ex)) instanceof PackedFlow);
  t.deepEqual([...dp.installed.flows.cookies()].sort(), [[flowKey(f), 1n], [flowKey(ex), 9n]].sort());
  t.deepEqual([...dp.installed.flows.keys()].map(bridgeOfKey).sort(), ['br-ex', 'br-int']);
  t.deepEqual(dp.ownersOfCookie(9n), ['b'], 'a trace step names the owner of a packed flow');
  t.true(dp.desired.hasOutput('b'));
  t.deepEqual(dp.desired.ownerKeys('b')?.flows, [flowKey(ex)]);
});
