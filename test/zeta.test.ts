// The Zeta gateway path on the simulator, end to end: two hosts with their own agents driven by
// goal states over gRPC, and a simulated Zeta gateway cluster of two nodes on the same underlay
// (test/helpers/zeta-gateway.ts, a stand-in). The first packet of a connection goes through the
// gateway (ARP answered by it too), the gateway's OAM injects a direct path and later packets go
// straight to the instance's host; idle expiry and OAM delete send them back through the gateway;
// bad OAM packets are dropped and counted; a gateway node removed changes the group's buckets in
// the same bundle as the flows; the gateway or VPC going away takes every direct path with it.
import test from 'ava';
import { OperationStatus, OperationType } from '../proto/gen/alcor/common.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { Fabric, SimVm } from '../ovs-sim/index.js';
import { ipv4Frame, parseFrame } from '../packets/frames.js';
import { encodeOamPayload, type OamMessage } from '../dataplane/zeta-oam.js';
import { zetaGroupId } from '../dataplane/features/zeta.js';
import { TABLES } from '../dataplane/pipeline.js';
import { startCloud } from './helpers/sim-cloud.js';
import { switchEqualsAgent } from './helpers/switch-state.js';
import { neighborState, portState, subnetState } from './helpers/agents.js';
import { until } from './helpers/wait.js';
import { ZetaGatewayStandIn, gatewayState, vpcState } from './helpers/zeta-gateway.js';

const A = '10.0.0.11';
const B = '10.0.0.12';
const G1 = { ip: '10.0.0.201', mac: 'fe:ee:00:00:02:01' };
const G2 = { ip: '10.0.0.202', mac: 'fe:ee:00:00:02:02' };
const VNI1 = 5001;
const VNI2 = 6001;

const VMS = [
  { id: 'a1', mac: 'fa:16:3e:00:0a:01', ip: '10.1.0.5', subnet: 'S1', host: A },
  { id: 'a2', mac: 'fa:16:3e:00:0a:02', ip: '10.2.0.5', subnet: 'S2', host: A },
  { id: 'b1', mac: 'fa:16:3e:00:0b:01', ip: '10.1.0.6', subnet: 'S1', host: B },
  { id: 'b2', mac: 'fa:16:3e:00:0b:02', ip: '10.2.0.6', subnet: 'S2', host: B },
];
/** Neighbors each host is told about (so the other host is a known one), never the VMs the test talks to. */
const KNOWN = [
  { id: 'a9', mac: 'fa:16:3e:00:0a:09', ip: '10.1.0.9', subnet: 'S1', host: A },
  { id: 'b9', mac: 'fa:16:3e:00:0b:09', ip: '10.1.0.19', subnet: 'S1', host: B },
];

function goalState(host: string, nodes = [G1, G2], gatewayIds = ['ZG1']): GoalStateV2 {
  const gs = GoalStateV2.fromPartial({ hostResources: { [host]: { resources: [] } } });
  gs.vpcStates.V1 = vpcState(gatewayIds);
  gs.gatewayStates.ZG1 = gatewayState(nodes);
  gs.subnetStates.S1 = subnetState('S1', { vpcId: 'V1', cidr: '10.1.0.0/24', tunnelId: String(VNI1), networkType: 3, gateway: { ipAddress: '10.1.0.1', macAddress: 'fa:16:3e:aa:01:01' } });
  gs.subnetStates.S2 = subnetState('S2', { vpcId: 'V1', cidr: '10.2.0.0/24', tunnelId: String(VNI2), networkType: 0, gateway: { ipAddress: '10.2.0.1', macAddress: 'fa:16:3e:aa:02:01' } });
  for (const v of VMS) if (v.host === host) gs.portStates[v.id] = portState(v.id, { vpcId: 'V1', macAddress: v.mac, fixedIps: [{ subnetId: v.subnet, ipAddress: v.ip }] });
  for (const n of KNOWN) {
    if (n.host === host) continue;
    gs.neighborStates[`L2/${n.id}`] = neighborState(n.id, 0, { vpcId: 'V1', macAddress: n.mac, hostIpAddress: n.host, fixedIps: [{ neighborType: 0, subnetId: n.subnet, ipAddress: n.ip, arionGroup: '', tunnelId: 0 }] });
  }
  return gs;
}

async function zetaCloud() {
  let now = 1_000_000;
  const fabric = new Fabric({ clock: { now: () => now } });
  const cloud = await startCloud([A, B], undefined, '', { fabric });
  const byIp = new Map(cloud.hosts.map((h) => [h.host.underlayIp, h]));
  const gateway = new ZetaGatewayStandIn(fabric, [G1, G2], VMS.map((v) => ({ ip: v.ip, mac: v.mac, host: v.host })));
  const vm = new Map<string, SimVm>();
  for (const v of VMS) {
    const m = new SimVm(v.id, v.mac, v.ip, v.subnet === 'S1' ? '10.1.0.1' : '10.2.0.1', 24);
    vm.set(v.id, m);
    byIp.get(v.host)!.host.plug('br-int', m, `tap${v.id}`, { 'iface-id': v.id });
  }
  /** Tunnel packets from host to host (not through the gateway). */
  const direct: { src: string; dst: string }[] = [];
  const carry = fabric.carry.bind(fabric);
  fabric.carry = (outer, dst, type) => {
    const ip = [dst >>> 24, (dst >>> 16) & 255, (dst >>> 8) & 255, dst & 255].join('.');
    if (byIp.has(ip)) direct.push({ src: [...outer.subarray(26, 30)].join('.'), dst: ip });
    carry(outer, dst, type);
  };
  return {
    fabric, cloud, byIp, gateway, vm, direct,
    advance: (ms: number) => { now += ms; },
    /** ovs-vswitchd's expiry pass, run by the test at a moment of its choosing. */
    expire: () => { for (const h of cloud.hosts) h.host.bridge('br-int').expire(); },
    directPaths: (host: string) => byIp.get(host)!.host.bridge('br-int').flows().filter((r) => r.table === TABLES.ZETA_DIRECT.id && r.priority === 100),
  };
}

type Cloud = Awaited<ReturnType<typeof zetaCloud>>;

async function pushAll(t: { deepEqual(a: unknown, b: unknown, m?: string): void }, z: Cloud, make: (host: string) => GoalStateV2, what: string): Promise<void> {
  for (const h of [A, B]) {
    const r = await z.byIp.get(h)!.push(make(h));
    t.deepEqual(r.operationStatuses.filter((s) => s.operationStatus !== OperationStatus.SUCCESS).map((s) => `${s.resourceId}: ${s.statusDetail}`), [], `${what} on ${h}`);
  }
}

function pingOnce(z: Cloud, from: string, to: string): string {
  const seq = z.vm.get(from)!.ping(to);
  z.fabric.run();
  return z.vm.get(from)!.pings.get(seq)!.state;
}

/** OAM injects handled on a host (they are committed asynchronously, in the dataplane's order). */
const settled = (z: Cloud, host: string, n: number) => until(() => z.byIp.get(host)!.dataplane.zetaOam.counters.injected >= n, `${n} OAM injects on ${host}`);

test('Zeta: first packet through the gateway, OAM direct path, later packets direct, expiry, delete', async (t) => {
  const z = await zetaCloud();
  try {
    await pushAll(t, z, (h) => goalState(h), 'the Zeta VPC');
    for (const h of z.cloud.hosts) await switchEqualsAgent(t, h.dataplane, `programming on ${h.host.name}`);
    // The group on the switch: one bucket per node, sorted by IP, tunnel of the subnet's type.
    const groups = z.byIp.get(A)!.host.bridge('br-int').groups;
    const g = groups.get(zetaGroupId('ZG1', 'geneve'));
    t.is(g?.type, 'select');
    t.is(g?.buckets.length, 2);
    t.truthy(groups.get(zetaGroupId('ZG1', 'vxlan')), 'the VXLAN subnet has its own group');

    // First ping: ARP answered by the gateway, the echo through the gateway, the reply too.
    const before = z.gateway.received.length;
    t.is(pingOnce(z, 'a1', '10.1.0.6'), 'replied');
    const through = z.gateway.received.slice(before);
    t.true(through.some((r) => r.from === A && parseFrame(r.inner)?.kind === 'arp'), 'ARP for the unknown address went to the gateway');
    t.true(through.some((r) => r.from === A && r.vni === VNI1 && r.type === 'geneve' && parseFrame(r.inner)?.kind === 'icmp'), 'the echo went to the gateway in the subnet\'s VNI and encapsulation');
    const arrived = through.find((r) => r.from === A && parseFrame(r.inner)?.kind === 'icmp')!;
    t.true(arrived.inner.subarray(0, 6).every((b, i) => b === Number.parseInt([G1, G2].find((n) => n.ip === arrived.node)!.mac.split(':')[i]!, 16)), 'the bucket set eth dst to the node\'s MAC');
    t.is(z.byIp.get(A)!.dataplane.punts.arpMiss, 0, 'nothing punted as an ARP miss in a Zeta VPC');
    await settled(z, A, 1);
    await settled(z, B, 1);
    t.is(z.directPaths(A).length, 1, 'one direct path on A');
    t.is(z.directPaths(A)[0]!.idle, 60, 'with the OAM\'s idle timeout');
    t.log(`OAM packet-in to direct path confirmed by the switch: ${z.byIp.get(A)!.dataplane.zetaOam.latencies.join(', ')} ms (agent path; learn cannot read the OAM payload)`);

    // Later packets: straight from A to B, nothing through the gateway.
    const gw = z.gateway.received.length;
    const direct = z.direct.length;
    t.is(pingOnce(z, 'a1', '10.1.0.6'), 'replied');
    t.is(z.gateway.received.length, gw, 'nothing went through the gateway');
    t.true(z.direct.slice(direct).some((d) => d.src === A && d.dst === B), 'A sent to B directly');
    t.true(z.direct.slice(direct).some((d) => d.src === B && d.dst === A), 'and B to A (its own direct path)');

    // A UDP connection: the 5-tuple is what the path matches.
    z.vm.get('a1')!.sendUdp('10.1.0.6', 'fa:16:3e:00:0b:01', 4000, 5000, new Uint8Array([1, 2, 3]));
    z.fabric.run();
    t.is(z.vm.get('b1')!.udpReceived.length, 1, 'delivered through the gateway');
    await settled(z, A, 2);
    const gw2 = z.gateway.received.length;
    z.vm.get('a1')!.sendUdp('10.1.0.6', 'fa:16:3e:00:0b:01', 4000, 5000, new Uint8Array([4]));
    z.vm.get('a1')!.sendUdp('10.1.0.6', 'fa:16:3e:00:0b:01', 4001, 5000, new Uint8Array([5]));
    z.fabric.run();
    t.is(z.vm.get('b1')!.udpReceived.length, 3);
    t.is(z.gateway.received.length - gw2, 1, 'the same 5-tuple went direct, another source port through the gateway');
    await settled(z, A, 3);

    // Idle expiry: after the idle timeout without packets the switch removes the path.
    z.advance(61_000);
    z.expire();
    t.is(z.directPaths(A).length, 0, 'expired');
    z.gateway.sendOam = false;
    const gw3 = z.gateway.received.length;
    t.is(pingOnce(z, 'a1', '10.1.0.6'), 'replied');
    t.true(z.gateway.received.length > gw3, 'through the gateway again');

    // OAM delete: an injected path goes on op 1.
    const inject: OamMessage = { op: 0, innerSrcIp: '10.1.0.5', innerDstIp: '10.1.0.6', srcPort: 0, dstPort: 0, proto: 1, vni: VNI1, instIp: '10.1.0.6', nodeIp: B, instMac: 'fa:16:3e:00:0b:01', nodeMac: '02:00:0a:00:00:0c', idleTimeout: 30 };
    const injected = z.byIp.get(A)!.dataplane.zetaOam.counters.injected;
    z.gateway.oam(G1, A, 'geneve', inject);
    z.fabric.run();
    await settled(z, A, injected + 1);
    t.is(z.directPaths(A).length, 1);
    t.is(z.directPaths(A)[0]!.idle, 30);
    z.gateway.oam(G2, A, 'geneve', { ...inject, op: 1 });
    z.fabric.run();
    await until(() => z.byIp.get(A)!.dataplane.zetaOam.counters.deleted >= 1, 'the OAM delete');
    t.is(z.directPaths(A).length, 0, 'deleted by OAM');
    for (const h of z.cloud.hosts) await switchEqualsAgent(t, h.dataplane, `the OAM exchange on ${h.host.name}`);
  } finally {
    await z.cloud.stop();
  }
});

/** A TCP SYN from a1 to b1 (the simulated VM has no TCP of its own). */
function tcpSyn(sport: number, dport: number): Uint8Array {
  const h = new Uint8Array(20);
  h[0] = sport >> 8;
  h[1] = sport & 255;
  h[2] = dport >> 8;
  h[3] = dport & 255;
  h[12] = 5 << 4;
  h[13] = 0x02;
  return ipv4Frame('fa:16:3e:00:0b:01', 'fa:16:3e:00:0a:01', '10.1.0.5', '10.1.0.6', 6, h);
}

test('Zeta: the select group keeps a connection on one node and spreads connections over nodes', async (t) => {
  const z = await zetaCloud();
  try {
    await pushAll(t, z, (h) => goalState(h), 'the Zeta VPC');
    z.gateway.sendOam = false;
    // OVS's default select hash (dp_hash, symmetric L4): addresses, protocol, TCP/SCTP ports.
    const nodeOf = (sport: number): string => {
      const n = z.gateway.received.length;
      z.vm.get('a1')!.send(tcpSyn(sport, 80));
      z.fabric.run();
      const r = z.gateway.received.slice(n).filter((x) => x.from === A);
      t.is(r.length, 1, `TCP source port ${sport}: one copy to one node`);
      return r[0]!.node;
    };
    const first = new Map<number, string>();
    for (let p = 1000; p < 1040; p++) first.set(p, nodeOf(p));
    for (let p = 1000; p < 1040; p++) t.is(nodeOf(p), first.get(p)!, `TCP source port ${p} sticks to its node`);
    const used = new Set(first.values());
    t.deepEqual([...used].sort(), [G1.ip, G2.ip], 'both nodes carry connections');
  } finally {
    await z.cloud.stop();
  }
});

test('Zeta: bad OAM packets are dropped and counted, never installed', async (t) => {
  const z = await zetaCloud();
  try {
    await pushAll(t, z, (h) => goalState(h), 'the Zeta VPC');
    const dp = z.byIp.get(A)!.dataplane;
    const good: OamMessage = { op: 0, innerSrcIp: '10.1.0.5', innerDstIp: '10.1.0.6', srcPort: 1, dstPort: 2, proto: 17, vni: VNI1, instIp: '10.1.0.6', nodeIp: B, instMac: 'fa:16:3e:00:0b:01', nodeMac: '02:00:0a:00:00:0c', idleTimeout: 60 };
    const cases: [string, () => void, keyof typeof dp.zetaOam.counters.dropped][] = [
      ['truncated', () => z.gateway.sendOamPayload(G1, A, VNI1, 'geneve', encodeOamPayload(good).subarray(0, 30)), 'truncated'],
      ['bad op', () => z.gateway.oam(G1, A, 'geneve', { ...good, op: 7 }), 'badOp'],
      ['VNI not the tunnel\'s', () => z.gateway.sendOamPayload(G1, A, VNI1, 'geneve', encodeOamPayload({ ...good, vni: VNI2 })), 'vni'],
      ['source outside the VPC', () => z.gateway.oam(G1, A, 'geneve', { ...good, innerSrcIp: '192.168.1.5' }), 'address'],
      ['instance outside the VPC', () => z.gateway.oam(G1, A, 'geneve', { ...good, instIp: '172.16.0.1' }), 'address'],
      ['unknown node', () => z.gateway.oam(G1, A, 'geneve', { ...good, nodeIp: '10.0.0.99' }), 'node'],
      ['node is a gateway node', () => z.gateway.oam(G1, A, 'geneve', { ...good, nodeIp: G2.ip }), 'node'],
      ['multicast instance MAC', () => z.gateway.oam(G1, A, 'geneve', { ...good, instMac: '01:00:5e:00:00:01' }), 'mac'],
      ['protocol', () => z.gateway.oam(G1, A, 'geneve', { ...good, proto: 47 }), 'protocol'],
    ];
    for (const [what, send, reason] of cases) {
      const before = dp.zetaOam.counters.dropped[reason];
      send();
      z.fabric.run();
      await until(() => dp.zetaOam.counters.dropped[reason] === before + 1, `${what} counted as ${reason}`);
      t.pass(what);
    }
    // Never reaching the agent: the wrong port, and a sender that is no gateway node.
    const punts = dp.punts.zetaOam;
    z.gateway.sendOamPayload(G1, A, VNI1, 'geneve', encodeOamPayload(good), 8301);
    z.gateway.sendOamPayload({ ip: '10.0.0.77', mac: 'fe:ee:00:00:00:77' }, A, VNI1, 'geneve', encodeOamPayload(good));
    z.fabric.run();
    t.is(dp.punts.zetaOam, punts, 'not punted: wrong port, not a gateway node');
    t.is(z.directPaths(A).length, 0, 'nothing installed');
    t.is(dp.zetaOam.counters.injected, 0);
  } finally {
    await z.cloud.stop();
  }
});

test('Zeta: node removed mid-flow (buckets and flows in one bundle), gateway removed from the VPC, gateway deleted', async (t) => {
  const z = await zetaCloud();
  try {
    await pushAll(t, z, (h) => goalState(h), 'the Zeta VPC');
    t.is(pingOnce(z, 'a1', '10.1.0.6'), 'replied');
    await settled(z, A, 1);
    // A connection the gateway carries: find its node, then remove that node.
    z.gateway.sendOam = false;
    const dp = z.byIp.get(A)!.dataplane;
    const sport = 2000;
    const send = () => {
      const n = z.gateway.received.length;
      z.vm.get('a1')!.sendUdp('10.1.0.6', 'fa:16:3e:00:0b:01', sport, 80, new Uint8Array([1]));
      z.fabric.run();
      return z.gateway.received.slice(n).filter((r) => r.from === A).map((r) => r.node);
    };
    const [node] = send();
    const keep = node === G1.ip ? G2 : G1;
    const commits = dp.commits;
    const r = await z.byIp.get(A)!.push(goalState(A, [keep]));
    t.true(r.operationStatuses.every((s) => s.operationStatus === OperationStatus.SUCCESS));
    t.is(dp.commits, commits + 1, 'the bucket change and its flows went in one commit (one bundle)');
    const g = z.byIp.get(A)!.host.bridge('br-int').groups.get(zetaGroupId('ZG1', 'geneve'))!;
    t.is(g.buckets.length, 1);
    t.deepEqual(send(), [keep.ip], 'the connection moved to the remaining node');
    t.is(z.vm.get('b1')!.udpReceived.length, 2, 'and still arrives');
    t.true(z.directPaths(A).length > 0, 'direct paths stay while the gateway does');
    await switchEqualsAgent(t, dp, 'the node removal');

    // The VPC drops the gateway: no group, no Zeta flows, no direct path; unknown traffic is dropped again.
    await pushAll(t, z, (h) => goalState(h, [G1, G2], []), 'the VPC without gateway');
    for (const h of [A, B]) {
      const host = z.byIp.get(h)!;
      t.is(z.directPaths(h).length, 0, `direct paths purged on ${h}`);
      t.is([...host.host.bridge('br-int').groups.keys()].length, 0, `no group on ${h}`);
      t.false(host.dataplane.desired.activeGroup(String(zetaGroupId('ZG1', 'geneve'))) !== undefined);
      await switchEqualsAgent(t, host.dataplane, `the gateway's removal on ${h}`);
    }
    const gw = z.gateway.received.length;
    z.vm.get('a1')!.arp.clear();
    t.not(pingOnce(z, 'a1', '10.1.0.6'), 'replied');
    t.is(z.gateway.received.length, gw, 'nothing reaches the gateway');
    t.true(z.byIp.get(A)!.dataplane.punts.arpMiss > 0, 'the ARP miss is punted as before');

    // Back on the gateway, a direct path again, then the gateway itself deleted.
    z.gateway.sendOam = true;
    await pushAll(t, z, (h) => goalState(h), 'the gateway back');
    z.vm.get('a1')!.arp.clear();
    const injected = dp.zetaOam.counters.injected;
    t.is(pingOnce(z, 'a1', '10.1.0.6'), 'replied');
    await settled(z, A, injected + 1);
    t.true(z.directPaths(A).length > 0);
    const del = GoalStateV2.fromPartial({ hostResources: { [A]: { resources: [] } } });
    del.gatewayStates.ZG1 = gatewayState([G1, G2], OperationType.DELETE);
    const rd = await z.byIp.get(A)!.push(del);
    t.true(rd.operationStatuses.every((s) => s.operationStatus === OperationStatus.SUCCESS));
    t.is(z.directPaths(A).length, 0, 'the gateway\'s delete purged the direct paths');
    t.is(z.byIp.get(A)!.host.bridge('br-int').groups.size, 0);
    await switchEqualsAgent(t, dp, 'the gateway delete');
  } finally {
    await z.cloud.stop();
  }
});
