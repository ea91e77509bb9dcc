// The sim backend's compiled path against its text path: for every flow shape the features
// produce (ports, remote neighbors on VXLAN and Geneve networks, gateways, floods over more
// than FLOOD_CHUNK hosts and ports, updates and deletes) and for hand-made flows with every
// action type, a group of each type and a meter, the flow mods the simulator gets are the same
// objects, `dump-flows`, `dump-groups` and `ofproto/trace` print the same, a refused bundle is
// refused for the same reason and changes nothing, and readBack() gives back what was committed.
import test, { type ExecutionContext } from 'ava';
import { Intake } from '../agent/intake.js';
import { silentLogger } from '../agent/log.js';
import { ResourceStore } from '../agent/store.js';
import { DryRunBackend, type FlowBackend, type FlowChanges, SwitchRefusedError, emptyChanges } from '../dataplane/backend.js';
import { SimBackend } from '../dataplane/backends/sim.js';
import { type SimCommand, textBundle } from '../dataplane/backends/sim.js';
import { ETH_TYPE, IP_PROTO, ipv4Value, macValue } from '../dataplane/fields.js';
import { type Action, type Flow, type Group, type MatchField, type Meter, type RegField, actionsKey, canonicalMatch, eq, flowKey, masked, sameGroup, sameMeter } from '../dataplane/flow.js';
import { formatFlow, formatGroup, formatMatch, formatMeter } from '../dataplane/flow-text.js';
import { FlowDataplane } from '../dataplane/flow-dataplane.js';
import { BRIDGE, FLOOD_CHUNK, REGISTERS, TUNNEL_PORTS } from '../dataplane/pipeline.js';
import { type Bridge, bundleFlowText, dumpFlows, dumpGroups, Fabric, type FlowMod, flowModFromText, groupModFromText, meterModFromText } from '../ovs-sim/index.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { neighborState, portState, subnetState } from './helpers/agents.js';

const HOST = '10.0.0.11';

// ---- comparing ----

/** A flow mod as plain data: fields by name, bigints and words as text; `usable` (the client's protocol choice) left out. */
function plain(x: unknown): unknown {
  if (typeof x === 'bigint') return `${x}n`;
  if (x instanceof Uint32Array || x instanceof Uint8Array) return Array.from(x);
  if (Array.isArray(x)) return x.map(plain);
  if (x !== null && typeof x === 'object') {
    if ('valueMask' in x && 'nxm' in x && 'name' in x) return `field:${String(x.name)}`;
    return Object.fromEntries(Object.entries(x).filter(([k]) => k !== 'usable').sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, plain(v)]));
  }
  return x;
}

const lines = (f: Flow, command: SimCommand): string => (command === 'delete_strict' ? `delete_strict ${formatMatch(f)}` : `${command} ${formatFlow(f)}`);

/** Each flow's compiled flow mod is the one parsing its text gives, for all three commands. */
function sameFlowMods(t: ExecutionContext, compiled: SimBackend, bridge: Bridge, flows: Iterable<Flow>): number {
  let n = 0;
  for (const f of flows) {
    for (const command of ['add', 'modify_strict', 'delete_strict'] as const) {
      const c: FlowMod = compiled.compiler.flowMod(f, command);
      const x: FlowMod = flowModFromText(bridge, lines(f, command));
      const a = JSON.stringify(plain(c));
      const b = JSON.stringify(plain(x));
      if (a !== b) {
        t.fail(`${lines(f, command)}\ncompiled: ${a}\ntext:     ${b}`);
        return n;
      }
      n += 1;
    }
  }
  return n;
}

function bridgeOf(b: SimBackend): Bridge {
  return b.host.bridge(BRIDGE);
}

/** Same dumps; and each backend's readBack is what it was given. */
async function sameSwitch(t: ExecutionContext, text: SimBackend, compiled: SimBackend, want: { flows: Iterable<Flow>; groups?: Iterable<Group>; meters?: Iterable<Meter> }): Promise<void> {
  const bt = bridgeOf(text);
  const bc = bridgeOf(compiled);
  t.deepEqual(dumpFlows(bc), dumpFlows(bt), 'dump-flows');
  t.deepEqual(dumpGroups(bc), dumpGroups(bt), 'dump-groups');
  const flows = [...want.flows];
  const expect = flows.map((f) => `${flowKey(f)} ${actionsKey(f.actions)}`).sort();
  for (const backend of [text, compiled]) {
    const held = await backend.readBack();
    const got = held.flows.map((f) => `${flowKey(f)} ${actionsKey(f.actions)}`).sort();
    t.is(held.flows.length, bridgeOf(backend).flows().length, `${backend.path}: every rule reads back`);
    t.deepEqual(got, expect, `${backend.path}: readBack flows == committed flows (flowKey + actions)`);
    // The cookies too.
    const cookies = new Map(flows.map((f) => [flowKey(f), f.cookie]));
    t.true(held.flows.every((f) => cookies.get(flowKey(f)) === f.cookie), `${backend.path}: cookies read back`);
    const groups = [...(want.groups ?? [])].sort((a, b) => a.id - b.id);
    t.is(held.groups.length, groups.length, `${backend.path}: groups read back`);
    held.groups.forEach((g, i) => t.true(g.id === groups[i]?.id && sameGroup(g, groups[i]), `${backend.path}: group ${g.id} reads back as committed`));
    const meters = [...(want.meters ?? [])].sort((a, b) => a.id - b.id);
    t.is(held.meters.length, meters.length, `${backend.path}: meters read back`);
    held.meters.forEach((m, i) => t.true(m.id === meters[i]?.id && sameMeter(m, meters[i]), `${backend.path}: meter ${m.id} reads back as committed`));
  }
}

async function sameTraces(t: ExecutionContext, text: SimBackend, compiled: SimBackend, specs: string[]): Promise<void> {
  for (const spec of specs) {
    const a = await text.trace(spec);
    const b = await compiled.trace(spec);
    t.is(b, a, `trace ${spec}`);
    t.notRegex(a, /^Bad|error/i, `trace ${spec} ran`);
  }
}

// ---- the features' flows: the real dataplane on both paths ----

const mac = (n: number): string => `fa:16:3e:${((n >> 16) & 255).toString(16).padStart(2, '0')}:${((n >> 8) & 255).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`;

interface Twin {
  text: SimBackend;
  compiled: SimBackend;
  dps: FlowDataplane[];
  apply(gs: GoalStateV2): Promise<void>;
}

async function twin(): Promise<Twin> {
  const text = new SimBackend(new Fabric().addHost('hv', HOST), true, { path: 'text' });
  const compiled = new SimBackend(new Fabric().addHost('hv', HOST), true);
  const dps: FlowDataplane[] = [];
  const intakes: Intake[] = [];
  for (const backend of [text, compiled]) {
    const store = new ResourceStore();
    const dp = new FlowDataplane(backend);
    await dp.start(store);
    dps.push(dp);
    intakes.push(new Intake(store, dp, silentLogger(), HOST));
  }
  return {
    text, compiled, dps,
    async apply(gs) {
      for (const intake of intakes) {
        const r = await intake.apply({ v2: gs });
        const bad = r.results.toArray().filter((x) => x.status !== 'SUCCESS' && x.status !== 'PENDING');
        if (bad.length > 0) throw new Error(`goal state refused: ${JSON.stringify(bad.slice(0, 3))}`);
      }
    },
  };
}

function features(): GoalStateV2[] {
  // S1: VXLAN with a gateway; S2: Geneve with a gateway; S3: Geneve, no gateway, 300 local ports.
  const first = GoalStateV2.fromPartial({});
  first.subnetStates.S1 = subnetState('S1', { cidr: '10.1.0.0/16', tunnelId: '100', networkType: 0, gateway: { ipAddress: '10.1.0.1', macAddress: '6c:dd:ee:00:00:01' } });
  first.subnetStates.S2 = subnetState('S2', { cidr: '10.2.0.0/16', tunnelId: '200', networkType: 3, gateway: { ipAddress: '10.2.0.1', macAddress: '6c:dd:ee:00:00:02' } });
  first.subnetStates.S3 = subnetState('S3', { cidr: '10.3.0.0/16', tunnelId: '300', networkType: 3, gateway: undefined });
  first.portStates.P1 = portState('P1', { macAddress: mac(1), fixedIps: [{ subnetId: 'S1', ipAddress: '10.1.0.5' }], allowAddressPairs: [{ ipAddress: '10.1.0.50', macAddress: mac(0x50) }] });
  first.portStates.P2 = portState('P2', { macAddress: mac(2), fixedIps: [{ subnetId: 'S2', ipAddress: '10.2.0.5' }, { subnetId: 'S2', ipAddress: '10.2.0.6' }] });
  for (let i = 0; i < FLOOD_CHUNK + 44; i++) {
    first.portStates[`Q${i}`] = portState(`Q${i}`, { macAddress: mac(0x10000 + i), fixedIps: [{ subnetId: 'S3', ipAddress: `10.3.${i >> 7}.${(i & 127) + 2}` }] });
  }
  // Remote neighbors: in S1 on more hosts than one flood flow carries, a few in S2 and S3.
  for (let i = 0; i < 2 * FLOOD_CHUNK + 100; i++) {
    first.neighborStates[`L2/N${i}`] = neighborState(`N${i}`, i, {
      macAddress: mac(0x20000 + i), hostIpAddress: `10.0.${1 + (i >> 7)}.${(i & 127) + 1}`,
      fixedIps: [{ neighborType: 0, subnetId: 'S1', ipAddress: `10.1.${1 + (i >> 7)}.${(i & 127) + 1}`, arionGroup: '', tunnelId: 0 }],
    });
  }
  for (let i = 0; i < 20; i++) {
    first.neighborStates[`L2/G${i}`] = neighborState(`G${i}`, i, {
      macAddress: mac(0x30000 + i), hostIpAddress: `10.0.9.${i + 1}`,
      fixedIps: [{ neighborType: 0, subnetId: i % 2 ? 'S2' : 'S3', ipAddress: `10.${i % 2 ? 2 : 3}.9.${i + 1}`, arionGroup: '', tunnelId: 0 }],
    });
  }
  // Then: neighbors move and go, a port goes down, a gateway changes, a port leaves.
  const second = GoalStateV2.fromPartial({});
  for (let i = 0; i < 40; i++) {
    second.neighborStates[`L2/N${i}`] = neighborState(`N${i}`, i, {
      macAddress: mac(0x20000 + i), hostIpAddress: `10.0.7.${i + 1}`,
      fixedIps: [{ neighborType: 0, subnetId: 'S1', ipAddress: `10.1.${1 + (i >> 7)}.${(i & 127) + 1}`, arionGroup: '', tunnelId: 0 }],
    }, 2);
  }
  for (let i = 40; i < 60; i++) second.neighborStates[`L2/N${i}`] = neighborState(`N${i}`, i, {}, 4);
  second.portStates.P2 = portState('P2', { macAddress: mac(2), adminStateUp: false, fixedIps: [{ subnetId: 'S2', ipAddress: '10.2.0.5' }] }, 2);
  second.subnetStates.S1 = subnetState('S1', { cidr: '10.1.0.0/16', tunnelId: '100', networkType: 0, gateway: { ipAddress: '10.1.0.1', macAddress: '6c:dd:ee:00:00:99' } }, 2);
  for (let i = 0; i < 30; i++) second.portStates[`Q${i}`] = portState(`Q${i}`, {}, 4);
  return [first, second];
}

test('the features\' flows: compiled flow mods, dumps, traces and read-back equal the text path\'s', async (t) => {
  const tw = await twin();
  const steps = features();
  const p1 = () => tw.compiled.bindings.ofport('P1')!;
  const traces = (): string[] => [
    // ARP for the gateway, for a remote neighbor, for an unknown address; unicast to a remote
    // neighbor; broadcast (head-end replication over every chunk); DHCP; from each tunnel.
    `in_port=${p1()},arp,dl_src=${mac(1)},dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=10.1.0.5,arp_tpa=10.1.0.1,arp_sha=${mac(1)}`,
    `in_port=${p1()},arp,dl_src=${mac(1)},dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=10.1.0.5,arp_tpa=10.1.1.7,arp_sha=${mac(1)}`,
    `in_port=${p1()},arp,dl_src=${mac(1)},dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=10.1.0.5,arp_tpa=10.1.200.200,arp_sha=${mac(1)}`,
    `in_port=${p1()},ip,dl_src=${mac(1)},dl_dst=${mac(0x20000 + 77)},nw_src=10.1.0.5,nw_dst=10.1.1.78`,
    `in_port=${p1()},udp,dl_src=${mac(1)},dl_dst=ff:ff:ff:ff:ff:ff,nw_src=10.1.0.5,nw_dst=10.1.255.255,udp_src=9,udp_dst=9`,
    `in_port=${p1()},udp,dl_src=${mac(1)},dl_dst=ff:ff:ff:ff:ff:ff,nw_src=0.0.0.0,nw_dst=255.255.255.255,udp_src=68,udp_dst=67`,
    `in_port=${TUNNEL_PORTS.vxlan.ofport},tun_id=100,tun_src=10.0.1.5,tun_dst=${HOST},ip,dl_src=${mac(0x20000 + 4)},dl_dst=${mac(1)},nw_src=10.1.1.5,nw_dst=10.1.0.5`,
    `in_port=${TUNNEL_PORTS.geneve.ofport},tun_id=300,tun_src=10.0.9.1,tun_dst=${HOST},ip,dl_src=${mac(0x30000)},dl_dst=ff:ff:ff:ff:ff:ff,nw_src=10.3.9.1,nw_dst=10.3.255.255`,
  ];
  let mods = 0;
  for (const gs of steps) {
    await tw.apply(gs);
    const [dpText, dpCompiled] = tw.dps as [FlowDataplane, FlowDataplane];
    // The two dataplanes wanted the same flows, and each switch holds them.
    t.deepEqual([...dpCompiled.installed.flows.keys()].sort(), [...dpText.installed.flows.keys()].sort());
    t.is(bridgeOf(tw.compiled).flows().length, dpCompiled.installed.size);
    mods += sameFlowMods(t, tw.compiled, bridgeOf(tw.text), dpCompiled.installed.flows.values());
    await sameSwitch(t, tw.text, tw.compiled, { flows: dpCompiled.installed.flows.values(), groups: [...dpCompiled.installed.groups.values()], meters: [...dpCompiled.installed.meters.values()] });
    await sameTraces(t, tw.text, tw.compiled, traces());
  }
  const flows = [...tw.dps[1]!.installed.flows.values()];
  // What the features made: floods in more than one chunk, both tunnels, the gateway answers.
  t.true(flows.some((f) => f.table === 45), 'remote flood chunks');
  t.true(flows.some((f) => f.table === 55), 'local flood chunks');
  t.true(flows.some((f) => f.actions.some((a) => a.type === 'load' && a.value === BigInt(TUNNEL_PORTS.geneve.ofport))), 'geneve neighbors');
  t.true(flows.some((f) => f.actions.some((a) => a.type === 'load' && a.value === BigInt(TUNNEL_PORTS.vxlan.ofport))), 'vxlan neighbors');
  t.is(tw.compiled.compiler.stats.directShapes, 0, 'every match shape filled from its template');
  t.log(`${flows.length} flows, ${mods} flow mods compared, ${tw.compiled.compiler.stats.matchShapes} match shapes, ${tw.compiled.compiler.stats.actionShapes} action shapes`);
});

test('a dataplane restarted on the switch adopts what readBack() gives and commits nothing', async (t) => {
  const tw = await twin();
  await tw.apply(features()[0]!);
  const before = dumpFlows(bridgeOf(tw.compiled));
  const store = new ResourceStore();
  const dp = new FlowDataplane(new SimBackend(tw.compiled.host, true));
  // The store as the restarted agent has it again (from its state dir): filled without a switch.
  await new Intake(store, new FlowDataplane(new DryRunBackend()), silentLogger(), HOST).apply({ v2: features()[0]! });
  await dp.start(store);
  t.is(dp.commits, 0, 'nothing to change');
  t.is(dp.installed.size, bridgeOf(tw.compiled).flows().length);
  t.deepEqual(dumpFlows(bridgeOf(tw.compiled)), before);
});

// ---- hand-made flows: every action type, groups of each type, a meter ----

const reg6lo: RegField = { name: 'reg6lo', field: 'reg6', ofs: 0, nbits: 16, purpose: 'test' };
const reg3mid: RegField = { name: 'reg3mid', field: 'reg3', ofs: 8, nbits: 12, purpose: 'test' };
const tunLow: RegField = { name: 'tunLow', field: 'tun_id', ofs: 0, nbits: 24, purpose: 'test' };
const ctZone: RegField = { name: 'zone', field: 'reg4', ofs: 0, nbits: 16, purpose: 'test' };
const COOKIE = 0x0900_0000_0000_0001n;

const ip = [eq('dl_type', ETH_TYPE.ip)];
const arp = [eq('dl_type', ETH_TYPE.arp)];

function handFlows(): Flow[] {
  const f = (table: number, priority: number, match: MatchField[], actions: Action[], cookie = COOKIE): Flow => ({ table, priority, match: canonicalMatch(match), actions, cookie });
  return [
    f(0, 100, [eq('in_port', 1)], [{ type: 'set_field', field: 'metadata', value: 7n }, { type: 'load', dst: REGISTERS.inPort, value: 1n }, { type: 'resubmit', table: 20 }]),
    f(0, 100, [eq('in_port', TUNNEL_PORTS.geneve.ofport)], [{ type: 'move', src: { field: 'tun_id', ofs: 0, nbits: 24 }, dst: { field: 'metadata', ofs: 0, nbits: 24 } }, { type: 'resubmit', table: 50 }]),
    f(0, 90, [eq('in_port', 2), eq('dl_src', macValue('fa:16:3e:00:00:02'))], [{ type: 'meter', id: 5 }, { type: 'load', dst: reg6lo, value: 2n }, { type: 'load', dst: reg3mid, value: 0xabcn }, { type: 'resubmit', table: 20 }]),
    f(0, 80, [eq('in_port', 3)], [{ type: 'group', id: 1 }]),
    f(0, 0, [], []),
    f(10, 200, [eq('reg6', 2), eq('metadata', 7), eq('dl_src', macValue('fa:16:3e:00:00:02')), ...ip, eq('nw_src', ipv4Value('10.0.0.2'))], [{ type: 'resubmit', table: 15 }]),
    f(10, 150, [eq('reg6', 2), masked('dl_dst', 0x010000000000n, 0x010000000000n)], [{ type: 'output', port: 4 }, { type: 'output', port: 0xfffd }, { type: 'in_port' }]),
    f(15, 300, [...ip, eq('nw_proto', IP_PROTO.tcp), masked('nw_dst', ipv4Value('10.0.0.0'), 0xffffff00n), eq('tp_dst', 80)], [{ type: 'conjunction', id: 9, clause: 1, nClauses: 2 }]),
    f(15, 300, [...ip, eq('nw_proto', IP_PROTO.tcp), masked('tp_src', 0x400, 0xfc00)], [{ type: 'conjunction', id: 9, clause: 2, nClauses: 2 }, { type: 'conjunction', id: 10, clause: 1, nClauses: 3 }]),
    f(15, 310, [eq('conj_id', 9), ...ip], [{ type: 'ct', commit: true, zone: 5, table: 20, nat: null }]),
    f(15, 320, [eq('ct_state', 0x21), eq('ct_zone', 5), masked('ct_mark', 0x10, 0xf0), ...ip], [{ type: 'ct', commit: false, zone: ctZone, table: null, nat: '' }, { type: 'resubmit', table: 20 }]),
    f(15, 330, [masked('ct_state', 0x20, 0x30), ...ip, eq('nw_proto', IP_PROTO.udp), eq('tp_src', 68), eq('tp_dst', 67)], [{ type: 'ct', commit: true, zone: null, table: 25, nat: 'src=10.9.0.1-10.9.0.9:1000-2000,random' }]),
    f(15, 340, [...ip, eq('nw_proto', IP_PROTO.icmp), eq('icmp_type', 8), eq('icmp_code', 0), eq('nw_ttl', 64)], [{ type: 'ct_clear' }, { type: 'dec_ttl' }, { type: 'set_field', field: 'nw_dst', value: ipv4Value('10.0.0.9') }, { type: 'resubmit', table: 20 }]),
    f(20, 100, [...arp, eq('reg6', 2), eq('arp_op', 1), eq('arp_tpa', ipv4Value('10.0.0.1')), masked('arp_spa', ipv4Value('10.0.0.0'), 0xffff0000n)], [
      { type: 'move', src: { field: 'dl_src', ofs: 0, nbits: 48 }, dst: { field: 'dl_dst', ofs: 0, nbits: 48 } },
      { type: 'set_field', field: 'dl_src', value: macValue('6c:dd:ee:00:00:01') }, { type: 'set_field', field: 'arp_op', value: 2n },
      { type: 'move', src: { field: 'arp_sha', ofs: 0, nbits: 48 }, dst: { field: 'arp_tha', ofs: 0, nbits: 48 } },
      { type: 'move', src: { field: 'arp_spa', ofs: 0, nbits: 32 }, dst: { field: 'arp_tpa', ofs: 0, nbits: 32 } },
      { type: 'set_field', field: 'arp_sha', value: macValue('6c:dd:ee:00:00:01') }, { type: 'set_field', field: 'arp_spa', value: ipv4Value('10.0.0.1') }, { type: 'in_port' },
    ]),
    f(20, 90, [...arp, eq('arp_op', 1), eq('arp_sha', macValue('fa:16:3e:00:00:02')), eq('arp_tha', 0)], [{ type: 'controller', userdata: '01' }], 0x0500_0000_0000_0002n),
    f(25, 100, [eq('dl_type', ETH_TYPE.ipv6), eq('nw_proto', IP_PROTO.udp), masked('ipv6_src', 0xfe80n << 112n, 0xffffn << 112n), eq('ipv6_dst', 0xff02n << 112n | 2n), eq('tp_dst', 547)], [
      // 128 bits: two NXAST_REG_LOADs on the wire, one load read back.
      { type: 'load', dst: { name: 'v6', field: 'ipv6_src', ofs: 0, nbits: 128, purpose: 'test' }, value: (0xfe80n << 112n) | 0x1234n },
      { type: 'set_field', field: 'ipv6_dst', value: (0xff02n << 112n) | 1n }, { type: 'controller', userdata: '02.ab' },
    ]),
    f(25, 90, [eq('dl_type', ETH_TYPE.ipv6), eq('nw_proto', IP_PROTO.icmpv6), eq('icmp_type', 135), eq('icmp_code', 0)], [{ type: 'output', port: 0xfffd }]),
    f(40, 100, [eq('metadata', 7), eq('dl_dst', macValue('fa:16:3e:00:00:09'))], [
      { type: 'set_field', field: 'tun_id', value: 7n }, { type: 'set_field', field: 'tun_dst', value: ipv4Value('10.0.0.12') },
      { type: 'load', dst: REGISTERS.outPort, value: BigInt(TUNNEL_PORTS.geneve.ofport) }, { type: 'resubmit', table: 70 },
    ]),
    f(40, 90, [eq('tun_id', 0x123456), eq('tun_dst', ipv4Value('10.0.0.11')), masked('metadata', 0x700, 0xff00)], [{ type: 'load', dst: tunLow, value: 0x42n }, { type: 'load', dst: REGISTERS.network, value: 0x1234_5678_9abc_def0n }, { type: 'group', id: 2 }]),
    f(45, 50, [eq('reg7', 1), eq('metadata', 7), masked('dl_dst', 0x010000000000n, 0x010000000000n)], [{ type: 'group', id: 3 }, { type: 'group', id: 4 }]),
    f(50, 100, [masked('reg0', 0x10, 0x10), masked('reg1', 0, 0x1), eq('reg2', 3), eq('reg3', 4), eq('reg4', 5), eq('reg5', 6), eq('reg7', 8)], [{ type: 'set_field', field: 'in_port', value: 5n }, { type: 'resubmit', table: 70 }]),
    f(70, 0, [], [{ type: 'output_reg', src: REGISTERS.outPort }]),
    f(70, 10, [eq('reg5', 0)], [{ type: 'output_reg', src: reg6lo }]),
  ];
}

/** Groups as the switch reads back: a bucket's default weight (1 in a select group) is left out. */
function handGroups(): Group[] {
  return [
    { id: 1, type: 'all', buckets: [{ actions: [{ type: 'output', port: 4 }] }, { actions: [{ type: 'set_field', field: 'tun_dst', value: ipv4Value('10.0.0.13') }, { type: 'output', port: TUNNEL_PORTS.vxlan.ofport }] }] },
    { id: 2, type: 'select', buckets: [{ actions: [{ type: 'output', port: 4 }], weight: 3 }, { actions: [{ type: 'load', dst: reg6lo, value: 9n }, { type: 'resubmit', table: 70 }] }] },
    { id: 3, type: 'indirect', buckets: [{ actions: [{ type: 'move', src: { field: 'reg6', ofs: 0, nbits: 32 }, dst: { field: 'reg5', ofs: 0, nbits: 32 } }, { type: 'output_reg', src: REGISTERS.outPort }] }] },
    { id: 4, type: 'ff', buckets: [{ actions: [{ type: 'output', port: 4 }], watchPort: 4 }, { actions: [{ type: 'output', port: 5 }], watchPort: 5 }] },
  ];
}

const handMeters = (): Meter[] => [{ id: 5, unit: 'pktps', rate: 1000, burst: 100 }, { id: 6, unit: 'kbps', rate: 20000, burst: 2000 }];

async function pair(): Promise<[SimBackend, SimBackend]> {
  const text = new SimBackend(new Fabric().addHost('hv', HOST), false, { path: 'text' });
  const compiled = new SimBackend(new Fabric().addHost('hv', HOST), false);
  for (const b of [text, compiled]) {
    await b.start();
    for (const n of [1, 2, 3, 4, 5]) bridgeOf(b).addPort(`p${n}`, 'system', { ofportRequest: n });
  }
  return [text, compiled];
}

async function commitBoth(text: FlowBackend, compiled: FlowBackend, c: FlowChanges): Promise<void> {
  await text.commit(c);
  await compiled.commit(c);
}

const HAND_TRACES = [
  'in_port=1,ip,dl_src=fa:16:3e:00:00:01,dl_dst=fa:16:3e:00:00:09,nw_src=10.0.0.1,nw_dst=10.0.0.9',
  'in_port=2,arp,dl_src=fa:16:3e:00:00:02,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=10.0.0.2,arp_tpa=10.0.0.1,arp_sha=fa:16:3e:00:00:02',
  'in_port=2,tcp,dl_src=fa:16:3e:00:00:02,dl_dst=fa:16:3e:00:00:09,nw_src=10.0.0.2,nw_dst=10.0.0.7,tp_src=1025,tp_dst=80',
  'in_port=3,ip,dl_src=fa:16:3e:00:00:03,dl_dst=ff:ff:ff:ff:ff:ff,nw_src=10.0.0.3,nw_dst=10.0.0.255',
  `in_port=${TUNNEL_PORTS.geneve.ofport},tun_id=7,tun_src=10.0.0.12,tun_dst=${HOST},ip,dl_src=fa:16:3e:00:00:09,dl_dst=fa:16:3e:00:00:01,nw_src=10.0.0.9,nw_dst=10.0.0.1`,
];

test('hand-made flows with every action type, groups and meters: same flow mods, dumps, traces, read-back; refusals change nothing', async (t) => {
  const [text, compiled] = await pair();
  const flows = handFlows();
  const groups = handGroups();
  const meters = handMeters();
  // Every action type of the model is used.
  const used = new Set(flows.flatMap((f) => f.actions.map((a) => a.type)));
  for (const type of ['output', 'output_reg', 'in_port', 'resubmit', 'set_field', 'load', 'move', 'controller', 'group', 'meter', 'conjunction', 'ct', 'ct_clear', 'dec_ttl'] as const) t.true(used.has(type), type);

  // Group and meter mods: the compiled ones are the ones parsing their text gives.
  for (const g of groups) {
    for (const command of ['add', 'modify'] as const) {
      t.deepEqual(plain(compiled.compiler.groupMod(g, command)), plain(groupModFromText(bridgeOf(text), formatGroup(g), command)), `group ${g.id} ${command}`);
    }
  }
  for (const m of meters) t.deepEqual(compiled.compiler.meterMod(m, 'add'), meterModFromText(formatMeter(m), 'add'), `meter ${m.id}`);

  const c1 = emptyChanges();
  c1.add.push(...flows);
  c1.groups.add.push(...groups);
  c1.meters.add.push(...meters);
  await commitBoth(text, compiled, c1);
  sameFlowMods(t, compiled, bridgeOf(text), flows);
  await sameSwitch(t, text, compiled, { flows, groups, meters });
  await sameTraces(t, text, compiled, HAND_TRACES);
  t.true(dumpGroups(bridgeOf(compiled)).length === 5);

  // The text path is what bundleFlowText (ovs-ofctl --bundle add-flows) does with the same lines.
  const ref = new SimBackend(new Fabric().addHost('hv', HOST), false, { path: 'text' });
  await ref.start();
  for (const n of [1, 2, 3, 4, 5]) bridgeOf(ref).addPort(`p${n}`, 'system', { ofportRequest: n });
  const setup = emptyChanges();
  setup.groups.add.push(...groups);
  setup.meters.add.push(...meters);
  await ref.commit(setup);
  bundleFlowText(bridgeOf(ref), flows.map((f) => `add ${formatFlow(f)}`));
  t.deepEqual(dumpFlows(bridgeOf(ref)), dumpFlows(bridgeOf(text)), 'text path == bundleFlowText');
  t.is([...textBundle(bridgeOf(text), c1).flows].length, flows.length);

  // Modifies (new actions, same cookie), a cookie change (an add), removes; a group and a meter
  // modified, one of each removed (after the flows that used them).
  const next = flows.slice();
  const c2 = emptyChanges();
  const mod = { ...flows[3]!, actions: [{ type: 'group', id: 2 }] as Action[] };
  const recookie = { ...flows[6]!, cookie: COOKIE + 1n };
  c2.modify.push(mod);
  c2.add.push(recookie);
  c2.remove.push(flows[19]!, flows[2]!);
  next[3] = mod;
  next[6] = recookie;
  const left = next.filter((f) => f !== flows[19] && f !== flows[2]);
  const g2 = { ...groups[1]!, buckets: [{ actions: [{ type: 'output', port: 5 }] as Action[], weight: 7 }] };
  c2.groups.modify.push(g2);
  c2.groups.remove.push(groups[2]!, groups[3]!);
  const m6 = { ...meters[1]!, rate: 30000 };
  c2.meters.modify.push(m6);
  c2.meters.remove.push(meters[0]!);
  await commitBoth(text, compiled, c2);
  await sameSwitch(t, text, compiled, { flows: left, groups: [groups[0]!, g2], meters: [m6] });
  await sameTraces(t, text, compiled, HAND_TRACES);
  t.is(bridgeOf(compiled).flows().find((r) => r.table === 10 && r.priority === 150)?.cookie, COOKIE + 1n, 'an add replaces the cookie');

  // Refused: a flow naming a missing group, in a bundle that also adds a group and a meter and
  // removes and modifies flows. Same reason on both paths, and nothing changed.
  // (As sets: undoing a bundle re-inserts rules, which may change the dump order of rules of
  // one priority, as OVS's own dump order is a hash order.)
  const held = (b: SimBackend): string[][] => [dumpFlows(bridgeOf(b)).sort(), dumpGroups(bridgeOf(b))];
  const before = held(text);
  const bad = emptyChanges();
  bad.groups.add.push({ id: 30, type: 'all', buckets: [{ actions: [{ type: 'output', port: 1 }] }] });
  bad.meters.add.push({ id: 8, unit: 'pktps', rate: 10, burst: 1 });
  bad.remove.push(left[0]!);
  bad.modify.push({ ...left[1]!, actions: [{ type: 'resubmit', table: 70 }] });
  bad.add.push({ table: 0, priority: 5, match: [eq('in_port', 5)], actions: [{ type: 'group', id: 999 }], cookie: COOKIE });
  for (const b of [text, compiled]) {
    const e = await t.throwsAsync(b.commit(bad), { instanceOf: SwitchRefusedError });
    t.is(e?.reason, 'OFPBAC_BAD_OUT_GROUP', `${b.path} refusal reason`);
    t.deepEqual(held(b), before, `${b.path}: nothing changed`);
    t.false(bridgeOf(b).meters.has(8), `${b.path}: the meter was not added`);
  }
  // A meter that is not there.
  const noMeter = emptyChanges();
  noMeter.add.push({ table: 0, priority: 6, match: [eq('in_port', 4)], actions: [{ type: 'meter', id: 77 }, { type: 'output', port: 1 }], cookie: COOKIE });
  for (const b of [text, compiled]) {
    const e = await t.throwsAsync(b.commit(noMeter), { instanceOf: SwitchRefusedError });
    t.is(e?.reason, 'OFPMMFC_INVALID_METER', `${b.path} refusal reason`);
  }
  // A meter after actions cannot be sent at all (ovs-ofctl refuses to); not a switch refusal.
  const badOrder = emptyChanges();
  badOrder.add.push({ table: 0, priority: 7, match: [eq('in_port', 4)], actions: [{ type: 'output', port: 1 }, { type: 'meter', id: 6 }], cookie: COOKIE });
  for (const b of [text, compiled]) {
    const e = await t.throwsAsync(b.commit(badOrder));
    t.false(e instanceof SwitchRefusedError);
    t.regex(e?.message ?? '', /instruction ordering/);
  }
  await sameSwitch(t, text, compiled, { flows: left, groups: [groups[0]!, g2], meters: [m6] });
});

// ---- how long a commit takes on each path (logged, never asserted) ----

async function neighborsCommit(n: number): Promise<FlowChanges> {
  const gs = GoalStateV2.fromPartial({});
  gs.subnetStates.S = subnetState('S', { cidr: '10.0.0.0/8' });
  gs.portStates.P1 = portState('P1');
  for (let i = 0; i < n; i++) gs.neighborStates[`L2/N${i}`] = neighborState(`N${i}`, i);
  // Computed on a dry run (ports numbered 1, 2, …): every flow the agent wants, as one commit.
  const store = new ResourceStore();
  const dp = new FlowDataplane(new DryRunBackend());
  await dp.start(store);
  await new Intake(store, dp, silentLogger(), HOST).apply({ v2: gs });
  const all = emptyChanges();
  for (const f of dp.installed.flows.values()) all.add.push(f);
  // The port's punt meter comes with its flows.
  for (const m of dp.installed.meters.values()) all.meters.add.push(m);
  return all;
}

test('commit of 1 port + N neighbors\' flows, text path vs compiled path (timing logged)', async (t) => {
  const n = Number(process.env.SIM_COMPILED_NEIGHBORS ?? 10_000);
  const changes = await neighborsCommit(n);
  const times: Record<string, number> = {};
  const dumps: string[][] = [];
  for (const path of ['text', 'compiled', 'text', 'compiled'] as const) {
    const b = new SimBackend(new Fabric().addHost('hv', HOST), false, { path });
    await b.start();
    const t0 = performance.now();
    await b.commit(changes);
    times[path] = Math.min(times[path] ?? Infinity, performance.now() - t0);
    if (dumps.length < 2) dumps.push(dumpFlows(bridgeOf(b)));
  }
  t.deepEqual(dumps[1], dumps[0]);
  t.log(`1 port + ${n.toLocaleString('en')} neighbors = ${changes.add.length.toLocaleString('en')} flows in one commit: text path ${times.text!.toFixed(0)} ms, compiled path ${times.compiled!.toFixed(0)} ms (${(times.text! / times.compiled!).toFixed(1)}× faster; best of 2, fresh bridge each)`);
});

test('neighbors on one host share one translation of their tunnel output; moving one changes only its rule', async (t) => {
  const tw = await twin();
  const first = GoalStateV2.fromPartial({});
  first.subnetStates.S1 = subnetState('S1', { cidr: '10.1.0.0/16', tunnelId: '100', networkType: 3, gateway: undefined });
  first.portStates.P1 = portState('P1', { macAddress: mac(1), fixedIps: [{ subnetId: 'S1', ipAddress: '10.1.0.5' }] });
  // Twenty VMs on two hosts.
  const vm = (i: number, host: string, op = 1, rev = 1) => neighborState(`N${i}`, i, {
    revisionNumber: rev, macAddress: mac(0x40000 + i), hostIpAddress: host,
    fixedIps: [{ neighborType: 0, subnetId: 'S1', ipAddress: `10.1.1.${i + 1}`, arionGroup: '', tunnelId: 0 }],
  }, op);
  for (let i = 0; i < 20; i++) first.neighborStates[`L2/N${i}`] = vm(i, i % 2 ? '10.0.5.2' : '10.0.5.1');
  await tw.apply(first);
  // A neighbor's unicast rule in the compiled switch: table 40, its flow's cookie.
  const unicast = (i: number) => {
    const f = [...tw.dps[1]!.installed.flows.values()].find((x) => x.table === 40 && x.match.some((m) => m.field === 'dl_dst' && m.value === macValue(mac(0x40000 + i))))!;
    return bridgeOf(tw.compiled).flows().find((r) => r.table === 40 && r.cookie === f.cookie)!;
  };
  const all = () => ({ flows: tw.dps[1]!.installed.flows.values(), groups: [...tw.dps[1]!.installed.groups.values()], meters: [...tw.dps[1]!.installed.meters.values()] });
  const r0 = unicast(0);
  const r2 = unicast(2);
  t.truthy(r0 && r2, 'both neighbors have their unicast rule');
  t.is(r0.actions, r2.actions, 'one actions list for the rules of neighbors on one host');
  t.not(unicast(1).actions, r0.actions, 'another host, another list');
  await sameSwitch(t, tw.text, tw.compiled, all());
  // N0 moves to a third host: N2 still goes to the first.
  const second = GoalStateV2.fromPartial({});
  second.neighborStates['L2/N0'] = vm(0, '10.0.5.3', 2, 2);
  await tw.apply(second);
  await sameSwitch(t, tw.text, tw.compiled, all());
  const p1 = tw.compiled.bindings.ofport('P1')!;
  const to = (i: number): string => `in_port=${p1},ip,dl_src=${mac(1)},dl_dst=${mac(0x40000 + i)},nw_src=10.1.0.5,nw_dst=10.1.1.${i + 1}`;
  await sameTraces(t, tw.text, tw.compiled, [to(0), to(2)]);
  t.regex(await tw.compiled.trace(to(0)), /tun_dst=10\.0\.5\.3/, 'the moved VM is reached on its new host');
  t.regex(await tw.compiled.trace(to(2)), /tun_dst=10\.0\.5\.1/, 'its neighbor on the old host is not');
});
