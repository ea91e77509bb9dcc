// The dataplane core v2: conjunction merge between owners, stable conjunction ids, flows a
// table does not allow refused where they are built, fault isolation of a refused bundle (only
// the refused owners fail, the rest installs, later goal states are unaffected, the switch
// converges by itself once the fault clears), a flow whose cookie changes is replaced, and the
// switch equals what the agent believes after every step.
import test from 'ava';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { Intake } from '../agent/intake.js';
import { silentLogger } from '../agent/log.js';
import { ResourceStore } from '../agent/store.js';
import { DryRunBackend, type FlowChanges, SwitchRefusedError, type SwitchContents } from '../dataplane/backend.js';
import { ConjunctionIds, TrackingContext } from '../dataplane/build-context.js';
import { DesiredFlows, newTouched } from '../dataplane/desired.js';
import { type Feature, OwnerBuilder } from '../dataplane/feature.js';
import { FEATURES, FeatureRegistry } from '../dataplane/features.js';
import { type Flow, FlowBuildError, type Group, type Meter, actionsKey, eq, flowKey, masked, reg } from '../dataplane/flow.js';
import { FlowDataplane, sortFlows } from '../dataplane/flow-dataplane.js';
import { formatFlow } from '../dataplane/flow-text.js';
import { macValue } from '../dataplane/fields.js';
import { REGISTERS, TABLES } from '../dataplane/pipeline.js';
import { HOST_IP, neighborState, portState, subnetState } from './helpers/agents.js';

/**
 * A fake switch (below the backend interface, named as a fake): holds flows as the bundle
 * leaves them, applies a bundle all or nothing, and refuses any bundle that adds a flow the
 * `refuse` predicate picks, as OVS refuses with a full table.
 */
class FakeSwitch extends DryRunBackend {
  readonly table = new Map<string, Flow>();
  refuse: (f: Flow) => boolean = () => false;
  /** The switch cannot be reached (its connection is down). */
  down = false;
  get connected(): boolean {
    return !this.down;
  }
  readonly bundles: FlowChanges[] = [];

  override commit(c: FlowChanges): Promise<void> {
    if (this.down) return Promise.reject(new Error('OpenFlow connection to br-int is down'));
    if ([...c.add, ...c.modify].some((f) => this.refuse(f))) return Promise.reject(new SwitchRefusedError('bundle refused', 'OFPFMFC_TABLE_FULL'));
    for (const f of c.remove) {
      if (!this.table.delete(flowKey(f))) return Promise.reject(new Error(`delete of a flow the switch does not hold: ${formatFlow(f)}`));
    }
    for (const f of c.modify) {
      if (!this.table.has(flowKey(f))) return Promise.reject(new Error(`modify of a flow the switch does not hold: ${formatFlow(f)}`));
      // modify_strict keeps the installed cookie, as OpenFlow 1.3+ does.
      this.table.set(flowKey(f), { ...f, cookie: this.table.get(flowKey(f))!.cookie });
    }
    for (const f of c.add) this.table.set(flowKey(f), f);
    for (const g of c.groups.remove) this.groups.delete(g.id);
    for (const g of [...c.groups.add, ...c.groups.modify]) this.groups.set(g.id, g);
    for (const m of c.meters.remove) this.meters.delete(m.id);
    for (const m of [...c.meters.add, ...c.meters.modify]) this.meters.set(m.id, m);
    this.bundles.push(c);
    return Promise.resolve();
  }

  readonly groups = new Map<number, Group>();
  readonly meters = new Map<number, Meter>();

  readBack(): Promise<SwitchContents> {
    return Promise.resolve({ flows: [...this.table.values()], groups: [...this.groups.values()].map(({ owner: _, ...g }) => g), meters: [...this.meters.values()].map(({ owner: _, ...m }) => m) });
  }
}

const text = (flows: Iterable<Flow>): string[] => [...flows].map(formatFlow).sort();

/** Switch == agent: the fake switch holds exactly what the dataplane says it installed. */
function assertSwitchEqualsAgent(t: { deepEqual(a: unknown, b: unknown, m?: string): void }, sw: FakeSwitch, dp: FlowDataplane, step: string): void {
  t.deepEqual(text(sw.table.values()), text(dp.installed.flows.values()), `switch == agent after ${step}`);
}

function setup(): { store: ResourceStore; sw: FakeSwitch; dp: FlowDataplane; intake: Intake } {
  const store = new ResourceStore();
  const sw = new FakeSwitch();
  const dp = new FlowDataplane(sw);
  const intake = new Intake(store, dp, silentLogger(), HOST_IP);
  return { store, sw, dp, intake };
}

const isBad = (f: Flow): boolean => f.match.some((m) => m.field === 'dl_dst' && m.value === macValue('fa:16:3e:80:00:07'));

test('a refused bundle fails only the refused owners; the rest installs; later goal states are unaffected; the switch converges by itself', async (t) => {
  const { store, sw, dp, intake } = setup();
  await dp.start(new ResourceStore());
  sw.refuse = isBad;
  const gs = GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S') }, portStates: { P1: portState('P1') } });
  for (let i = 1; i <= 12; i++) gs.neighborStates[`L2/N${i}`] = neighborState(`N${i}`, i);
  const r = await intake.apply({ v2: gs });
  const statuses = new Map(r.results.toArray().map((x) => [`${x.kind}:${x.id}`, x]));
  t.is(statuses.get('neighbor:N7')?.status, 'FAILURE');
  t.regex(statuses.get('neighbor:N7')?.detail ?? '', /OFPFMFC_TABLE_FULL/);
  for (const [k, x] of statuses) if (k !== 'neighbor:N7') t.is(x.status, 'SUCCESS', `${k}: ${x.detail}`);
  t.true(dp.refused.has('neighbor:L2/N7'));
  t.is([...sw.table.values()].filter(isBad).length, 0);
  t.true(sw.table.size > 30);
  assertSwitchEqualsAgent(t, sw, dp, 'the refused push');

  // Unrelated goal states after the refusal answer SUCCESS and are installed.
  const later = GoalStateV2.fromPartial({ neighborStates: { 'L2/N20': neighborState('N20', 20) } });
  const r2 = await intake.apply({ v2: later });
  t.deepEqual(r2.results.toArray().map((x) => x.status), ['SUCCESS']);
  t.true([...sw.table.values()].some((f) => f.match.some((m) => m.field === 'dl_dst' && m.value === macValue('fa:16:3e:80:00:14'))));
  assertSwitchEqualsAgent(t, sw, dp, 'a later push');

  // The fault clears: the retry installs N7 without any new push.
  sw.refuse = () => false;
  for (let i = 0; i < 600 && dp.refused.size > 0; i++) await new Promise((res) => setTimeout(res, 100));
  t.is(dp.refused.size, 0);
  t.is([...sw.table.values()].filter(isBad).length, 1, 'N7 unicast is installed (its ARP entry with it: the recompute below)');
  const full = FlowDataplane.recompute(store, sw.bindings);
  t.deepEqual(text(sw.table.values()), text(full.activeFlows()), 'the switch holds the full desired state');
  await dp.close();
});

test('while the switch cannot be reached, goal states answer FAILURE; once it can, the switch converges by itself', async (t) => {
  const { store, sw, dp, intake } = setup();
  await dp.start(new ResourceStore());
  await intake.apply({ v2: GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S') }, portStates: { P1: portState('P1') } }) });
  sw.down = true;
  const r = await intake.apply({ v2: GoalStateV2.fromPartial({ neighborStates: { 'L2/N1': neighborState('N1', 1) } }) });
  t.deepEqual(r.results.toArray().map((x) => x.status), ['FAILURE']);
  t.regex(r.results.toArray()[0]!.detail, /down/);
  assertSwitchEqualsAgent(t, sw, dp, 'the outage');
  sw.down = false;
  const want = text(FlowDataplane.recompute(store, sw.bindings).activeFlows());
  for (let i = 0; i < 600 && JSON.stringify(text(sw.table.values())) !== JSON.stringify(want); i++) await new Promise((res) => setTimeout(res, 100));
  t.deepEqual(text(sw.table.values()), want, 'the neighbor is installed without a new push');
  assertSwitchEqualsAgent(t, sw, dp, 'the recovery');
  await dp.close();
});

test('a flow that changes owner (and so cookie) is replaced with an add, never modified in place', async (t) => {
  const { sw, dp, intake } = setup();
  await dp.start(new ResourceStore());
  // One VM as a local port and as a remote neighbor (a migration under way) answers ARP for
  // the same address: one flow key, two owners.
  const gs = GoalStateV2.fromPartial({
    subnetStates: { S: subnetState('S') },
    portStates: { P1: portState('P1', { fixedIps: [{ subnetId: 'S', ipAddress: '10.1.0.9' }] }) },
    neighborStates: { 'L2/P1': neighborState('P1', 1, { fixedIps: [{ neighborType: 0, subnetId: 'S', ipAddress: '10.1.0.9', arionGroup: '', tunnelId: 0 }] }) },
  });
  await intake.apply({ v2: gs });
  const arpKey = [...dp.installed.flows.entries()].find(([, f]) => f.table === TABLES.ARP_RESPONDER.id && f.priority === 100 && f.match.some((m) => m.field === 'arp_tpa' && m.value === 0x0a010009n))?.[0] ?? '';
  t.truthy(arpKey);
  t.deepEqual(dp.desired.flowOwners(arpKey), ['neighbor:L2/P1', 'port:P1']);
  const before = sw.table.get(arpKey)!.cookie;
  sw.bundles.length = 0;
  await intake.apply({ v2: GoalStateV2.fromPartial({ neighborStates: { 'L2/P1': neighborState('P1', 1, {}, 4) } }) });
  const bundle = sw.bundles.at(-1)!;
  t.true(bundle.add.some((f) => flowKey(f) === arpKey), 'the ARP flow is re-added with its new cookie');
  t.false(bundle.modify.some((f) => flowKey(f) === arpKey));
  t.not(sw.table.get(arpKey)!.cookie, before);
  t.is(sw.table.get(arpKey)!.cookie, dp.installed.flows.get(arpKey)!.cookie);
  assertSwitchEqualsAgent(t, sw, dp, 'the owner change');
});

test('switch == agent after every step of a scripted sequence of creates, updates, deletes and owner changes', async (t) => {
  const { store, sw, dp, intake } = setup();
  await dp.start(new ResourceStore());
  const steps: [string, GoalStateV2][] = [
    ['subnets and a port', GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S'), T: subnetState('T', { tunnelId: '5002', networkType: 3, cidr: '10.2.0.0/24', gateway: { ipAddress: '10.2.0.1', macAddress: '6c:dd:ee:00:00:41' } }) }, portStates: { P1: portState('P1') } })],
    ['neighbors on two hosts', GoalStateV2.fromPartial({ neighborStates: { 'L2/P1': neighborState('P1', 1), 'L2/N2': neighborState('N2', 2, { fixedIps: [{ neighborType: 0, subnetId: 'T', ipAddress: '10.2.0.7', arionGroup: '', tunnelId: 0 }] }) } })],
    ['a neighbor moves host', GoalStateV2.fromPartial({ neighborStates: { 'L2/P1': neighborState('P1', 1, { hostIpAddress: '10.0.9.9', revisionNumber: 2 }) } })],
    ['a subnet changes VNI', GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S', { tunnelId: '6001', revisionNumber: 2 }, 2) } })],
    ['the port goes down', GoalStateV2.fromPartial({ portStates: { P1: portState('P1', { adminStateUp: false, revisionNumber: 2 }, 2) } })],
    ['the port comes back with the address its remote entry had', GoalStateV2.fromPartial({ portStates: { P1: portState('P1', { revisionNumber: 3, fixedIps: [{ subnetId: 'S', ipAddress: '10.64.0.1' }] }, 2) } })],
    ['the neighbor leaves', GoalStateV2.fromPartial({ neighborStates: { 'L2/P1': neighborState('P1', 1, { revisionNumber: 3 }, 4) } })],
    ['everything leaves', GoalStateV2.fromPartial({ portStates: { P1: portState('P1', { revisionNumber: 4 }, 4) }, neighborStates: { 'L2/N2': neighborState('N2', 2, { revisionNumber: 2 }, 4) } })],
  ];
  for (const [name, gs] of steps) {
    const r = await intake.apply({ v2: gs });
    for (const x of r.results.toArray()) t.is(x.status, 'SUCCESS', `${name}: ${x.kind} ${x.id} ${x.detail}`);
    assertSwitchEqualsAgent(t, sw, dp, name);
    const full = FlowDataplane.recompute(store, sw.bindings);
    t.deepEqual(text(sw.table.values()), text(full.activeFlows()), `switch == recompute after ${name}`);
  }
});

test('an agent restart adopts what the switch holds: no churn when nothing changed, only the difference otherwise', async (t) => {
  const { store, sw, dp, intake } = setup();
  await dp.start(new ResourceStore());
  const gs = GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S') }, portStates: { P1: portState('P1') } });
  for (let i = 1; i <= 5; i++) gs.neighborStates[`L2/N${i}`] = neighborState(`N${i}`, i);
  await intake.apply({ v2: gs });
  const held = sw.table.size;
  // A second dataplane on the same switch and the same (reloaded) store: zero bundles.
  sw.bundles.length = 0;
  const again = new FlowDataplane(sw);
  await again.start(store);
  t.is(sw.bundles.length, 0, 'nothing committed');
  t.is(again.installed.size, held);
  // The state changed while the agent was down: only the difference goes out.
  store.remove('neighbor', 'L2/N5', 2);
  const third = new FlowDataplane(sw);
  await third.start(store);
  t.is(sw.bundles.length, 1);
  t.is(sw.bundles[0]!.remove.length, 2, 'the unicast and ARP flows of the deleted neighbor');
  t.is(sw.bundles[0]!.add.length, 0);
  t.deepEqual(sw.bundles[0]!.modify.map((f) => `${f.table}/${f.priority}`), [`${TABLES.REMOTE_L2.id}/50`], 'only the flood list, which lost that host');
  assertSwitchEqualsAgent(t, sw, third, 'the restart');
});

test('conjunction clauses of several owners merge into one flow, with ids stable per name', (t) => {
  const conj = new ConjunctionIds();
  const a = conj.use('sg:web', 'x');
  const b = conj.use('sg:db', 'y');
  t.not(a, b);
  t.is(conj.use('sg:web', 'z'), a, 'same name, same id');
  conj.release('x', new Set(), ['sg:web']);
  t.is(conj.use('sg:web', 'x'), a, 'still used by z: kept');
  conj.release('x', new Set(), ['sg:web']);
  conj.release('z', new Set(), ['sg:web']);
  t.is(new ConjunctionIds().use('sg:web', 'other'), a, 'the same name gets the same id in another allocator (a restart, a recompute)');
  t.is(conj.use('sg:web', 'q'), a, 'and again after it was freed');

  const feature = (ns: string, id: number, clause: number): Feature => ({
    name: ns, namespace: ns, programmer: 'pipeline', purpose: 'test', owners: { singleton: true },
    build(_ctx, _key, out) {
      out.flow(TABLES.SG_INGRESS, 100, [reg(REGISTERS.outPort, 5)], [{ type: 'conjunction', id, clause, nClauses: 2 }]);
    },
  });
  const desired = new DesiredFlows();
  const touched = newTouched();
  for (const [f, owner] of [[feature('a', 7, 1), 'a'], [feature('b', 3, 2), 'b']] as const) {
    const out = new OwnerBuilder(f, owner);
    f.build({} as never, '', out);
    desired.set(owner, out.output(), touched);
  }
  t.is(desired.size, 1);
  const [key] = [...desired.flowKeys()];
  const merged = desired.active(key!)!;
  t.is(formatFlow(merged).split(' actions=')[1], 'conjunction(3,2/2),conjunction(7,1/2)');
  t.deepEqual(desired.flowOwners(key!), ['a', 'b']);
  t.deepEqual(desired.conflicts(), []);
  // One owner leaves: the other's clause alone.
  desired.set('a', { flows: [], groups: [], meters: [] }, touched);
  t.is(actionsKey(desired.active(key!)!.actions), 'j3,2/2;');
});

test('a flow its table does not allow is refused when it is built, naming the feature and the owner', (t) => {
  const bad: Feature = {
    name: 'bad-feature', namespace: 'bad', programmer: 'port', purpose: 'test', owners: { resource: 'port' },
    build(_ctx, _key, out) {
      out.flow(TABLES.CLASSIFY, 100, [eq('dl_dst', 1n)], []);
    },
  };
  const e = t.throws(() => bad.build({} as never, 'P1', new OwnerBuilder(bad, 'bad:P1')), { instanceOf: FlowBuildError });
  t.regex(e.message, /feature bad-feature, owner bad:P1: table 0 \(classify\): matching dl_dst is not allowed/);
  const noPrereq: Feature = { ...bad, build: (_c, _k, out) => out.flow(TABLES.ARP_RESPONDER, 100, [eq('arp_tpa', 1n)], []) };
  t.throws(() => noPrereq.build({} as never, 'P1', new OwnerBuilder(noPrereq, 'bad:P1')), { message: /arp_tpa needs dl_type 0x806/ });
  t.throws(() => reg(REGISTERS.floodChunk, 2n ** 40n), { instanceOf: FlowBuildError });
  // Owner namespaces are unique across the registry.
  t.throws(() => new FeatureRegistry([...FEATURES, { ...bad, namespace: 'port' }]), { message: /share the owner namespace port/ });
});

test('flows of a second bridge: keyed apart from br-int\'s, created at start, committed and shown with their bridge', async (t) => {
  const EXT = { id: 0, name: 'ext_classify', purpose: 'test', miss: 'drop', fields: ['in_port'], bridge: 'br-ex' } as const;
  const ext: Feature = {
    name: 'ext', namespace: 'ext', programmer: 'pipeline', purpose: 'test', owners: { singleton: true },
    build(_ctx, _key, out) {
      // Same table, priority and match as a br-int flow: a different flow, on another bridge.
      out.flow(EXT, 100, [eq('in_port', 4096)], [{ type: 'output', port: 1 }]);
      out.group({ bridge: 'br-ex', id: 1, type: 'all', buckets: [{ actions: [{ type: 'output', port: 2 }] }] });
    },
  };
  const sw = new FakeSwitch();
  let started: readonly string[] | undefined;
  sw.start = (bridges?: readonly string[]) => { started = bridges; return Promise.resolve(); };
  const dp = new FlowDataplane(sw, undefined, undefined, new FeatureRegistry([...FEATURES, ext]), ['br-int', 'br-ex']);
  await dp.start(new ResourceStore());
  t.deepEqual(started, ['br-int', 'br-ex']);
  const both = [...sw.table.values()].filter((f) => f.table === 0 && f.match.length === 1 && f.match[0]!.value === 4096n);
  t.deepEqual(both.map((f) => f.bridge ?? 'br-int').sort(), ['br-ex', 'br-int']);
  t.is(dp.installed.groups.get('br-ex|1')?.type, 'all');
  const { flowJson, formatOfctl } = await import('../agent/render.js');
  t.is(flowJson(both.find((f) => f.bridge === 'br-ex')!).bridge, 'br-ex');
  t.regex(formatOfctl(dp.flows()), /# bridge br-int: \d+ flows[^]*# bridge br-ex: 1 flows \(ovs-ofctl add-flows br-ex FILE\)\ntable=0,priority=100,cookie=0x[0-9a-f]+,in_port=4096 actions=output:1$/);
});

test('on the simulator: the switch read back equals what the agent believes after every step of a scripted sequence', async (t) => {
  const { SimBackend } = await import('../dataplane/backends/sim.js');
  const { Fabric } = await import('../ovs-sim/index.js');
  const store = new ResourceStore();
  const sim = new SimBackend(new Fabric().addHost('hv', HOST_IP), true);
  const dp = new FlowDataplane(sim);
  await dp.start(store);
  const intake = new Intake(store, dp, silentLogger(), HOST_IP);
  const gs = (over: Parameters<typeof GoalStateV2.fromPartial>[0]) => GoalStateV2.fromPartial(over);
  const steps: [string, GoalStateV2][] = [
    ['subnets and ports', gs({ subnetStates: { S: subnetState('S'), T: subnetState('T', { tunnelId: '5002', networkType: 3, cidr: '10.2.0.0/24', gateway: { ipAddress: '10.2.0.1', macAddress: '6c:dd:ee:00:00:41' } }) }, portStates: { P1: portState('P1'), P2: portState('P2', { macAddress: 'fa:16:3e:00:00:02', fixedIps: [{ subnetId: 'T', ipAddress: '10.2.0.5' }] }) } })],
    // Neighbor 3 is P1's VM seen on another host (a migration under way): it shares P1's id.
    ['neighbors', gs({ neighborStates: Object.fromEntries([1, 2, 3, 4].map((i) => { const id = i === 3 ? 'P1' : `N${i}`; return [`L2/${id}`, neighborState(id, i, i % 2 ? {} : { fixedIps: [{ neighborType: 0, subnetId: 'T', ipAddress: `10.2.0.${20 + i}`, arionGroup: '', tunnelId: 0 }] })]; })) })],
    ['a neighbor moves host', gs({ neighborStates: { 'L2/N1': neighborState('N1', 1, { hostIpAddress: '10.0.9.9', revisionNumber: 2 }) } })],
    ['a port takes a neighbor\'s address', gs({ portStates: { P1: portState('P1', { revisionNumber: 2, fixedIps: [{ subnetId: 'S', ipAddress: '10.64.0.3' }] }, 2) } })],
    ['a subnet changes VNI', gs({ subnetStates: { S: subnetState('S', { tunnelId: '6001', revisionNumber: 2 }, 2) } })],
    ['deletes', gs({ portStates: { P2: portState('P2', { revisionNumber: 2 }, 4) }, neighborStates: { 'L2/P1': neighborState('P1', 3, { revisionNumber: 2 }, 4) } })],
  ];
  const comparable = (flows: Iterable<Flow>): string[] => [...flows].map((f) => `${flowKey({ ...f, key: undefined })} ${f.cookie.toString(16)} ${actionsKey(f.actions)}`).sort();
  for (const [name, g] of steps) {
    const r = await intake.apply({ v2: g });
    for (const x of r.results.toArray()) t.is(x.status, 'SUCCESS', `${name}: ${x.kind} ${x.id} ${x.detail}`);
    const held = await sim.readBack();
    t.deepEqual(comparable(held.flows), comparable(dp.installed.flows.values()), `switch == agent after ${name}`);
    t.deepEqual(comparable(held.flows), comparable(FlowDataplane.recompute(store, sim.bindings).activeFlows()), `switch == recompute after ${name}`);
  }
});

test('a commit refused on br-int after br-ex took its bundle: br-ex\'s part is recorded as installed, only the refused owner fails, switch == agent', async (t) => {
  const { SimBackend } = await import('../dataplane/backends/sim.js');
  const { Fabric } = await import('../ovs-sim/index.js');
  const EXT = { id: 0, name: 'ext_classify', purpose: 'test', miss: 'drop', fields: ['in_port'], bridge: 'br-ex' } as const;
  const ext: Feature = {
    name: 'ext', namespace: 'ext', programmer: 'pipeline', purpose: 'test', owners: { singleton: true },
    build(_ctx, _key, out) {
      out.flow(EXT, 100, [eq('in_port', 7)], [{ type: 'output', port: 1 }]);
      out.group({ bridge: 'br-ex', id: 1, type: 'all', buckets: [{ actions: [{ type: 'output', port: 2 }] }] });
    },
  };
  // On br-int: a flow that points at a group br-int does not have, until the fault is fixed.
  const bad: Feature = {
    name: 'bad', namespace: 'bad', programmer: 'pipeline', purpose: 'test', owners: { singleton: true },
    build(_ctx, _key, out) {
      out.flow(TABLES.CLASSIFY, 5, [eq('in_port', 9)], [{ type: 'group', id: 77 }]);
    },
  };
  const sim = new SimBackend(new Fabric().addHost('hv', HOST_IP), true);
  const dp = new FlowDataplane(sim, undefined, undefined, new FeatureRegistry([...FEATURES, ext, bad]), ['br-int', 'br-ex']);
  await dp.start(new ResourceStore());
  t.true(dp.refused.has('bad'), [...dp.refused.keys()].join(','));
  t.regex(dp.refused.get('bad') ?? '', /OFPBAC_BAD_OUT_GROUP/);
  const held = await sim.readBack();
  const comparable = (flows: Iterable<Flow>): string[] => [...flows].map((f) => `${f.bridge ?? 'br-int'} ${flowKey({ ...f, key: undefined })} ${actionsKey(f.actions)}`).sort();
  t.deepEqual(comparable(held.flows), comparable(dp.installed.flows.values()), 'switch == agent');
  t.true(held.flows.some((f) => f.bridge === 'br-ex'), 'br-ex holds its flow');
  t.is(dp.installed.groups.get('br-ex|1')?.type, 'all');
  // The fault goes (someone adds group 77 to br-int): the retry installs the rest by itself, and
  // br-ex's objects, already recorded, are not sent again (no "group exists").
  const { emptyChanges } = await import('../dataplane/backend.js');
  const fix = emptyChanges();
  fix.groups.add.push({ id: 77, type: 'all', buckets: [{ actions: [{ type: 'output', port: 3 }] }] });
  await sim.commit(fix);
  for (let i = 0; i < 600 && dp.refused.size > 0; i++) await new Promise((res) => setTimeout(res, 100));
  t.is(dp.refused.size, 0);
  const after = await sim.readBack();
  t.deepEqual(comparable(after.flows), comparable(dp.installed.flows.values()));
  t.true(after.flows.some((f) => f.table === 0 && f.priority === 5), 'the once refused flow is installed');
  await dp.close();
});

test('review regressions: a retry is not lost when another owner of a shared key is accepted', async (t) => {
  const { store, sw, dp, intake } = setup();
  await dp.start(new ResourceStore());
  // P1 and N1 answer ARP for the same address; P1's local delivery is refused (its table "full").
  sw.refuse = (f) => f.table === TABLES.LOCAL_L2.id && f.priority === 100;
  await intake.apply({ v2: GoalStateV2.fromPartial({
    subnetStates: { S: subnetState('S') },
    portStates: { P1: portState('P1', { fixedIps: [{ subnetId: 'S', ipAddress: '10.1.0.9' }] }) },
    neighborStates: { 'L2/N1': neighborState('N1', 1, { fixedIps: [{ neighborType: 0, subnetId: 'S', ipAddress: '10.1.0.9', arionGroup: '', tunnelId: 0 }] }) },
  }) });
  t.true(dp.refused.has('port:P1'));
  // N1 changes MAC: its flows (the shared ARP key among them) are accepted.
  await intake.apply({ v2: GoalStateV2.fromPartial({ neighborStates: { 'L2/N1': neighborState('N1', 1, { revisionNumber: 2, macAddress: 'fa:16:3e:00:00:99', fixedIps: [{ neighborType: 0, subnetId: 'S', ipAddress: '10.1.0.9', arionGroup: '', tunnelId: 0 }] }) } }) });
  t.true(dp.refused.has('port:P1'), 'still waiting for the switch to take P1');
  sw.refuse = () => false;
  for (let i = 0; i < 600 && dp.refused.size > 0; i++) await new Promise((res) => setTimeout(res, 100));
  t.deepEqual(text(sw.table.values()), text(FlowDataplane.recompute(store, sw.bindings).activeFlows()), 'P1 installed in the end');
  await dp.close();
});

test('review regressions: a resource whose change reaches a refused flood list through a topic answers FAILURE', async (t) => {
  const { sw, dp, intake } = setup();
  await dp.start(new ResourceStore());
  await intake.apply({ v2: GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S') }, portStates: { P1: portState('P1') }, neighborStates: { 'L2/N1': neighborState('N1', 1) } }) });
  sw.refuse = (f) => f.table === TABLES.REMOTE_L2.id && f.priority === 50;
  // N2 lives on a new host: the network's flood list changes, and the switch refuses it.
  const r = await intake.apply({ v2: GoalStateV2.fromPartial({ neighborStates: { 'L2/N2': neighborState('N2', 2) } }) });
  t.is(r.results.toArray()[0]?.status, 'FAILURE');
  t.regex(r.results.toArray()[0]?.detail ?? '', /flood-remote:5001: OFPFMFC_TABLE_FULL/);
  assertSwitchEqualsAgent(t, sw, dp, 'the refused flood list');
  await dp.close();
});

test('review regressions: a change that alters no flow is not SUCCESS while the switch is down', async (t) => {
  const { sw, dp, intake } = setup();
  await dp.start(new ResourceStore());
  await intake.apply({ v2: GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S') }, neighborStates: { 'L2/N1': neighborState('N1', 1) } }) });
  sw.down = true;
  const r = await intake.apply({ v2: GoalStateV2.fromPartial({ neighborStates: { 'L2/N1': neighborState('N1', 1, { revisionNumber: 2, name: 'renamed' }) } }) });
  t.is(r.results.toArray()[0]?.status, 'FAILURE');
  sw.down = false;
  await dp.close();
});

test('review regressions: bisecting a refusal that hits hundreds of owners costs a bounded number of commits', async (t) => {
  const { sw, dp, intake } = setup();
  await dp.start(new ResourceStore());
  sw.refuse = (f) => f.table === TABLES.REMOTE_L2.id && f.priority === 100;
  const before = dp.commits;
  const gs = GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S') } });
  for (let i = 1; i <= 300; i++) gs.neighborStates[`L2/N${i}`] = neighborState(`N${i}`, i);
  const r = await intake.apply({ v2: gs });
  const statuses = r.results.toArray().filter((x) => x.kind === 'neighbor').map((x) => x.status);
  t.is(statuses.filter((x) => x === 'FAILURE').length, 300);
  t.true(dp.commits - before <= 70, `${dp.commits - before} commits`);
  assertSwitchEqualsAgent(t, sw, dp, 'the bounded bisection');
  sw.refuse = () => false;
  await dp.close();
});

test('review regressions: an owner\'s own conjunction clauses on one key merge; dl_type renders without a shorthand; ct_state masked by its kept bits is exact', async (t) => {
  const f: Feature = {
    name: 'c', namespace: 'c', programmer: 'pipeline', purpose: 'test', owners: { singleton: true },
    build(_ctx, _key, out) {
      out.flow(TABLES.SG_INGRESS, 100, [reg(REGISTERS.outPort, 5)], [{ type: 'conjunction', id: 1, clause: 1, nClauses: 2 }]);
      out.flow(TABLES.SG_INGRESS, 100, [reg(REGISTERS.outPort, 5)], [{ type: 'conjunction', id: 2, clause: 1, nClauses: 2 }]);
    },
  };
  const out = new OwnerBuilder(f, 'c');
  f.build({} as never, '', out);
  t.is(out.flows.length, 1);
  t.is(formatFlow(out.flows[0]!).split(' actions=')[1], 'conjunction(1,1/2),conjunction(2,1/2)');
  const { matchText } = await import('../dataplane/flow-text.js');
  t.is(matchText([eq('in_port', 3), eq('dl_type', 0x88cc)]), 'in_port=3,dl_type=0x88cc');
  const { masked } = await import('../dataplane/flow.js');
  t.is(flowKey({ table: 0, priority: 1, match: [masked('ct_state', 0x22, 0xff)] }), flowKey({ table: 0, priority: 1, match: [eq('ct_state', 0x22)] }));
});

test('listings sort flows of one table and priority by their match with fields named, whatever the keys look like', (t) => {
  // Keys name fields by rank (reg6 sorts before dl_dst in them); listings keep the order by name.
  const byReg: Flow = { table: 82, priority: 110, match: [reg(REGISTERS.inPort, 0)], actions: [], cookie: 0n };
  const byMac: Flow = { table: 82, priority: 110, match: [masked('dl_dst', 0x010000000000n, 0x010000000000n)], actions: [], cookie: 0n };
  const first: Flow = { table: 82, priority: 200, match: [reg(REGISTERS.inPort, 1)], actions: [], cookie: 0n };
  t.true(flowKey(byReg) < flowKey(byMac), 'the keys order them the other way');
  t.deepEqual(sortFlows([byReg, byMac, first]), [first, byMac, byReg]);
});

test('an owner\'s inputs are each recorded once, in the order first read, whether it read a few or many', (t) => {
  const view = { get: () => undefined, list: () => [], count: () => 0 } as unknown as ConstructorParameters<typeof TrackingContext>[0];
  const topology = { routed: () => false, portsOf: () => [] } as unknown as ConstructorParameters<typeof TrackingContext>[1];
  const bindings = { ofport: () => undefined } as unknown as ConstructorParameters<typeof TrackingContext>[2];
  const ctx = new TrackingContext(view, topology, bindings, new ConjunctionIds());
  // A few (deduplicated in place): the subnet read, read again to ask whether it is routed, then others.
  ctx.begin('neighbor:L2/n1', 'neighbor', 'L2/n1');
  ctx.view.get('neighbor', 'L2/n1');
  ctx.view.get('subnet', 'A');
  ctx.topology.routed('A');
  ctx.view.get('subnet', 'B');
  ctx.view.get('subnet', 'A');
  ctx.topology.portsOf('B');
  ctx.view.get('subnet', 'B');
  t.deepEqual(ctx.end(), ['subnet:A', 'subnet:B', 'ports-of:B'], 'its own resource is no input; repeats go');
  // Many (through a set): the same rule.
  ctx.begin('flood:x', null, '');
  for (let round = 0; round < 2; round++) for (let i = 0; i < 20; i++) ctx.view.get('port', `p${i}`);
  t.deepEqual(ctx.end(), Array.from({ length: 20 }, (_, i) => `port:p${i}`));
});
