// npm run demo: three simulated hypervisors on one simulated underlay, each running the agent
// (embedded simulator dataplane). A controller pushes goal states to the agents over gRPC, as
// NCM does; VMs boot, get their addresses by DHCP and ping across hosts over Geneve and VXLAN,
// and across subnets through a distributed router (DVR) on the sending host. Prints the flows
// one agent programmed and traces of a cross-host and a routed ping naming the resource behind
// every flow (the port, the router, the neighbor). North-south: the hosts' br-ex share a simulated
// external network with an upstream router standing for the internet; web VMs reach it by
// distributed SNAT (one shared address, a port slice per host) and web-3 is reached by its elastic IP.
// Last, a VPC with a Zeta gateway: the first ping goes through a simulated gateway cluster, whose
// OAM packet makes a direct path; the next ping goes straight to the other host.
import { resolveConfig } from '../agent/config.js';
import { type Agent, startAgent } from '../agent/daemon.js';
import { silentLogger } from '../agent/log.js';
import { formatReply, makeClient, pushStream } from '../agent/push.js';
import { SimBackend } from '../dataplane/backends/sim.js';
import { formatFlow } from '../dataplane/flow-text.js';
import { FlowDataplane } from '../dataplane/flow-dataplane.js';
import { ExternalSegment, Fabric, SimInternet, SimVm } from '../ovs-sim/index.js';
import { hostNetworking, parseBridgeMappings } from '../dataplane/external.js';
import { ipv4Frame, icmpEcho, udp as udpPayloadOf } from '../packets/frames.js';

const udpPayload = (src: number, dst: number): Uint8Array => udpPayloadOf(src, dst, new TextEncoder().encode('hello'));
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { ZetaGatewayStandIn } from '../test/helpers/zeta-gateway.js';

const HOSTS = ['10.0.0.11', '10.0.0.12', '10.0.0.13'];
/** North-south: the external network, its upstream router, the shared SNAT address and web-3's elastic IP. */
const EXT = { cidr: '203.0.113.0/24', nextHop: '203.0.113.1', nextHopMac: '02:00:00:00:ff:01', snat: '203.0.113.10', eip: '203.0.113.50', internetHost: '198.51.100.7' };
const sliceOf = (host: string): { ip: string; portMin: number; portMax: number } => {
  const i = HOSTS.indexOf(host);
  return { ip: EXT.snat, portMin: 1024 + 1024 * i, portMax: 2047 + 1024 * i };
};
const SUBNETS = {
  web: { id: 'subnet-web', cidr: '10.1.0.0/24', gw: '10.1.0.1', gwMac: 'fa:16:3e:ff:01:01', vni: 5001, type: 'GENEVE' },
  db: { id: 'subnet-db', cidr: '10.2.0.0/24', gw: '10.2.0.1', gwMac: 'fa:16:3e:ff:02:01', vni: 6001, type: 'VXLAN' },
} as const;
const VMS = [
  { id: 'port-web-1', name: 'web-1', mac: 'fa:16:3e:01:00:01', ip: '10.1.0.11', subnet: SUBNETS.web, host: HOSTS[0]! },
  { id: 'port-web-2', name: 'web-2', mac: 'fa:16:3e:01:00:02', ip: '10.1.0.12', subnet: SUBNETS.web, host: HOSTS[1]! },
  { id: 'port-web-3', name: 'web-3', mac: 'fa:16:3e:01:00:03', ip: '10.1.0.13', subnet: SUBNETS.web, host: HOSTS[2]! },
  { id: 'port-db-1', name: 'db-1', mac: 'fa:16:3e:02:00:01', ip: '10.2.0.21', subnet: SUBNETS.db, host: HOSTS[0]! },
  { id: 'port-db-2', name: 'db-2', mac: 'fa:16:3e:02:00:02', ip: '10.2.0.22', subnet: SUBNETS.db, host: HOSTS[2]! },
];

/**
 * The database ports' security group: PostgreSQL (UDP 5432 here, the simulated VMs speak UDP)
 * from the web subnet, ping from the VPC, everything out (TCP, UDP and ICMP: Alcor's wire has no
 * "any protocol").
 */
const DB_SG = {
  operationType: 'CREATE',
  configuration: {
    revisionNumber: 1, id: 'db-sg', name: 'db', vpcId: 'vpc-demo',
    securityGroupRules: [
      { id: 'pg-from-web', securityGroupId: 'db-sg', direction: 'INGRESS', ethertype: 'IPV4', protocol: 'UDP', portRangeMin: 5432, portRangeMax: 5432, remoteIpPrefix: SUBNETS.web.cidr },
      { id: 'ping-from-vpc', securityGroupId: 'db-sg', direction: 'INGRESS', ethertype: 'IPV4', protocol: 'ICMP', remoteIpPrefix: '10.0.0.0/8' },
      ...['TCP', 'UDP', 'ICMP'].map((protocol) => ({ id: `out-${protocol.toLowerCase()}`, securityGroupId: 'db-sg', direction: 'EGRESS', ethertype: 'IPV4', protocol })),
    ],
  },
};

/**
 * The GoalStateV2 NCM would send one host: VPC and subnets as INFO, its ports and DHCP, L2
 * neighbors of its subnets, L3 neighbors of the router's other subnet, and the router with this
 * host's DVR MAC.
 */
function goalStateFor(host: string): GoalStateV2 {
  const subnetStates = Object.fromEntries(Object.values(SUBNETS).map((s) => [s.id, {
    operationType: 'INFO', configuration: { revisionNumber: 1, id: s.id, vpcId: 'vpc-demo', name: s.id, cidr: s.cidr, tunnelId: String(s.vni), networkType: s.type, gateway: { ipAddress: s.gw, macAddress: s.gwMac }, dhcpEnable: true, dnsEntryList: [{ entry: '10.1.0.2' }] },
  }]));
  const mine = VMS.filter((v) => v.host === host);
  const mySubnets = new Set(mine.map((v) => v.subnet.id));
  const neighbor = (v: (typeof VMS)[number], type: 'L2' | 'L3') => [`${type}/${v.id}`, { operationType: 'CREATE', configuration: { revisionNumber: 1, id: v.id, vpcId: 'vpc-demo', macAddress: v.mac, hostIpAddress: v.host, fixedIps: [{ neighborType: type, subnetId: v.subnet.id, ipAddress: v.ip }] } }];
  return GoalStateV2.fromJSON({
    hostResources: { [host]: { resources: [] } },
    vpcStates: { 'vpc-demo': { operationType: 'INFO', configuration: { revisionNumber: 1, id: 'vpc-demo', cidr: '10.0.0.0/8' } } },
    subnetStates,
    portStates: Object.fromEntries(mine.map((v) => [v.id, { operationType: 'CREATE', configuration: {
      revisionNumber: 1, id: v.id, updateType: 'FULL', vpcId: 'vpc-demo', macAddress: v.mac, adminStateUp: true, fixedIps: [{ subnetId: v.subnet.id, ipAddress: v.ip }],
      securityGroupIds: v.subnet === SUBNETS.db ? [{ id: 'db-sg' }] : [], elasticIps: v.name === 'web-3' ? [{ elasticIp: EXT.eip, fixedIp: v.ip }] : [],
    } }])),
    securityGroupStates: mine.some((v) => v.subnet === SUBNETS.db) ? { 'db-sg': DB_SG } : {},
    dhcpStates: Object.fromEntries(mine.map((v) => [`dhcp-${v.id}`, { operationType: 'CREATE', configuration: { revisionNumber: 1, id: `dhcp-${v.id}`, subnetId: v.subnet.id, macAddress: v.mac, ipv4Address: v.ip, portHostName: v.name } }])),
    neighborStates: Object.fromEntries(VMS.map((v) => neighbor(v, mySubnets.has(v.subnet.id) ? 'L2' : 'L3'))),
    routerStates: { [`${host}/router-demo`]: { configuration: {
      revisionNumber: 1, id: 'router-demo', hostDvrMacAddress: `fe:16:11:00:00:${host.split('.')[3]}`, subnetRoutingTables: Object.values(SUBNETS).map((s) => ({ subnetId: s.id })),
      externalGateway: { externalNetwork: 'ext', externalCidr: EXT.cidr, nextHopIp: EXT.nextHop, nextHopMac: EXT.nextHopMac, snat: [sliceOf(host)] },
    } } },
  });
}

const line = (title: string): void => console.log(`\n=== ${title} ${'='.repeat(Math.max(0, 70 - title.length))}`);

const fabric = new Fabric();
const agents: { host: string; agent: Agent; dataplane: FlowDataplane }[] = [];
try {
  line('3 simulated hypervisors, one agent each (gRPC on loopback)');
  for (const [i, ip] of HOSTS.entries()) {
    const host = fabric.addHost(`hv${i + 1}`, ip);
    const dataplane = new FlowDataplane(new SimBackend(host), undefined, { leaseSeconds: 86400, domain: 'demo.internal', dns: [], underlayMtu: 1500 }, undefined, undefined, hostNetworking(ip, parseBridgeMappings('ext:br-ex')));
    const agent = await startAgent(resolveConfig({ listen: '127.0.0.1:0', admin: '127.0.0.1:0', hostIp: ip }), silentLogger(), dataplane);
    agents.push({ host: ip, agent, dataplane });
    console.log(`hv${i + 1}  underlay ${ip}  agent gRPC 127.0.0.1:${agent.grpcPort}  admin 127.0.0.1:${agent.adminPort}`);
  }

  // The operator's side of north-south: each br-ex gets its uplink on the external network.
  const segment = new ExternalSegment();
  for (const h of fabric.hosts.values()) h.plug('br-ex', segment.uplink(h.name), 'eth1');
  const internet = new SimInternet(segment, EXT.nextHop, EXT.nextHopMac);
  console.log(`external network ${EXT.cidr}: every host's br-ex uplink, upstream router ${EXT.nextHop} (the internet behind it)`);

  line('VMs boot; Nova plugs their taps (external_ids:iface-id)');
  const vms = new Map<string, SimVm>();
  for (const v of VMS) {
    const vm = new SimVm(v.name, v.mac);
    vms.set(v.name, vm);
    const h = fabric.hosts.get(v.host)!;
    const ofport = h.plug('br-int', vm, `tap${v.id.slice(0, 11)}`, { 'iface-id': v.id });
    console.log(`${v.name.padEnd(6)} ${v.mac}  on ${h.name} br-int port ${ofport}  (${v.subnet.type} subnet ${v.subnet.cidr})`);
  }

  line('The controller pushes one GoalStateV2 per host, each on a new stream');
  for (const a of agents) {
    const c = makeClient(`127.0.0.1:${a.agent.grpcPort}`);
    await pushStream(c, [GoalStateV2.fromPartial({})]); // NCM's warm-up
    const [reply] = await pushStream(c, [goalStateFor(a.host)]);
    c.close();
    console.log(formatReply(`to ${a.host}`, reply!).split('\n').slice(0, 1).join('\n'), `(${reply!.operationStatuses.filter((s) => s.operationStatus === 0).length} SUCCESS)`);
  }

  line('DHCP: every VM asks for its address');
  for (const vm of vms.values()) vm.startDhcp();
  fabric.run();
  for (const vm of vms.values()) {
    const c = vm.dhcp.config;
    console.log(`${vm.name.padEnd(6)} ${vm.dhcp.state}  ${c ? `${c.ip}/${c.mask} router ${c.router} dns ${c.dns.join(',')} mtu ${c.mtu} hostname ${c.hostName} lease ${c.lease}s` : ''}`);
  }

  line('Pings');
  const ping = (from: string, to: string): void => {
    const vm = vms.get(from)!;
    const before = fabric.delivered;
    const seq = vm.ping(to);
    fabric.run();
    console.log(`${from.padEnd(6)} -> ${to.padEnd(10)} ${vm.pings.get(seq)!.state.padEnd(8)} (${fabric.delivered - before} tunnel crossings)`);
  };
  ping('web-1', '10.1.0.12');
  ping('web-1', '10.1.0.13');
  ping('db-1', '10.2.0.22');
  ping('web-3', '10.1.0.11');
  line('Routed pings (router-demo joins web and db; routed on the sending host)');
  const routedPing = (from: string, to: string): void => {
    const vm = vms.get(from)!;
    const before = fabric.delivered;
    const seq = vm.ping(to);
    fabric.run();
    const p = vm.pings.get(seq)!;
    console.log(`${from.padEnd(6)} -> ${to.padEnd(10)} ${p.state.padEnd(8)} reply TTL ${p.ttl ?? '-'} (${fabric.delivered - before} tunnel crossings)`);
  };
  routedPing('web-1', '10.2.0.1');
  routedPing('web-1', '10.2.0.21');
  routedPing('web-1', '10.2.0.22');
  routedPing('db-2', '10.1.0.12');

  const hv1 = agents[0]!;
  line(`Flows on hv1 (${hv1.dataplane.flows().length}), as ovs-ofctl add-flows lines`);
  for (const f of hv1.dataplane.flows()) console.log(formatFlow(f));

  line('Trace of web-1 pinging web-2 (hv1 → hv2 over Geneve), each flow with its resource');
  const web1 = VMS[0]!;
  const frame = ipv4Frame(VMS[1]!.mac, web1.mac, web1.ip, VMS[1]!.ip, 1, icmpEcho(8, 1, 1));
  const ofport = fabric.hosts.get(web1.host)!.bridge('br-int').portByName(`tap${web1.id.slice(0, 11)}`)!.ofport;
  console.log(await hv1.dataplane.trace(`in_port=${ofport},${Buffer.from(frame).toString('hex')}`));

  line('Trace of web-1 pinging db-2 (routed on hv1, then hv1 → hv3 over VXLAN), each flow with its resource');
  const db2 = VMS[4]!;
  const routedFrame = ipv4Frame(SUBNETS.web.gwMac, web1.mac, web1.ip, db2.ip, 1, icmpEcho(8, 1, 2));
  console.log(await hv1.dataplane.trace(`in_port=${ofport},${Buffer.from(routedFrame).toString('hex')}`));

  line('Security group db-sg on the db ports: UDP 5432 from the web subnet allowed, UDP 22 blocked');
  const db1 = VMS[3]!;
  const web1vm = vms.get('web-1')!;
  for (const port of [5432, 22]) {
    const before = vms.get('db-1')!.udpReceived.length;
    // Routed web → db on hv1: to the web gateway MAC.
    web1vm.sendUdp(db1.ip, SUBNETS.web.gwMac, 40000, port, new TextEncoder().encode('hello'));
    fabric.run();
    const got = vms.get('db-1')!.udpReceived.length - before;
    console.log(`web-1 -> db-1 udp ${String(port).padEnd(5)} ${got > 0 ? 'delivered' : 'blocked'}`);
    const udpFrame = ipv4Frame(SUBNETS.web.gwMac, web1.mac, web1.ip, db1.ip, 17, udpPayload(40000, port));
    const text = await hv1.dataplane.trace(`in_port=${ofport},${Buffer.from(udpFrame).toString('hex')}`);
    // The conntrack step and the rule (or the miss) that decided.
    for (const l of text.split('\n').filter((x) => /^\s*(6[01])\. |ct\(|Datapath actions/.test(x))) console.log(`    ${l.trim()}`);
  }

  line('North-south: SNAT (one shared address, a port slice per host) and an elastic IP');
  for (const h of HOSTS) console.log(`hv${HOSTS.indexOf(h) + 1} SNAT slice ${sliceOf(h).ip}:${sliceOf(h).portMin}-${sliceOf(h).portMax}`);
  const say = new TextEncoder();
  for (const name of ['web-1', 'web-2']) vms.get(name)!.sendUdp(EXT.internetHost, SUBNETS.web.gwMac, 5000, 53, say.encode(`dns query from ${name}`));
  vms.get('web-3')!.sendUdp(EXT.internetHost, SUBNETS.web.gwMac, 5000, 53, say.encode('dns query from web-3'));
  fabric.run();
  for (const p of internet.received) console.log(`internet sees ${p.src}:${p.srcPort} -> ${p.dst}:${p.dstPort}  "${new TextDecoder().decode(p.payload)}"`);
  for (const name of ['web-1', 'web-2', 'web-3']) {
    const got = vms.get(name)!.udpReceived.filter((u) => u.from === EXT.internetHost);
    console.log(`${name.padEnd(6)} got ${got.length} reply from ${EXT.internetHost} (un-NATed by its host's conntrack)`);
  }
  internet.openUdp(EXT.internetHost, EXT.eip, 7000, 8080, say.encode('hello web-3'));
  fabric.run();
  const inbound = vms.get('web-3')!.udpReceived.filter((u) => u.port === 8080);
  console.log(`internet -> ${EXT.eip}:8080  ${inbound.length > 0 ? `delivered to web-3 (${VMS[2]!.ip})` : 'not delivered'}`);
  line('Trace of web-1 to the internet on hv1: routed out of the VPC, SNAT in the router\'s zone');
  const outFrame = ipv4Frame(SUBNETS.web.gwMac, web1.mac, web1.ip, EXT.internetHost, 17, udpPayload(5001, 53));
  console.log(await hv1.dataplane.trace(`in_port=${ofport},${Buffer.from(outFrame).toString('hex')}`));

  line('Zeta gateway path: vpc-zeta names a ZETA gateway of two nodes (a simulated gateway cluster)');
  const ZG = [{ ip: '10.0.0.201', mac: 'fe:ee:00:00:02:01' }, { ip: '10.0.0.202', mac: 'fe:ee:00:00:02:02' }];
  const ZVMS = [
    { id: 'port-zeta-1', name: 'zeta-1', mac: 'fa:16:3e:03:00:01', ip: '10.8.0.11', host: HOSTS[0]! },
    { id: 'port-zeta-2', name: 'zeta-2', mac: 'fa:16:3e:03:00:02', ip: '10.8.0.12', host: HOSTS[1]! },
  ];
  const gateway = new ZetaGatewayStandIn(fabric, ZG, ZVMS.map((v) => ({ ip: v.ip, mac: v.mac, host: v.host })));
  for (const v of ZVMS) {
    const vm = new SimVm(v.name, v.mac, v.ip, '10.8.0.1', 24);
    vms.set(v.name, vm);
    fabric.hosts.get(v.host)!.plug('br-int', vm, `tap${v.id.slice(0, 11)}`, { 'iface-id': v.id });
  }
  for (const a of agents.slice(0, 2)) {
    const other = HOSTS.find((h) => h !== a.host && HOSTS.indexOf(h) < 2)!;
    // Each host is told of one VM on the other (so it is a known host for OAM), not of the VM pinged.
    const gs = GoalStateV2.fromJSON({
      vpcStates: { 'vpc-zeta': { operationType: 'CREATE', configuration: { revisionNumber: 1, id: 'vpc-zeta', cidr: '10.8.0.0/16', gatewayIds: ['zgc-1'] } } },
      gatewayStates: { 'zgc-1': { operationType: 'CREATE', configuration: { revisionNumber: 1, id: 'zgc-1', gatewayType: 'ZETA', destinations: ZG.map((g) => ({ ipAddress: g.ip, macAddress: g.mac })), zetaInfo: { portInbandOperation: 8300 } } } },
      subnetStates: { 'subnet-zeta': { operationType: 'CREATE', configuration: { revisionNumber: 1, id: 'subnet-zeta', vpcId: 'vpc-zeta', cidr: '10.8.0.0/24', tunnelId: '8001', networkType: 'GENEVE', gateway: { ipAddress: '10.8.0.1', macAddress: 'fa:16:3e:ff:08:01' } } } },
      portStates: Object.fromEntries(ZVMS.filter((v) => v.host === a.host).map((v) => [v.id, { operationType: 'CREATE', configuration: { revisionNumber: 1, id: v.id, vpcId: 'vpc-zeta', macAddress: v.mac, adminStateUp: true, fixedIps: [{ subnetId: 'subnet-zeta', ipAddress: v.ip }] } }])),
      neighborStates: { 'L2/port-zeta-9': { operationType: 'CREATE', configuration: { revisionNumber: 1, id: 'port-zeta-9', vpcId: 'vpc-zeta', macAddress: 'fa:16:3e:03:00:09', hostIpAddress: other, fixedIps: [{ neighborType: 'L2', subnetId: 'subnet-zeta', ipAddress: '10.8.0.99' }] } } },
    });
    const c = makeClient(`127.0.0.1:${a.agent.grpcPort}`);
    const [reply] = await pushStream(c, [gs]);
    c.close();
    console.log(formatReply(`to ${a.host}`, reply!).split('\n').slice(0, 1).join('\n'), `(${reply!.operationStatuses.filter((st) => st.operationStatus === 0).length} SUCCESS)`);
  }
  const zping = async (n: number): Promise<void> => {
    const vm = vms.get('zeta-1')!;
    const viaGateway = gateway.received.length;
    const before = fabric.delivered;
    const seq = vm.ping('10.8.0.12');
    fabric.run();
    // The OAM inject is handled by the agent in its commit order: let it land.
    for (let i = 0; i < 100 && hv1.dataplane.zetaOam.counters.injected < n; i++) await new Promise((r) => setTimeout(r, 10));
    const nodes = [...new Set(gateway.received.slice(viaGateway).map((r) => r.node))];
    console.log(`zeta-1 -> 10.8.0.12 ${vm.pings.get(seq)!.state.padEnd(8)} ${gateway.received.length - viaGateway} packets through the gateway${nodes.length ? ` (nodes ${nodes.sort().join(', ')})` : ''}, ${fabric.delivered - before} host-to-host tunnel crossings`);
  };
  await zping(1);
  const direct = fabric.hosts.get(HOSTS[0]!)!.bridge('br-int').flows().filter((r) => r.table === 80 && r.priority === 100);
  console.log(`the gateway's OAM packet made ${direct.length} direct path on hv1 (idle_timeout ${direct[0]?.idle ?? '-'} s); the next ping goes straight to hv2:`);
  await zping(1);
} finally {
  for (const a of agents) await a.agent.stop();
}
