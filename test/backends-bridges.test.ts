// Several bridges in the sim backend (br-int plus an external bridge, as bridge mappings bring
// with SNAT), on the compiled path and the text path: start() creates the external bridge plain;
// one commit with flows, a group and a meter on each bridge goes in as one bundle per bridge;
// each bridge's dump-flows, dump-groups and meters show exactly its own; readBack() returns
// everything with `bridge` set off br-int only; a refusal on br-ex rejects naming br-ex and
// changes nothing there, a refusal on br-int after br-ex leaves br-ex's bundle applied.
import test from 'ava';
import { type FlowChanges, SwitchRefusedError, emptyChanges } from '../dataplane/backend.js';
import { UnknownBridgeError, splitByBridge } from '../dataplane/backends/bridges.js';
import { SimBackend, SimRefusedError } from '../dataplane/backends/sim.js';
import { ETH_TYPE, ipv4Value } from '../dataplane/fields.js';
import { type Flow, type Group, type Meter, actionsKey, canonicalMatch, eq, flowKey, objectKey, output, sameGroup, sameMeter } from '../dataplane/flow.js';
import { BRIDGE, TUNNEL_PORTS } from '../dataplane/pipeline.js';
import { type Bridge, dumpFlows, dumpGroups, Fabric, meters } from '../ovs-sim/index.js';

const EX = 'br-ex';

const flow = (bridge: string | undefined, table: number, priority: number, match: Parameters<typeof canonicalMatch>[0], actions: Flow['actions'], cookie: bigint): Flow =>
  ({ ...(bridge === undefined ? {} : { bridge }), table, priority, match: canonicalMatch(match), actions, cookie });

/** On br-int (no bridge property) and on br-ex: one flow with the same table, priority and match on both. */
function contents(): { flows: Flow[]; groups: Group[]; meters: Meter[] } {
  return {
    flows: [
      flow(undefined, 0, 100, [eq('in_port', 1)], [{ type: 'meter', id: 1 }, { type: 'group', id: 1 }], 0x11n),
      flow(undefined, 0, 10, [eq('in_port', 2)], [output(1)], 0x12n),
      flow(undefined, 0, 0, [], [], 0x13n),
      flow(EX, 0, 100, [eq('in_port', 1)], [{ type: 'meter', id: 1 }, { type: 'group', id: 1 }], 0x21n),
      flow(EX, 0, 50, [eq('in_port', 2), eq('dl_type', ETH_TYPE.ip), eq('nw_dst', ipv4Value('203.0.113.5'))], [{ type: 'set_field', field: 'nw_dst', value: ipv4Value('10.1.0.5') }, output(1)], 0x22n),
    ],
    groups: [
      { id: 1, type: 'all', buckets: [{ actions: [output(2)] }, { actions: [output(3)] }] },
      { bridge: EX, id: 1, type: 'select', buckets: [{ actions: [output(2)], weight: 5 }] },
    ],
    meters: [
      { id: 1, unit: 'pktps', rate: 1000, burst: 100 },
      { bridge: EX, id: 1, unit: 'kbps', rate: 50000, burst: 5000 },
    ],
  };
}

const changes = (c: { add?: Flow[]; modify?: Flow[]; remove?: Flow[]; groups?: Group[]; groupsModify?: Group[]; groupsRemove?: Group[]; meters?: Meter[] }): FlowChanges => {
  const out = emptyChanges();
  out.add = c.add ?? [];
  out.modify = c.modify ?? [];
  out.remove = c.remove ?? [];
  out.groups.add = c.groups ?? [];
  out.groups.modify = c.groupsModify ?? [];
  out.groups.remove = c.groupsRemove ?? [];
  out.meters.add = c.meters ?? [];
  return out;
};

async function started(path: 'compiled' | 'text'): Promise<SimBackend> {
  const be = new SimBackend(new Fabric().addHost('hv', '10.0.0.11'), false, { path });
  await be.start([BRIDGE, EX]);
  for (const n of [1, 2, 3]) be.host.bridge(BRIDGE).addPort(`p${n}`, 'system', { ofportRequest: n });
  for (const n of [1, 2]) be.host.bridge(EX).addPort(`eth${n}`, 'system', { ofportRequest: n });
  return be;
}

const brInt = (be: SimBackend): Bridge => be.host.bridge(BRIDGE);
const brEx = (be: SimBackend): Bridge => be.host.bridge(EX);
const cookies = (b: Bridge): string[] => b.flows().map((r) => `0x${r.cookie.toString(16)}`).sort();
const cookiesOf = (flows: Flow[]): string[] => flows.map((f) => `0x${f.cookie.toString(16)}`).sort();
const onEx = (o: { bridge?: string }): boolean => o.bridge === EX;
const held = (be: SimBackend): string[][] => [dumpFlows(brInt(be)).sort(), dumpGroups(brInt(be)), dumpFlows(brEx(be)).sort(), dumpGroups(brEx(be)), meters(brInt(be)).map((m) => JSON.stringify(m)), meters(brEx(be)).map((m) => JSON.stringify(m))];

/** readBack gives exactly `want`, `bridge` absent on br-int's objects and set on br-ex's. */
async function readsBack(t: import('ava').ExecutionContext, be: SimBackend, want: { flows: Flow[]; groups: Group[]; meters: Meter[] }): Promise<void> {
  const back = await be.readBack();
  const fk = (f: Flow): string => `${flowKey(f)} ${actionsKey(f.actions)} ${f.cookie}`;
  t.deepEqual(back.flows.map(fk).sort(), want.flows.map(fk).sort(), `${be.path}: flows read back`);
  for (const f of back.flows) {
    if (f.cookie >> 4n === 1n) t.false('bridge' in f, `${be.path}: a br-int flow reads back without a bridge`);
    else t.is(f.bridge, EX, `${be.path}: a br-ex flow reads back on br-ex`);
  }
  const gk = (g: { bridge?: string; id: number }): string => objectKey(g);
  t.deepEqual(back.groups.map(gk).sort(), want.groups.map(gk).sort(), `${be.path}: groups read back`);
  for (const g of back.groups) t.true(sameGroup(g, want.groups.find((x) => objectKey(x) === objectKey(g))!), `${be.path}: group ${objectKey(g)} as committed`);
  for (const g of back.groups.filter((x) => !onEx(x))) t.false('bridge' in g);
  t.deepEqual(back.meters.map(gk).sort(), want.meters.map(gk).sort(), `${be.path}: meters read back`);
  for (const m of back.meters) t.true(sameMeter(m, want.meters.find((x) => objectKey(x) === objectKey(m))!), `${be.path}: meter ${objectKey(m)} as committed`);
  for (const m of back.meters.filter((x) => !onEx(x))) t.false('bridge' in m);
}

test('start() creates br-ex plain next to br-int with its tunnel ports; starting again adopts both', async (t) => {
  const host = new Fabric().addHost('hv', '10.0.0.11');
  const be = new SimBackend(host, false);
  await be.start([EX]);
  t.deepEqual([...host.bridges.keys()].sort(), [EX, BRIDGE].sort());
  t.deepEqual(be.bridges, [BRIDGE, EX]);
  t.deepEqual([...host.bridge(EX).ports.values()].map((p) => p.name), [EX], 'br-ex: its internal port only, no tunnel ports');
  t.is(host.bridge(EX).failMode, 'secure');
  for (const tun of Object.values(TUNNEL_PORTS)) t.is(host.bridge(BRIDGE).portByName(tun.name)?.ofport, tun.ofport);
  const ex = host.bridge(EX);
  const again = new SimBackend(host, false);
  await again.start([BRIDGE, EX, EX]);
  t.is(host.bridge(EX), ex, 'adopted, not replaced');
  t.deepEqual(again.bridges, [BRIDGE, EX]);
  await t.throwsAsync(new SimBackend(host).start(['br/ex']), { message: /bad bridge name/ });
});

for (const path of ['compiled', 'text'] as const) {
  test(`${path} path: one commit on br-int and br-ex; each bridge holds exactly its own; readBack; modify and remove per bridge`, async (t) => {
    const be = await started(path);
    const want = contents();
    await be.commit(changes({ add: want.flows, groups: want.groups, meters: want.meters }));

    t.deepEqual(cookies(brInt(be)), cookiesOf(want.flows.filter((f) => !onEx(f))), 'br-int dump-flows: its own flows only');
    t.deepEqual(cookies(brEx(be)), cookiesOf(want.flows.filter(onEx)), 'br-ex dump-flows: its own flows only');
    t.is(dumpFlows(brEx(be)).length, 2);
    t.regex(dumpFlows(brEx(be)).join('\n'), /set_field:10\.1\.0\.5->ip_dst/);
    t.deepEqual(dumpGroups(brInt(be)).slice(1), [' group_id=1,type=all,bucket=actions=output:2,bucket=actions=output:3']);
    t.deepEqual(dumpGroups(brEx(be)).slice(1), [' group_id=1,type=select,bucket=weight:5,actions=output:2']);
    t.deepEqual(meters(brInt(be)), [{ id: 1, unit: 'pktps', rate: 1000, burst: 100 }]);
    t.deepEqual(meters(brEx(be)), [{ id: 1, unit: 'kbps', rate: 50000, burst: 5000 }]);
    await readsBack(t, be, want);

    // A modify on br-ex, a remove on br-int, a group modified on br-ex only: each lands on its bridge.
    const exMod = { ...want.flows[4]!, actions: [output(2)] };
    const exGroup: Group = { bridge: EX, id: 1, type: 'select', buckets: [{ actions: [output(1)], weight: 7 }] };
    await be.commit(changes({ modify: [exMod], remove: [want.flows[1]!], groupsModify: [exGroup] }));
    const next = { flows: [want.flows[0]!, want.flows[2]!, want.flows[3]!, exMod], groups: [want.groups[0]!, exGroup], meters: want.meters };
    await readsBack(t, be, next);
    t.deepEqual(dumpGroups(brInt(be)).slice(1), [' group_id=1,type=all,bucket=actions=output:2,bucket=actions=output:3'], 'br-int group untouched');
    t.is(brInt(be).flows().length, 2);
    t.is(brEx(be).flows().length, 2);

    // A flow on br-ex naming a group only br-int has: refused by br-ex, which goes first, so
    // nothing of the commit is applied anywhere.
    const before = held(be);
    const bad = changes({
      add: [flow(undefined, 1, 5, [eq('in_port', 3)], [output(1)], 0x14n), flow(EX, 1, 5, [eq('in_port', 2)], [{ type: 'group', id: 9 }], 0x23n)],
      groups: [{ id: 9, type: 'all', buckets: [{ actions: [output(1)] }] }],
      meters: [{ bridge: EX, id: 4, unit: 'pktps', rate: 10, burst: 1 }],
    });
    const e = await t.throwsAsync(be.commit(bad), { instanceOf: SwitchRefusedError });
    t.is(e.reason, 'OFPBAC_BAD_OUT_GROUP on br-ex');
    t.regex(e.message, /br-ex/);
    t.deepEqual((e as SimRefusedError).applied, []);
    t.is((e as SimRefusedError).bridge, EX);
    t.deepEqual(held(be), before, 'nothing changed on either bridge');

    // Refused on br-int (which goes last): br-ex's bundle before it stays applied, and the error says so.
    const late = changes({
      add: [flow(EX, 1, 6, [eq('in_port', 1)], [output(2)], 0x24n), flow(undefined, 1, 6, [eq('in_port', 1)], [{ type: 'group', id: 42 }], 0x15n)],
    });
    const e2 = await t.throwsAsync(be.commit(late), { instanceOf: SimRefusedError });
    t.is(e2.reason, 'OFPBAC_BAD_OUT_GROUP', 'br-int goes unnamed, as in the model');
    t.is(e2.bridge, BRIDGE);
    t.deepEqual(e2.applied, [EX]);
    t.regex(e2.message, /bundle of br-ex before it stays applied/);
    t.deepEqual(dumpFlows(brInt(be)).sort(), before[0], 'br-int unchanged');
    t.is(brEx(be).flows().length, 3, 'br-ex took its part');

    // A bridge never started: refused before anything is sent.
    const unknown = changes({ add: [flow(undefined, 2, 1, [], [], 0x16n), flow('br-nope', 0, 1, [], [], 0x31n)] });
    await t.throwsAsync(be.commit(unknown), { instanceOf: UnknownBridgeError, message: /br-nope, not started/ });
    t.is(brInt(be).flows().length, 2);
  });
}

test('the compiled and text paths leave both bridges the same', async (t) => {
  const [a, b] = [await started('compiled'), await started('text')];
  const want = contents();
  for (const be of [a, b]) await be.commit(changes({ add: want.flows, groups: want.groups, meters: want.meters }));
  t.deepEqual(held(a), held(b));
});

test('splitByBridge: br-int alone passes through as is; external bridges first in start order, br-int last', (t) => {
  const only = changes({ add: [flow(undefined, 0, 1, [], [], 1n)], groups: [{ bridge: BRIDGE, id: 1, type: 'all', buckets: [] }] });
  const parts = splitByBridge(only, [BRIDGE, EX]);
  t.is(parts.length, 1);
  t.is(parts[0]![1], only);
  t.deepEqual(splitByBridge(emptyChanges(), [BRIDGE]), []);
  const mixed = changes({
    add: [flow(undefined, 0, 1, [], [], 1n), flow('br-b', 0, 1, [], [], 2n), flow(EX, 0, 1, [], [], 3n)],
    meters: [{ bridge: 'br-b', id: 1, unit: 'kbps', rate: 1, burst: 0 }],
  });
  const split = splitByBridge(mixed, [BRIDGE, EX, 'br-b']);
  t.deepEqual(split.map(([b]) => b), [EX, 'br-b', BRIDGE]);
  t.deepEqual(split.map(([, c]) => c.add.map((f) => f.cookie)), [[3n], [2n], [1n]]);
  t.is(split[1]![1].meters.add.length, 1);
});
