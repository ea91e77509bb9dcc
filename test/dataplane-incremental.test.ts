// Incremental equals recompute: random sequences of goal states, applied one by one through the
// intake (each change whole, or in chunks as a large one goes), must leave exactly the flows one
// full computation over the final store gives; and
// deleting everything must return to the fixed baseline.
import test from 'ava';
import fc from 'fast-check';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { Intake } from '../agent/intake.js';
import { silentLogger } from '../agent/log.js';
import { ResourceStore } from '../agent/store.js';
import { DryRunBackend } from '../dataplane/backend.js';
import { type Flow, type Group, flowKey } from '../dataplane/flow.js';
import { formatFlow, formatGroup } from '../dataplane/flow-text.js';
import { FlowDataplane } from '../dataplane/flow-dataplane.js';
import type { ResourceOutcome } from '../dataplane/api.js';
import { hostNetworking, parseBridgeMappings } from '../dataplane/external.js';

const HOST = '10.0.0.11';
/** The host has an external network: routers' external gateways and ports' elastic IPs program flows. */
const HOST_NET = hostNetworking(HOST, parseBridgeMappings('ext:br-ex'));
const SUBNETS = ['S1', 'S2', 'S3'];
const op = fc.constantFrom(1, 2, 4, 0); // CREATE, UPDATE, DELETE, INFO

const subnetArb = fc.record({
  id: fc.constantFrom(...SUBNETS), op, vni: fc.constantFrom(100, 200), geneve: fc.boolean(), gw: fc.boolean(),
});
const GROUPS = ['G1', 'G2'];
const portArb = fc.record({
  id: fc.constantFrom('P1', 'P2', 'P3', 'P4'), op, subnet: fc.constantFrom(...SUBNETS), host: fc.integer({ min: 2, max: 250 }),
  mac: fc.integer({ min: 1, max: 40 }), up: fc.boolean(), groups: fc.subarray(GROUPS), pair: fc.boolean(),
  eip: fc.option(fc.constantFrom('203.0.113.50', '203.0.113.51', '198.51.100.9'), { nil: undefined }),
});
const sgRuleArb = fc.record({
  ingress: fc.boolean(), proto: fc.constantFrom(0, 1, 2), min: fc.constantFrom(0, 22, 1000), max: fc.constantFrom(0, 22, 1999),
  prefix: fc.constantFrom('', '10.2.0.0/16', '0.0.0.0/0'), remote: fc.constantFrom('', 'G1', 'G2'),
});
const sgArb = fc.record({ id: fc.constantFrom(...GROUPS), op, rules: fc.array(sgRuleArb, { maxLength: 3 }) });
const neighborArb = fc.record({
  id: fc.constantFrom('N1', 'N2', 'N3', 'N4', 'N5', 'P1'), op, subnet: fc.constantFrom(...SUBNETS), host: fc.integer({ min: 2, max: 250 }),
  mac: fc.integer({ min: 41, max: 80 }), where: fc.constantFrom(HOST, '10.0.0.12', '10.0.0.13'), l3: fc.boolean(), groups: fc.subarray(GROUPS),
});
/** Next hops and destinations drawn from a few addresses, so rules meet VMs that hold them. */
const ruleArb = fc.record({
  dst: fc.constantFrom('0.0.0.0/0', '172.16.0.0/12', '10.2.0.0/24', '192.168.5.0/24'), hop: fc.constantFrom('10.1.1.7', '10.2.0.5', '10.2.1.7', '10.3.1.9', ''),
  priority: fc.integer({ min: 0, max: 3 }), internet: fc.boolean(),
});
const routerArb = fc.record({
  id: fc.constantFrom('R1', 'R2'), op, subnets: fc.subarray(SUBNETS), dvr: fc.boolean(), rules: fc.array(ruleArb, { maxLength: 2 }),
  ext: fc.option(fc.record({
    network: fc.constantFrom('ext', 'ext', 'nope'), mac: fc.boolean(),
    slices: fc.array(fc.record({ ip: fc.constantFrom('203.0.113.10', '203.0.113.11'), min: fc.constantFrom(1024, 4096), len: fc.constantFrom(0, 1023, 70000) }), { maxLength: 3 }),
  }), { nil: undefined }),
});
const vpcArb = fc.record({ op, gateways: fc.subarray(['Z1', 'Z2', 'X']) });
const gatewayArb = fc.record({
  id: fc.constantFrom('Z1', 'Z2'), op, zeta: fc.boolean(), nodes: fc.subarray(['10.0.0.201', '10.0.0.202', '10.0.0.203']), port: fc.constantFrom(0, 8300, 9000),
});
const stepArb = fc.record({
  subnets: fc.array(subnetArb, { maxLength: 2 }), ports: fc.array(portArb, { maxLength: 3 }), neighbors: fc.array(neighborArb, { maxLength: 4 }),
  routers: fc.array(routerArb, { maxLength: 1 }), groups: fc.array(sgArb, { maxLength: 1 }),
  vpcs: fc.array(vpcArb, { maxLength: 1 }), gateways: fc.array(gatewayArb, { maxLength: 1 }),
});

type Step = fc.Arbitrary<unknown> extends never ? never : ReturnType<typeof stepArb.generate>['value'];

const mac = (n: number): string => `fa:16:3e:00:00:${n.toString(16).padStart(2, '0')}`;
/** Subnet Sn is 10.n.0.0/16 with gateway 10.n.0.1. */
const net = (subnet: string): number => SUBNETS.indexOf(subnet) + 1;

function goalState(step: Step): GoalStateV2 {
  const gs = GoalStateV2.fromPartial({});
  for (const s of step.subnets) {
    gs.subnetStates[s.id] = { operationType: s.op, configuration: {
      revisionNumber: 0, requestId: '', id: s.id, updateType: 0, networkType: s.geneve ? 3 : 0, vpcId: 'V', name: '',
      cidr: `10.${net(s.id)}.0.0/16`, tunnelId: String(s.vni), gateway: s.gw ? { ipAddress: `10.${net(s.id)}.0.1`, macAddress: mac(96 + net(s.id)) } : undefined,
      dhcpEnable: true, extraDhcpOptions: [], dnsEntryList: [], availabilityZone: '' } };
  }
  for (const p of step.ports) {
    gs.portStates[p.id] = { operationType: p.op, configuration: {
      revisionNumber: 0, requestId: '', id: p.id, updateType: 1, vpcId: 'V', name: '', deviceId: '', deviceOwner: '', macAddress: mac(p.mac),
      adminStateUp: p.up, hostInfo: undefined, elasticIps: p.eip ? [{ elasticIp: p.eip, fixedIp: `10.${net(p.subnet)}.0.${p.host}` }] : [], fixedIps: [{ subnetId: p.subnet, ipAddress: `10.${net(p.subnet)}.0.${p.host}` }],
      allowAddressPairs: p.pair ? [{ ipAddress: `10.${net(p.subnet)}.9.0/24`, macAddress: '' }] : [], securityGroupIds: p.groups.map((id) => ({ id })) } };
  }
  for (const n of step.neighbors) {
    gs.neighborStates[`${n.l3 ? 'L3' : 'L2'}/${n.id}`] = { operationType: n.op, configuration: {
      revisionNumber: 0, requestId: '', id: n.id, updateType: 0, vpcId: 'V', name: '', macAddress: mac(n.mac), hostMacAddress: '',
      hostIpAddress: n.where, fixedIps: [{ neighborType: n.l3 ? 1 : 0, subnetId: n.subnet, ipAddress: `10.${net(n.subnet)}.1.${n.host}`, arionGroup: '', tunnelId: 0 }], allowAddressPairs: [], securityGroupIds: n.groups } };
  }
  for (const g of step.groups ?? []) {
    gs.securityGroupStates[g.id] = { operationType: g.op, configuration: {
      revisionNumber: 0, requestId: '', id: g.id, updateType: 0, vpcId: 'V', name: '',
      securityGroupRules: g.rules.map((r, i) => ({ operationType: 0, securityGroupId: g.id, id: `r${i}`, direction: r.ingress ? 1 : 0, ethertype: 0,
        protocol: r.proto, portRangeMin: Math.min(r.min, r.max || r.min), portRangeMax: r.max === 0 ? 0 : Math.max(r.min, r.max), remoteIpPrefix: r.prefix, remoteGroupId: r.remote })) } };
  }
  for (const v of step.vpcs ?? []) {
    gs.vpcStates.V = { operationType: v.op, configuration: { revisionNumber: 0, requestId: '', id: 'V', updateType: 0, projectId: '', name: '', cidr: '', tunnelId: 0, gatewayIds: v.gateways } };
  }
  for (const g of step.gateways ?? []) {
    gs.gatewayStates[g.id] = { operationType: g.op, configuration: {
      revisionNumber: 0, requestId: '', id: g.id, gatewayType: g.zeta ? 1 : 5,
      destinations: g.nodes.map((ip) => ({ ipAddress: ip, macAddress: mac(200 + Number(ip.split('.')[3]) - 200) })),
      extraInfo: g.port === 0 ? undefined : { $case: 'zetaInfo', value: { portInbandOperation: g.port } } } };
  }
  for (const r of step.routers ?? []) {
    gs.routerStates[`${HOST}/${r.id}`] = { operationType: r.op, configuration: {
      revisionNumber: 0, requestId: '', id: r.id, updateType: 0, hostDvrMacAddress: r.dvr ? 'fe:16:11:00:00:0b' : '',
      externalGateway: r.ext && {
        externalNetwork: r.ext.network, externalCidr: '203.0.113.0/24', nextHopIp: '203.0.113.1', nextHopMac: r.ext.mac ? '02:00:00:00:ff:01' : '',
        snat: r.ext.slices.map((s) => ({ ip: s.ip, portMin: s.min, portMax: s.min + s.len })),
      },
      subnetRoutingTables: r.subnets.map((id, i) => ({ subnetId: id, routingRules: i > 0 ? [] : r.rules.map((x, j) => ({
        operationType: 0, id: `rule${j}`, name: '', destination: x.dst, nextHopIp: x.hop, priority: x.priority,
        routingRuleExtraInfo: { destinationType: x.internet ? 0 : 1, nextHopMac: '' } })) })) } };
  }
  return gs;
}

const dump = (flows: Iterable<Flow>): string[] => [...flows].map(formatFlow).sort();
const dumpGroups = (groups: Iterable<Group>): string[] => [...groups].map(formatGroup).sort();

test('random goal-state sequences: incremental flows equal a full recompute', async (t) => {
  await fc.assert(fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 12 }), fc.boolean(), fc.integer({ min: 0, max: 3 }), async (steps, started, chunkSize) => {
    const store = new ResourceStore();
    const backend = new DryRunBackend();
    const dp = new FlowDataplane(backend, undefined, undefined, undefined, undefined, HOST_NET);
    // Also without start(): the dataplane then builds its indexes from the store it is handed.
    if (started) await dp.start(store);
    if (chunkSize > 0) {
      // Each change in chunks of `chunkSize` events, as the intake sends a large one once the
      // dataplane is chunkable (it leaves aggregate owners to the last chunk).
      const apply = dp.apply.bind(dp);
      dp.apply = async (events, view, chunk) => {
        if (chunk || events.length <= chunkSize || !dp.chunkable) return apply(events, view, chunk);
        const batch = {};
        const out = new Map<string, ResourceOutcome>();
        for (let at = 0; at < events.length; at += chunkSize) {
          for (const [k, o] of await apply(events.slice(at, at + chunkSize), view, { batch, last: at + chunkSize >= events.length })) out.set(k, o);
        }
        return out;
      };
    }
    const intake = new Intake(store, dp, silentLogger(), HOST);
    for (const s of steps) await intake.apply({ v2: goalState(s) });
    // Never started and never handed a change: an empty apply makes it compute what it has.
    if (!started) await dp.apply([], store);
    const full = FlowDataplane.recompute(store, backend.bindings, undefined, HOST_NET);
    const incremental = [...dump(dp.installed.flows.values()), ...dumpGroups(dp.installed.groups.values())];
    const recomputed = [...dump(full.activeFlows()), ...dumpGroups(full.activeGroups())];
    if (JSON.stringify(incremental) !== JSON.stringify(recomputed)) {
      t.log('incremental only:', incremental.filter((f) => !recomputed.includes(f)));
      t.log('recompute only:', recomputed.filter((f) => !incremental.includes(f)));
      return false;
    }
    // installed is keyed consistently
    return [...dp.installed.flows].every(([k, f]) => k === flowKey(f));
  }), { numRuns: 150 });
  t.pass();
});

test('deleting every resource returns the flow table to its baseline', async (t) => {
  const store = new ResourceStore();
  const dp = new FlowDataplane(new DryRunBackend(), undefined, undefined, undefined, undefined, HOST_NET);
  await dp.start(store);
  const baseline = dump(dp.installed.flows.values());
  t.true(baseline.length > 0);
  const intake = new Intake(store, dp, silentLogger(), HOST);
  const step: Step = {
    subnets: [{ id: 'S1', op: 1, vni: 100, geneve: true, gw: true }],
    ports: [{ id: 'P1', op: 1, subnet: 'S1', host: 5, mac: 1, up: true, groups: ['G1'], pair: true, eip: '203.0.113.50' }],
    neighbors: [{ id: 'N1', op: 1, subnet: 'S1', host: 6, mac: 50, where: '10.0.0.12', l3: false, groups: ['G1'] }, { id: 'N2', op: 1, subnet: 'S2', host: 7, mac: 51, where: '10.0.0.13', l3: true, groups: [] }],
    groups: [{ id: 'G1', op: 1, rules: [{ ingress: true, proto: 0, min: 22, max: 22, prefix: '', remote: 'G1' }, { ingress: false, proto: 2, min: 0, max: 0, prefix: '0.0.0.0/0', remote: '' }] }],
    routers: [{ id: 'R1', op: 0, subnets: ['S1', 'S2'], dvr: true, rules: [{ dst: '172.16.0.0/12', hop: '10.2.1.7', priority: 1, internet: false }], ext: { network: 'ext', mac: true, slices: [{ ip: '203.0.113.10', min: 1024, len: 1023 }] } }],
    vpcs: [], gateways: [],
  };
  step.subnets.push({ id: 'S2', op: 1, vni: 200, geneve: false, gw: true });
  await intake.apply({ v2: goalState(step) });
  t.true(dp.installed.size > baseline.length);
  const routed = [...dp.installed.flows.values()].filter((f) => f.table === 35 && f.priority > 0).map(formatFlow);
  t.is(routed.length, 3, 'a next-hop entry for the local port, the L2 and the L3 neighbor');
  t.true([...dp.installed.flows.values()].some((f) => f.table === 30 && formatFlow(f).includes('nw_dst=172.16.0.0/12')), 'the routing rule');
  t.true([...dp.installed.flows.values()].some((f) => f.table === 31 && formatFlow(f).includes('nat(src=203.0.113.10:1024-2047)')), 'the SNAT slice');
  t.true([...dp.installed.flows.values()].some((f) => f.bridge === 'br-ex' && formatFlow(f).includes('arp_tpa=203.0.113.50')), 'the elastic IP answered on br-ex');
  const del = goalState({
    subnets: step.subnets.map((s) => ({ ...s, op: 4 })), ports: step.ports.map((p) => ({ ...p, op: 4 })),
    neighbors: step.neighbors.map((n) => ({ ...n, op: 4 })), routers: step.routers.map((r) => ({ ...r, op: 4 })), groups: step.groups.map((g) => ({ ...g, op: 4 })),
    vpcs: [], gateways: [],
  });
  t.true([...dp.installed.flows.values()].some((f) => f.table === 61 && f.actions.some((a) => a.type === 'conjunction')), 'the remote-group rule');
  // Delete the referencing resources first (ports, neighbors, routers), then groups and subnets.
  const first = GoalStateV2.fromPartial({ portStates: del.portStates, neighborStates: del.neighborStates, routerStates: del.routerStates, securityGroupStates: del.securityGroupStates });
  await intake.apply({ v2: first });
  await intake.apply({ v2: GoalStateV2.fromPartial({ subnetStates: del.subnetStates }) });
  t.deepEqual(dump(dp.installed.flows.values()), baseline);
});
