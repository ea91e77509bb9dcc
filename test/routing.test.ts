// Distributed routing (DVR) on the simulator, end to end: three hosts, each with its own agent
// driven by DPM-shaped goal states over gRPC; VMs in three subnets of a router (Geneve and
// VXLAN mixed) ping across subnets and the gateways; TTL handling; a routing rule to a VM acting
// as a router (active once its next hop arrives); router, subnet and rule deletes and
// re-creates, with the switch read back equal to the agent after each; two VPCs with
// overlapping CIDRs isolated; a subnet in no router not routed.
import test from 'ava';
import { OperationStatus } from '../proto/gen/alcor/common.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { SimVm } from '../ovs-sim/index.js';
import { ipv4Frame, parseFrame, udp } from '../packets/frames.js';
import type { Flow } from '../dataplane/flow.js';
import { formatFlow } from '../dataplane/flow-text.js';
import { startCloud } from './helpers/sim-cloud.js';
import { switchEqualsAgent as switchHolds } from './helpers/switch-state.js';
import { type RoutedCloud, decap, dvrMacOf, goalStateFor, macOf, routerState } from './helpers/routed-cloud.js';
import { neighborState } from './helpers/agents.js';

const A = '10.0.0.11';
const B = '10.0.0.12';
const C = '10.0.0.13';

const CLOUD: RoutedCloud = {
  subnets: [
    { id: 'S1', vpc: 'V1', cidr: '10.1.0.0/24', gw: '10.1.0.1', gwMac: 'fa:16:3e:aa:01:01', vni: 5001, geneve: true },
    { id: 'S2', vpc: 'V1', cidr: '10.2.0.0/24', gw: '10.2.0.1', gwMac: 'fa:16:3e:aa:02:01', vni: 6001, geneve: false },
    { id: 'S3', vpc: 'V1', cidr: '10.3.0.0/24', gw: '10.3.0.1', gwMac: 'fa:16:3e:aa:03:01', vni: 7001, geneve: true },
    // Not in any router.
    { id: 'S4', vpc: 'V1', cidr: '10.4.0.0/24', gw: '10.4.0.1', gwMac: 'fa:16:3e:aa:04:01', vni: 7501, geneve: true },
    // A second router of the same VPC, joining two more subnets.
    { id: 'S5', vpc: 'V1', cidr: '10.5.0.0/24', gw: '10.5.0.1', gwMac: 'fa:16:3e:aa:05:01', vni: 7601, geneve: false },
    { id: 'S6', vpc: 'V1', cidr: '10.6.0.0/24', gw: '10.6.0.1', gwMac: 'fa:16:3e:aa:06:01', vni: 7701, geneve: true },
    // A second VPC reusing the first one's CIDRs, with its own router.
    { id: 'T1', vpc: 'V2', cidr: '10.1.0.0/24', gw: '10.1.0.1', gwMac: 'fa:16:3e:bb:01:01', vni: 8001, geneve: true },
    { id: 'T2', vpc: 'V2', cidr: '10.2.0.0/24', gw: '10.2.0.1', gwMac: 'fa:16:3e:bb:02:01', vni: 8002, geneve: false },
  ],
  vms: [
    { id: 'a1', mac: 'fa:16:3e:00:0a:01', ip: '10.1.0.5', subnet: 'S1', host: A },
    { id: 'a2', mac: 'fa:16:3e:00:0a:02', ip: '10.2.0.5', subnet: 'S2', host: A },
    { id: 'a4', mac: 'fa:16:3e:00:0a:04', ip: '10.4.0.5', subnet: 'S4', host: A },
    { id: 'b1', mac: 'fa:16:3e:00:0b:01', ip: '10.1.0.6', subnet: 'S1', host: B },
    { id: 'b2', mac: 'fa:16:3e:00:0b:02', ip: '10.2.0.6', subnet: 'S2', host: B },
    { id: 'c3', mac: 'fa:16:3e:00:0c:03', ip: '10.3.0.7', subnet: 'S3', host: C },
    { id: 'a5', mac: 'fa:16:3e:00:0a:05', ip: '10.5.0.5', subnet: 'S5', host: A },
    { id: 'b6', mac: 'fa:16:3e:00:0b:06', ip: '10.6.0.6', subnet: 'S6', host: B },
    { id: 'q1', mac: 'fa:16:3e:00:1a:01', ip: '10.1.0.5', subnet: 'T1', host: A },
    { id: 'q2', mac: 'fa:16:3e:00:1b:02', ip: '10.2.0.6', subnet: 'T2', host: B },
  ],
  routers: [
    // b2 routes 192.168.50.0/24 for S1 (a VM acting as a router); 192.168.60.0/24 goes via
    // 10.3.0.99, a VM that does not exist yet.
    { id: 'R1', subnets: ['S1', 'S2', 'S3'], rules: { S1: [
      { id: 'via-b2', destination: '192.168.50.0/24', nextHop: '10.2.0.6' },
      { id: 'via-later', destination: '192.168.60.0/24', nextHop: '10.3.0.99' },
      { id: 'internet', destination: '0.0.0.0/0', nextHop: '', internet: true },
    ] } },
    { id: 'R2', subnets: ['T1', 'T2'] },
    { id: 'R3', subnets: ['S5', 'S6'] },
  ],
};

const subnetOf = (id: string) => CLOUD.subnets.find((s) => s.id === id)!;

test('DVR on the simulator: routed pings, gateway pings, TTL, rules, deletes, isolation', async (t) => {
  const cloud = await startCloud([A, B, C]);
  const byIp = new Map(cloud.hosts.map((h) => [h.host.underlayIp, h]));
  const underlay: { src: string; dst: string; vni: number; type: string; inner: Uint8Array }[] = [];
  const carry = cloud.fabric.carry.bind(cloud.fabric);
  cloud.fabric.carry = (outer, dst, type) => {
    const d = decap(outer);
    if (d) underlay.push({ src: [...outer.subarray(26, 30)].join('.'), dst: d.dst, vni: d.vni, type: d.type, inner: new Uint8Array(d.inner) });
    carry(outer, dst, type);
  };
  const push = async (host: string, gs: GoalStateV2, what: string) => {
    const r = await byIp.get(host)!.push(gs);
    t.deepEqual(r.operationStatuses.filter((s) => s.operationStatus !== OperationStatus.SUCCESS).map((s) => `${s.resourceId}: ${s.statusDetail}`), [], `${what} on ${host}`);
  };
  /** The switch read back equals what the agent believes, on every host. */
  const switchEqualsAgent = async (when: string) => {
    for (const h of cloud.hosts) await switchHolds(t, h.dataplane, `${when} on ${h.host.name}`);
  };
  try {
    const vm = new Map<string, SimVm>();
    for (const v of CLOUD.vms) {
      const s = subnetOf(v.subnet);
      const m = new SimVm(v.id, v.mac, v.ip, s.gw, 24);
      vm.set(v.id, m);
      byIp.get(v.host)!.host.plug('br-int', m, `tap${v.id}`, { 'iface-id': v.id });
    }
    for (const h of [A, B, C]) await push(h, goalStateFor(CLOUD, h), 'the routed cloud');
    await switchEqualsAgent('programming');

    const ping = (from: string, to: string): { state: string; ttl: number | undefined } => {
      const m = vm.get(from)!;
      const seq = m.ping(to);
      cloud.fabric.run();
      const p = m.pings.get(seq)!;
      return { state: p.state, ttl: p.ttl };
    };
    const lastFrom = (id: string, pred: (p: NonNullable<ReturnType<typeof parseFrame>>) => boolean) => {
      const frames = vm.get(id)!.received.map((f) => ({ f, p: parseFrame(f) })).filter((x) => x.p && pred(x.p));
      return frames.at(-1);
    };

    // The gateway answers ping, for its own subnet and for another subnet of the router, in flows.
    const punts = cloud.hosts[0]!.dataplane.punts.arpMiss;
    t.like(ping('a1', '10.1.0.1'), { state: 'replied', ttl: 64 }, 'own gateway');
    t.like(ping('a1', '10.3.0.1'), { state: 'replied', ttl: 64 }, "another joined subnet's gateway");
    t.is(cloud.hosts[0]!.dataplane.punts.arpMiss, punts, 'nothing went to the agent');

    // Same host, another subnet: routed without leaving the host; the destination sees its own
    // gateway as the source MAC and one hop less.
    let crossed = underlay.length;
    t.like(ping('a1', '10.2.0.5'), { state: 'replied', ttl: 63 });
    t.is(underlay.length, crossed, 'nothing crossed the underlay');
    const echoAtA2 = lastFrom('a2', (p) => p.kind === 'icmp' && p.type === 8);
    t.is(echoAtA2?.p?.src, subnetOf('S2').gwMac);
    t.is(echoAtA2?.p?.kind === 'icmp' ? echoAtA2.p.ttl : -1, 63);

    // Across hosts into a VXLAN subnet: carried with the destination subnet's VNI and type,
    // eth src = the sending host's DVR MAC on the wire, restored to the gateway MAC on arrival.
    crossed = underlay.length;
    t.like(ping('a1', '10.2.0.6'), { state: 'replied', ttl: 63 });
    const out = underlay.slice(crossed).find((u) => u.src === A);
    t.like(out, { dst: B, vni: 6001, type: 'vxlan' });
    t.is(out && macOf(out.inner, 6), dvrMacOf(A), 'DVR MAC on the wire');
    t.is(out && macOf(out.inner, 0), 'fa:16:3e:00:0b:02');
    const back = underlay.slice(crossed).find((u) => u.src === B);
    t.like(back, { dst: A, vni: 5001, type: 'geneve' }, 'the reply is routed on its sending host into S1 (Geneve)');
    t.is(back && macOf(back.inner, 6), dvrMacOf(B));
    t.is(lastFrom('b2', (p) => p.kind === 'icmp' && p.type === 8)?.p?.src, subnetOf('S2').gwMac, 'restored gateway MAC');
    t.is(lastFrom('a1', (p) => p.kind === 'icmp' && p.type === 0)?.p?.src, subnetOf('S1').gwMac);
    // Geneve subnet on a third host, and the way back from there.
    t.like(ping('c3', '10.1.0.6'), { state: 'replied', ttl: 63 });
    t.like(ping('b1', '10.3.0.7'), { state: 'replied', ttl: 63 });

    // TTL: 1 is dropped at the router; 2 arrives with 1.
    const a1 = vm.get('a1')!;
    const raw = (dst: string, ttl: number, dstPort = 7000) => {
      a1.send(ipv4Frame(subnetOf('S1').gwMac, a1.mac, a1.ip!, dst, 17, udp(5000, dstPort, new TextEncoder().encode(`ttl ${ttl}`)), ttl));
      cloud.fabric.run();
    };
    const udpAt = (id: string) => vm.get(id)!.udpReceived.length;
    const n = udpAt('b2');
    raw('10.2.0.6', 1);
    t.is(udpAt('b2'), n, 'TTL 1 dropped');
    raw('10.2.0.6', 0);
    t.is(udpAt('b2'), n, 'TTL 0 dropped');
    raw('10.2.0.6', 2);
    t.is(udpAt('b2'), n + 1, 'TTL 2 routed');
    t.is(lastFrom('b2', (p) => p.kind === 'udp')?.f[22], 1);

    // A routing rule whose next hop is a VM: the packet goes to that VM's MAC, IP unchanged.
    const toRule = (dst: string, at: string) => {
      const frames = vm.get(at)!.received.length;
      raw(dst, 64);
      return vm.get(at)!.received.slice(frames).map((f) => parseFrame(f)).filter((p) => p?.kind === 'udp' && p.ipDst === dst);
    };
    const viaB2 = toRule('192.168.50.9', 'b2');
    t.is(viaB2.length, 1, 'delivered to the next hop');
    t.like(viaB2[0], { dst: 'fa:16:3e:00:0b:02', src: subnetOf('S2').gwMac, ipDst: '192.168.50.9' });
    // The rule to a next hop nobody holds yet is kept, and works once the VM arrives (in another
    // goal state: an L3 neighbor on C, sent to A alone).
    t.is(toRule('192.168.60.9', 'c3').length, 0);
    const later = new SimVm('c9', 'fa:16:3e:00:0c:09', '10.3.0.99', '10.3.0.1');
    vm.set('c9', later);
    byIp.get(C)!.host.plug('br-int', later, 'tapc9', { 'iface-id': 'c9' });
    await push(A, GoalStateV2.fromPartial({ neighborStates: { 'L3/c9': neighborState('c9', 0, { vpcId: 'V1', macAddress: later.mac, hostIpAddress: C, fixedIps: [{ neighborType: 1, subnetId: 'S3', ipAddress: '10.3.0.99', arionGroup: '', tunnelId: 0 }] }) } }), 'the next hop');
    const withC9: RoutedCloud = { ...CLOUD, vms: [...CLOUD.vms, { id: 'c9', mac: later.mac, ip: '10.3.0.99', subnet: 'S3', host: C }] };
    await push(C, GoalStateV2.fromPartial({ portStates: { c9: goalStateFor(withC9, C).portStates.c9! } }), 'the next hop port');
    t.is(toRule('192.168.60.9', 'c9').length, 1, 'the rule became active');
    // No route: dropped (0.0.0.0/0 INTERNET waits for SNAT).
    t.is(toRule('8.8.8.8', 'b2').length, 0);
    await switchEqualsAgent('the rule next hop');

    // Isolation: VPC 2 reuses the addresses and reaches only its own VMs.
    const q2Before = vm.get('q2')!.received.length;
    const b2Before = vm.get('b2')!.received.length;
    t.like(ping('q1', '10.2.0.6'), { state: 'replied', ttl: 63 });
    t.true(vm.get('q2')!.received.length > q2Before);
    t.is(vm.get('b2')!.received.length, b2Before, "VPC 1's 10.2.0.6 saw nothing");
    t.is(ping('q1', '10.3.0.7').state, 'sent', "VPC 2's router does not reach VPC 1's subnet");

    // Two routers in one VPC: each routes between its own subnets only.
    t.like(ping('a5', '10.6.0.6'), { state: 'replied', ttl: 63 });
    t.is(ping('a5', '10.1.0.5').state, 'sent', 'R3 does not reach R1\'s subnets');
    t.is(ping('a1', '10.5.0.5').state, 'sent', 'nor R1 R3\'s');
    t.is(ping('a5', '10.1.0.1').state, 'sent', 'nor its gateways');

    // An L3 neighbor is off-link: no ARP answer for it (c3 is an L3 neighbor on host A).
    const arpMisses = cloud.hosts[0]!.dataplane.punts.arpMiss;
    vm.get('a1')!.arpFor('10.3.0.7');
    cloud.fabric.run();
    t.false(vm.get('a1')!.arp.has('10.3.0.7'));
    t.is(cloud.hosts[0]!.dataplane.punts.arpMiss, arpMisses + 1, 'the request went to the agent as a miss');

    // A subnet in no router is not routed, and its gateway does not answer ping.
    t.is(ping('a4', '10.1.0.5').state, 'sent');
    t.is(ping('a4', '10.4.0.1').state, 'sent');
    t.is(ping('a1', '10.4.0.5').state, 'sent', 'nor routed into');

    // A subnet leaves the router: no more routing into it, nor its gateway from the others.
    const r1 = CLOUD.routers[0]!;
    const without = { ...r1, subnets: ['S1', 'S3'] };
    await push(A, GoalStateV2.fromPartial({ routerStates: { [`${A}/R1`]: routerState(without, 0, dvrMacOf(A)) } }), 'S2 leaves R1');
    t.is(ping('a1', '10.2.0.6').state, 'sent');
    t.is(ping('a1', '10.2.0.1').state, 'sent');
    t.like(ping('a1', '10.3.0.7'), { state: 'replied' }, 'S3 still routed');
    await switchEqualsAgent('a subnet leaving');
    await push(A, GoalStateV2.fromPartial({ routerStates: { [`${A}/R1`]: routerState(r1, 0, dvrMacOf(A)) } }), 'S2 back');
    t.like(ping('a1', '10.2.0.6'), { state: 'replied' });
    // A rule removed: its traffic stops; the others stay.
    const noRule = { ...r1, rules: { S1: r1.rules!.S1!.filter((x) => x.id !== 'via-b2') } };
    await push(A, GoalStateV2.fromPartial({ routerStates: { [`${A}/R1`]: routerState(noRule, 0, dvrMacOf(A)) } }), 'rule removed');
    t.is(toRule('192.168.50.9', 'b2').length, 0);
    t.is(toRule('192.168.60.9', 'c9').length, 1);
    // A new DVR MAC is used at once (never latched).
    crossed = underlay.length;
    await push(A, GoalStateV2.fromPartial({ routerStates: { [`${A}/R1`]: routerState(noRule, 0, 'fe:16:11:00:00:99') } }), 'DVR MAC change');
    t.like(ping('a1', '10.2.0.6'), { state: 'replied' });
    t.is(macOf(underlay.slice(crossed).find((u) => u.src === A)!.inner, 6), 'fe:16:11:00:00:99');
    await switchEqualsAgent('a DVR MAC change');

    // The router deleted on every host: routing stops and exactly its flows go. What remains
    // is what the same state gives without routers.
    for (const h of [A, B, C]) {
      const gs = goalStateFor(CLOUD, h);
      for (const s of Object.values(gs.routerStates)) s.operationType = 4;
      await push(h, GoalStateV2.fromPartial({ routerStates: gs.routerStates }), 'router delete');
    }
    t.is(ping('a1', '10.2.0.5').state, 'sent');
    t.is(ping('a1', '10.1.0.1').state, 'sent', 'no gateway ping without a router');
    await switchEqualsAgent('router delete');
    for (const h of cloud.hosts) {
      const fresh = await startCloud([h.host.underlayIp]);
      try {
        const gs = goalStateFor(withC9, h.host.underlayIp);
        gs.routerStates = {};
        for (const v of withC9.vms.filter((x) => x.host === h.host.underlayIp)) fresh.hosts[0]!.host.plug('br-int', new SimVm(v.id, v.mac), `tap${v.id}`, { 'iface-id': v.id });
        const r = await fresh.hosts[0]!.push(gs);
        t.true(r.operationStatuses.every((s) => s.operationStatus === OperationStatus.SUCCESS));
        const strip = (list: Flow[]) => list.map((f) => formatFlow(f).replace(/cookie=0x[0-9a-f]+,?/, '')).sort();
        // L3 neighbors stay (the controller deletes them separately); they program nothing unrouted.
        t.deepEqual(strip(h.dataplane.flows()), strip(fresh.hosts[0]!.dataplane.flows()), `no router leftovers on ${h.host.name}`);
      } finally {
        await fresh.stop();
      }
    }
    // Re-created: routing is back.
    for (const h of [A, B, C]) await push(h, goalStateFor(CLOUD, h), 'the router again');
    t.like(ping('a1', '10.2.0.6'), { state: 'replied', ttl: 63 });
    await switchEqualsAgent('re-creation');
  } finally {
    await cloud.stop();
  }
});

test('a router with IPv6 parts: the IPv4 part is applied, the IPv6 part refused with INVALID_ARG; a DVR MAC outside fe:16:11 is refused', async (t) => {
  const cloud = await startCloud([A]);
  try {
    const h = cloud.hosts[0]!;
    const gs = goalStateFor({ ...CLOUD, routers: [] }, A);
    gs.subnetStates.V6 = { ...gs.subnetStates.S1!, configuration: { ...gs.subnetStates.S1!.configuration!, id: 'V6', cidr: 'fd00::/64', gateway: { ipAddress: 'fd00::1', macAddress: 'fa:16:3e:aa:66:01' }, tunnelId: '9001' } };
    gs.routerStates[`${A}/R1`] = routerState({ id: 'R1', subnets: ['S1', 'S2', 'V6'], rules: { S1: [{ id: 'r6', destination: 'fd01::/64', nextHop: 'fd00::5' }, { id: 'r4', destination: '192.168.50.0/24', nextHop: '10.2.0.6' }] } });
    gs.routerStates[`${A}/RX`] = routerState({ id: 'RX', subnets: ['S4'] }, 0, '02:00:00:00:00:01');
    const r = await h.push(gs);
    const status = (id: string) => r.operationStatuses.find((s) => s.resourceId === id)!;
    t.is(status('R1').operationStatus, OperationStatus.INVALID_ARG);
    t.regex(status('R1').statusDetail, /subnet V6 \(fd00::\/64\): IPv6 routing is not supported/);
    t.regex(status('R1').statusDetail, /routing_rules\[0\] \(fd01::\/64 via fd00::5\): IPv6 routing is not supported/);
    t.is(status('RX').operationStatus, OperationStatus.INVALID_ARG);
    t.regex(status('RX').statusDetail, /does not start with fe:16:11/);
    const flows = h.dataplane.flows().map(formatFlow);
    t.true(flows.some((f) => f.includes('table=30') && f.includes('nw_dst=192.168.50.0/24')), 'the IPv4 rule is programmed');
    t.false(flows.some((f) => f.includes('dl_dst=fa:16:3e:aa:04:01')), 'nothing of the refused router');
  } finally {
    await cloud.stop();
  }
});
