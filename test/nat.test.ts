// Distributed SNAT and elastic IPs on the simulator, end to end: three hosts, each with its own
// agent (bridge mapping ext:br-ex) driven over gRPC; the hosts' external bridges share one
// simulated external network (a learning switch) with an upstream router that stands for the
// internet. VMs on every host reach the internet through their host's SNAT slice (two hosts and
// two routers share one SNAT address by disjoint port slices, with identical inner 5-tuples);
// replies come back; an elastic IP VM is reached from the internet and leaves with its elastic
// IP; the elastic IP moves to another host (gratuitous ARP); a next hop without a MAC is
// resolved by ARP; east-west is never NATed; a host without a slice sends nothing out; bad
// extension values are refused with reasons. The switch equals the agent after every step.
import test from 'ava';
import { OperationStatus } from '../proto/gen/alcor/common.js';
import type { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { ExternalSegment, SimInternet, SimVm } from '../ovs-sim/index.js';
import { elasticIpMac, hostExternalMac } from '../dataplane/external.js';
import { macText } from '../dataplane/fields.js';
import { ipv4Value } from '../dataplane/fields.js';
import { startCloud } from './helpers/sim-cloud.js';
import { switchEqualsAgent as switchHolds } from './helpers/switch-state.js';
import type { RoutedCloud } from './helpers/routed-cloud.js';
import { INTERNET_HOST, NEXT_HOP, type NatSpec, natGoalStateFor } from './helpers/nat-cloud.js';
import { sgState } from './helpers/security-groups.js';

const A = '10.0.0.11';
const B = '10.0.0.12';
const C = '10.0.0.13';
const SHARED = '203.0.113.10';
const EIP = '203.0.113.50';

const CLOUD: RoutedCloud = {
  subnets: [
    { id: 'S1', vpc: 'V1', cidr: '10.1.0.0/24', gw: '10.1.0.1', gwMac: 'fa:16:3e:aa:01:01', vni: 5001, geneve: true },
    { id: 'S2', vpc: 'V1', cidr: '10.2.0.0/24', gw: '10.2.0.1', gwMac: 'fa:16:3e:aa:02:01', vni: 6001, geneve: false },
    // A second VPC reusing S1's CIDR, with its own router.
    { id: 'T1', vpc: 'V2', cidr: '10.1.0.0/24', gw: '10.1.0.1', gwMac: 'fa:16:3e:bb:01:01', vni: 8001, geneve: true },
  ],
  vms: [
    { id: 'a1', mac: 'fa:16:3e:00:0a:01', ip: '10.1.0.5', subnet: 'S1', host: A },
    { id: 'e1', mac: 'fa:16:3e:00:0a:09', ip: '10.1.0.9', subnet: 'S1', host: A },
    { id: 'b2', mac: 'fa:16:3e:00:0b:02', ip: '10.2.0.6', subnet: 'S2', host: B },
    { id: 'c1', mac: 'fa:16:3e:00:0c:01', ip: '10.1.0.7', subnet: 'S1', host: C },
    // Same address as a1, other VPC, other host.
    { id: 'q1', mac: 'fa:16:3e:00:1b:01', ip: '10.1.0.5', subnet: 'T1', host: B },
  ],
  routers: [
    { id: 'R1', subnets: ['S1', 'S2'] },
    { id: 'R2', subnets: ['T1'] },
  ],
};

const NAT: NatSpec = {
  slices: {
    R1: {
      [A]: [{ ip: SHARED, portMin: 1024, portMax: 2047 }],
      [B]: [{ ip: SHARED, portMin: 3072, portMax: 4095 }],
      [C]: [{ ip: '203.0.113.11', portMin: 1024, portMax: 65535 }],
    },
    R2: { [B]: [{ ip: SHARED, portMin: 2048, portMax: 3071 }] },
  },
  eips: { e1: EIP },
  resolveNextHopOn: [C],
};

const subnetOf = (id: string) => CLOUD.subnets.find((s) => s.id === id)!;
const payload = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

test('distributed SNAT and elastic IPs on the simulator: three hosts, a shared SNAT address, an elastic IP that moves', async (t) => {
  const cloud = await startCloud([A, B, C], undefined, 'ext:br-ex');
  const byIp = new Map(cloud.hosts.map((h) => [h.host.underlayIp, h]));
  const push = async (host: string, gs: GoalStateV2, what: string): Promise<void> => {
    const r = await byIp.get(host)!.push(gs);
    t.deepEqual(r.operationStatuses.filter((s) => s.operationStatus !== OperationStatus.SUCCESS).map((s) => `${s.resourceId}: ${s.statusDetail}`), [], `${what} on ${host}`);
  };
  const switchEqualsAgent = async (when: string): Promise<void> => {
    for (const h of cloud.hosts) await switchHolds(t, h.dataplane, `${when} on ${h.host.name}`);
  };
  try {
    // The operator's side: each host's br-ex (made by the agent here) gets its uplink on the
    // external network, where the upstream router is.
    const segment = new ExternalSegment();
    for (const h of cloud.hosts) h.host.plug('br-ex', segment.uplink(h.host.name), 'eth1');
    const internet = new SimInternet(segment, NEXT_HOP.ip, NEXT_HOP.mac);
    const vm = new Map<string, SimVm>();
    for (const v of CLOUD.vms) {
      const m = new SimVm(v.id, v.mac, v.ip, subnetOf(v.subnet).gw, 24);
      vm.set(v.id, m);
      byIp.get(v.host)!.host.plug('br-int', m, `tap${v.id}`, { 'iface-id': v.id });
    }
    for (const h of [A, B, C]) await push(h, natGoalStateFor(CLOUD, NAT, h), 'the cloud with its external gateways');
    cloud.fabric.run();
    // Host C was given no next-hop MAC: it asked by ARP and learned it.
    const resolver = byIp.get(C)!.dataplane.nextHops;
    await waitFor(() => resolver.resolved.get(NEXT_HOP.ip) === NEXT_HOP.mac);
    t.is(resolver.resolved.get(NEXT_HOP.ip), NEXT_HOP.mac, 'host C resolved the next hop by ARP');
    t.true(resolver.counts.requests >= 1);
    await byIp.get(C)!.dataplane.settled(); // the rebuild the ARP reply started
    await switchEqualsAgent('after the external gateways');

    // Every VM learns its gateway, then sends UDP from port 5000 to the same internet address.
    for (const v of vm.values()) v.arpFor(v.gateway!);
    cloud.fabric.run();
    const send = (id: string, dport = 53): void => {
      const m = vm.get(id)!;
      m.sendUdp(INTERNET_HOST, m.arp.get(m.gateway!)!, 5000, dport, payload(`from ${id}`));
    };
    for (const id of ['a1', 'b2', 'c1', 'q1']) send(id);
    cloud.fabric.run();
    const seen = new Map(internet.received.map((p) => [text(p.payload), p]));
    const within = (id: string, ip: string, min: number, max: number, hostIp: string): void => {
      const p = seen.get(`from ${id}`);
      t.truthy(p, `${id}'s datagram reached the internet`);
      if (!p) return;
      t.is(p.src, ip, `${id} leaves as ${ip}`);
      t.true(p.srcPort >= min && p.srcPort <= max, `${id}'s source port ${p.srcPort} is in its host's slice ${min}–${max}`);
      t.is(p.dst, INTERNET_HOST);
      t.is(p.srcMac, macText(hostExternalMac(hostIp)), `${id} leaves from its host's external MAC`);
      t.is(p.ttl, 63, 'TTL decremented once (the router hop)');
    };
    within('a1', SHARED, 1024, 2047, A);
    within('b2', SHARED, 3072, 4095, B);
    within('c1', '203.0.113.11', 1024, 65535, C);
    // Same inner 5-tuple as a1 (10.1.0.5:5000 → internet:53), other VPC and host, same SNAT address.
    within('q1', SHARED, 2048, 3071, B);
    t.is(new Set([...seen.values()].map((p) => `${p.src}:${p.srcPort}`)).size, 4, 'four distinct outside tuples');
    // The internet echoed each back: every VM got exactly its own reply.
    for (const id of ['a1', 'b2', 'c1', 'q1']) {
      const got = vm.get(id)!.udpReceived.filter((u) => u.from === INTERNET_HOST);
      t.deepEqual(got.map((u) => [u.port, text(u.payload)]), [[5000, `from ${id}`]], `${id} got its reply`);
    }

    // The elastic IP wins over SNAT for e1, and the internet reaches e1 by it.
    send('e1');
    cloud.fabric.run();
    const e = seen.get('from e1') ?? internet.received.find((p) => text(p.payload) === 'from e1');
    t.is(e?.src, EIP, 'e1 leaves with its elastic IP');
    t.is(e?.srcPort, 5000, 'no port translation for an elastic IP');
    t.is(e?.srcMac, macText(elasticIpMac(EIP)), 'from the elastic IP\'s MAC');
    t.deepEqual(vm.get('e1')!.udpReceived.map((u) => u.from), [INTERNET_HOST], 'e1 got the reply');
    internet.openUdp(INTERNET_HOST, EIP, 7000, 8000, payload('hello e1'));
    cloud.fabric.run();
    const inbound = vm.get('e1')!.udpReceived.filter((u) => text(u.payload) === 'hello e1');
    t.deepEqual(inbound.map((u) => [u.from, u.port]), [[INTERNET_HOST, 8000]], 'the internet reached e1 by its elastic IP (destination NAT to 10.1.0.9)');

    // Unsolicited traffic to the SNAT address reaches nobody; ICMP echo through SNAT works.
    const before = [...vm.values()].map((v) => v.udpReceived.length);
    internet.openUdp(INTERNET_HOST, SHARED, 7001, 1500, payload('scan'));
    cloud.fabric.run();
    t.deepEqual([...vm.values()].map((v) => v.udpReceived.length), before, 'no VM got unsolicited traffic to the SNAT address');
    const seq = vm.get('a1')!.ping(INTERNET_HOST);
    cloud.fabric.run();
    t.is(vm.get('a1')!.pings.get(seq)?.state, 'replied', 'a1 pings the internet through SNAT');
    const icmp = internet.received.filter((p) => p.proto === 'icmp');
    t.deepEqual(icmp.map((p) => p.src), [SHARED], 'the internet saw the ping from the SNAT address');

    // East-west is routed, never NATed.
    const a1 = vm.get('a1')!;
    a1.sendUdp('10.2.0.6', a1.arp.get(a1.gateway!)!, 6000, 6001, payload('east-west'));
    cloud.fabric.run();
    t.deepEqual(vm.get('b2')!.udpReceived.filter((u) => text(u.payload) === 'east-west').map((u) => u.from), ['10.1.0.5'], 'b2 sees a1\'s own address');
    t.falsy(internet.received.find((p) => text(p.payload) === 'east-west'), 'east-west traffic never left');
    await switchEqualsAgent('after the traffic');

    // The elastic IP moves from e1 (host A) to c1 (host C): A stops answering for it, C
    // announces it by gratuitous ARP, and the internet reaches c1 by it.
    const moved: NatSpec = { ...NAT, eips: { c1: EIP } };
    await push(A, natGoalStateFor(CLOUD, moved, A), 'the elastic IP taken from e1');
    await push(C, natGoalStateFor(CLOUD, moved, C), 'the elastic IP given to c1');
    cloud.fabric.run();
    t.is(byIp.get(C)!.dataplane.garps, 1, 'host C sent one gratuitous ARP for the elastic IP');
    t.is(segment.learned.get(macText(elasticIpMac(EIP))), 2, 'the external switch now finds the elastic IP\'s MAC at host C');
    const answersFor = (ip: string, dp: typeof byIp extends Map<string, infer H> ? H : never): boolean =>
      [...dp.dataplane.installed.flows.values()].some((f) => f.bridge === 'br-ex' && f.match.some((m) => m.field === 'arp_tpa' && m.value === ipv4Value(ip)));
    t.false(answersFor(EIP, byIp.get(A)!), 'host A no longer answers ARP for the elastic IP');
    t.true(answersFor(EIP, byIp.get(C)!), 'host C does');
    internet.openUdp(INTERNET_HOST, EIP, 7002, 8002, payload('hello c1'));
    cloud.fabric.run();
    t.deepEqual(vm.get('c1')!.udpReceived.filter((u) => text(u.payload) === 'hello c1').map((u) => u.port), [8002], 'c1 is reached by the moved elastic IP');
    t.deepEqual(vm.get('e1')!.udpReceived.filter((u) => text(u.payload) === 'hello c1'), [], 'e1 is not');
    // e1 now leaves by its host's SNAT slice, not by the old elastic IP (its conntrack entries were flushed).
    send('e1', 54);
    cloud.fabric.run();
    const e1Out = internet.received.filter((p) => text(p.payload) === 'from e1' && p.dstPort === 54);
    t.deepEqual(e1Out.map((p) => p.src), [SHARED], 'e1 is source-NATed by host A\'s slice after losing its elastic IP');
    await switchEqualsAgent('after the elastic IP moved');

    // Host B loses its slices: its VMs send nothing to the uplink.
    const noB: NatSpec = { ...moved, slices: { R1: { ...NAT.slices.R1!, [B]: [] }, R2: {} } };
    await push(B, natGoalStateFor(CLOUD, noB, B), 'host B without slices');
    const count = internet.received.length;
    send('b2', 55);
    send('q1', 55);
    cloud.fabric.run();
    t.is(internet.received.length, count, 'a host without a slice sends nothing out');
    await switchEqualsAgent('after host B lost its slices');

    // Host A's router loses its external gateway: nothing leaves, the zone's connections are flushed.
    const flushes = byIp.get(A)!.dataplane.flushes;
    const noGw = natGoalStateFor(CLOUD, noB, A);
    for (const r of Object.values(noGw.routerStates)) r.configuration!.externalGateway = undefined;
    await push(A, noGw, 'host A without the external gateway');
    t.true(byIp.get(A)!.dataplane.flushes > flushes, 'the router\'s conntrack zone was flushed');
    t.is(byIp.get(A)!.host.datapath.conntrack.size, 0, 'no connection of the removed NAT remains');
    t.false(answersFor(SHARED, byIp.get(A)!), 'host A no longer answers ARP for the SNAT address');
    send('a1', 56);
    cloud.fabric.run();
    t.is(internet.received.length, count, 'a host whose router has no external gateway sends nothing out');
    await switchEqualsAgent('after the external gateway was removed');
  } finally {
    await cloud.stop();
  }
});

async function waitFor(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
}

test('bad extension values are refused with reasons; the rest of the router and the port applies', async (t) => {
  const cloud = await startCloud([A], undefined, 'ext:br-ex');
  const h = cloud.hosts[0]!;
  try {
    const gs = natGoalStateFor(CLOUD, { slices: {}, eips: {} }, A);
    const router = (id: string, gw: NonNullable<NonNullable<GoalStateV2['routerStates'][string]['configuration']>['externalGateway']>): void => {
      const r = structuredClone(Object.values(gs.routerStates)[0]!);
      r.configuration!.id = id;
      r.configuration!.externalGateway = gw;
      gs.routerStates[`${A}/${id}`] = r;
    };
    const gw = { externalNetwork: 'ext', externalCidr: '203.0.113.0/24', nextHopIp: NEXT_HOP.ip, nextHopMac: NEXT_HOP.mac, snat: [] as { ip: string; portMin: number; portMax: number }[] };
    router('BADCIDR', { ...gw, externalCidr: '203.0.113.0/33' });
    router('NOMAP', { ...gw, externalNetwork: 'physnet9' });
    router('HOPOUT', { ...gw, nextHopIp: '198.51.100.1' });
    router('SLICES', { ...gw, snat: [
      { ip: SHARED, portMin: 80, portMax: 2000 }, { ip: SHARED, portMin: 3000, portMax: 2000 }, { ip: '198.51.100.1', portMin: 1024, portMax: 2047 },
      { ip: SHARED, portMin: 5000, portMax: 5999 },
    ] });
    const a1 = gs.portStates.a1!.configuration!;
    a1.elasticIps = [{ elasticIp: '198.51.100.9', fixedIp: '10.1.0.5' }, { elasticIp: EIP, fixedIp: '10.1.0.77' }];
    const r = await h.push(gs);
    const detail = (id: string): string => {
      const s = r.operationStatuses.find((x) => x.resourceId === id);
      t.is(s?.operationStatus, OperationStatus.INVALID_ARG, id);
      return s?.statusDetail ?? '';
    };
    t.regex(detail('BADCIDR'), /external_gateway\.external_cidr: .*prefix.*applied without its external gateway/);
    t.regex(detail('NOMAP'), /"physnet9" is not a bridge mapping of this host \(it has "ext"; --bridge-mappings\)/);
    t.regex(detail('HOPOUT'), /next_hop_ip: 198\.51\.100\.1 is outside external_cidr 203\.0\.113\.0\/24/);
    const slices = detail('SLICES');
    t.regex(slices, /snat\[0\]: port range 80–2000 is not within 1024–65535 or is inverted/);
    t.regex(slices, /snat\[1\]: port range 3000–2000/);
    t.regex(slices, /snat\[2\]\.ip: 198\.51\.100\.1 is outside external_cidr/);
    t.notRegex(slices, /snat\[3\]/);
    const eips = detail('a1');
    t.regex(eips, /elastic_ips\[0\]\.elastic_ip: 198\.51\.100\.9 is outside the external CIDR 203\.0\.113\.0\/24/);
    t.regex(eips, /elastic_ips\[1\]\.fixed_ip: 10\.1\.0\.77 is not an address of this port/);
    // What was good applied: the routers route (no gateway where it was bad), the good slice is kept, a1 is stored without elastic IPs.
    const store = h.agent.store;
    t.is(store.get('router', 'BADCIDR')?.externalGateway, null);
    t.is(store.get('router', 'NOMAP')?.externalGateway, null);
    t.deepEqual(store.get('router', 'SLICES')?.externalGateway?.snat, [{ ip: SHARED, portMin: 5000, portMax: 5999 }]);
    t.deepEqual(store.get('port', 'a1')?.elasticIps, []);
    t.is(store.get('router', 'BADCIDR')?.subnetRoutingTables.length, 2, 'the router itself applied');
  } finally {
    await cloud.stop();
  }
});

test('security groups apply before SNAT on egress and after DNAT on ingress', async (t) => {
  const cloud = await startCloud([A], undefined, 'ext:br-ex');
  const h = cloud.hosts[0]!;
  try {
    const segment = new ExternalSegment();
    h.host.plug('br-ex', segment.uplink('hv1'), 'eth1');
    const internet = new SimInternet(segment, NEXT_HOP.ip, NEXT_HOP.mac);
    const e1 = new SimVm('e1', 'fa:16:3e:00:0a:09', '10.1.0.9', '10.1.0.1', 24);
    const cloudA: RoutedCloud = { ...CLOUD, vms: CLOUD.vms.filter((v) => v.id === 'e1') };
    const gs = natGoalStateFor(cloudA, { slices: {}, eips: { e1: EIP } }, A);
    // Ingress: UDP 8000 from anywhere (the rule sees the fixed IP: after DNAT). Egress: UDP to port 53 only.
    gs.securityGroupStates.web = sgState('web', [
      { dir: 'ingress', proto: 'udp', min: 8000, max: 8000, prefix: '0.0.0.0/0' },
      { dir: 'egress', proto: 'udp', min: 53, max: 53, prefix: '0.0.0.0/0' },
    ]);
    gs.portStates.e1!.configuration!.securityGroupIds = [{ id: 'web' }];
    const r = await h.push(gs);
    // e1's tap is not plugged yet: PENDING, and its elastic IP not announced.
    t.deepEqual(r.operationStatuses.filter((s) => s.operationStatus !== OperationStatus.SUCCESS).map((s) => s.resourceId), ['e1']);
    t.is(h.dataplane.garps, 0);
    h.host.plug('br-int', e1, 'tape1', { 'iface-id': 'e1' });
    await waitFor(() => h.dataplane.garps === 1);
    cloud.fabric.run();
    t.is(h.dataplane.garps, 1, 'the elastic IP is announced once its port is bound');
    t.is(segment.learned.get(macText(elasticIpMac(EIP))), 0, 'the external switch learned where the elastic IP is');
    internet.openUdp(INTERNET_HOST, EIP, 7000, 8000, payload('allowed'));
    internet.openUdp(INTERNET_HOST, EIP, 7000, 8001, payload('denied'));
    cloud.fabric.run();
    t.deepEqual(e1.udpReceived.map((u) => text(u.payload)), ['allowed'], 'only the port the ingress rule allows reaches e1');
    e1.arpFor('10.1.0.1');
    cloud.fabric.run();
    const gw = e1.arp.get('10.1.0.1')!;
    e1.sendUdp(INTERNET_HOST, gw, 5353, 53, payload('dns'));
    e1.sendUdp(INTERNET_HOST, gw, 5353, 80, payload('web'));
    cloud.fabric.run();
    t.deepEqual(internet.received.map((p) => `${p.src}:${text(p.payload)}`), [`${EIP}:dns`], 'egress rules decide before NAT: only port 53 leaves, as the elastic IP');
    await switchHolds(t, h.dataplane, 'security groups with NAT');
  } finally {
    await cloud.stop();
  }
});
