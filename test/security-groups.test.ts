// Stateful security groups and port security on the simulator, two hosts, real packets through
// the fabric: allowed and denied UDP and ICMP, replies of allowed connections, remote-group
// rules (membership from our neighbor extension), a membership change that touches only the
// address dimension, a rule removed mid-connection, spoofed IP/MAC/ARP dropped, allowed address
// pairs passing, DHCP and gateway ARP whatever the rules; switch == agent after every step.
import test from 'ava';
import { OperationStatus } from '../proto/gen/alcor/common.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { SimVm } from '../ovs-sim/index.js';
import { arpFrame, ipv4Frame, parseFrame, udp } from '../packets/frames.js';
import type { Flow } from '../dataplane/flow.js';
import { formatFlow } from '../dataplane/flow-text.js';
import { neighborState, portState, subnetState } from './helpers/agents.js';
import { startCloud } from './helpers/sim-cloud.js';
import { comparable, switchEqualsAgent as switchHolds } from './helpers/switch-state.js';
import { type RuleSpec, sgState } from './helpers/security-groups.js';

const A = '10.0.0.11';
const B = '10.0.0.12';
const GW_MAC = 'fa:16:3e:aa:00:01';

/** "Any protocol" on Alcor's wire: one rule each for TCP, UDP and ICMP. */
const ALL_EGRESS: RuleSpec[] = (['tcp', 'udp', 'icmp'] as const).map((proto) => ({ dir: 'egress', proto }));

const VMS = {
  w1: { mac: 'fa:16:3e:00:00:10', ip: '10.1.0.10', host: A, groups: ['web'], pairs: [{ ipAddress: '10.1.0.50', macAddress: '' }] },
  c1: { mac: 'fa:16:3e:00:00:20', ip: '10.1.0.20', host: B, groups: ['clients'], pairs: [] },
  x1: { mac: 'fa:16:3e:00:00:30', ip: '10.1.0.30', host: B, groups: [] as string[], pairs: [] },
};
type VmName = keyof typeof VMS;

const WEB: RuleSpec[] = [
  { dir: 'ingress', proto: 'udp', min: 7000, max: 7000, prefix: '0.0.0.0/0', id: 'web-udp' },
  { dir: 'ingress', proto: 'icmp', group: 'clients', id: 'web-ping' },
  ...ALL_EGRESS,
];
const CLIENTS: RuleSpec[] = ALL_EGRESS;

function goalStateFor(host: string, groups: Record<string, RuleSpec[]>, membership: Partial<Record<VmName, string[]>> = {}): GoalStateV2 {
  const gs = GoalStateV2.fromPartial({ subnetStates: { S: subnetState('S', { networkType: 3, gateway: { ipAddress: '10.1.0.1', macAddress: GW_MAC } }) } });
  for (const [id, rules] of Object.entries(groups)) gs.securityGroupStates[id] = sgState(id, rules);
  for (const [name, v] of Object.entries(VMS)) {
    const sgs = membership[name as VmName] ?? v.groups;
    if (v.host === host) {
      gs.portStates[name] = portState(name, { macAddress: v.mac, fixedIps: [{ subnetId: 'S', ipAddress: v.ip }], allowAddressPairs: v.pairs, securityGroupIds: sgs.map((id) => ({ id })) });
      gs.dhcpStates[`dhcp-${name}`] = { operationType: 1, configuration: { revisionNumber: 1, requestId: '', id: `dhcp-${name}`, updateType: 0, subnetId: 'S', macAddress: v.mac, ipv4Address: v.ip, ipv6Address: '', portHostName: name } };
    }
    gs.neighborStates[`L2/${name}`] = neighborState(name, 0, { macAddress: v.mac, hostIpAddress: v.host, fixedIps: [{ neighborType: 0, subnetId: 'S', ipAddress: v.ip, arionGroup: '', tunnelId: 0 }], securityGroupIds: sgs });
  }
  return gs;
}

test('security groups on the simulator: stateful rules, remote groups, rule removal, anti-spoofing', async (t) => {
  const cloud = await startCloud([A, B]);
  const [ha, hb] = cloud.hosts as [typeof cloud.hosts[0], typeof cloud.hosts[0]];
  const byHost: Record<string, typeof ha> = { [A]: ha, [B]: hb };
  try {
    const vm = {} as Record<VmName, SimVm>;
    for (const [name, v] of Object.entries(VMS)) {
      vm[name as VmName] = new SimVm(name, v.mac, v.ip, '10.1.0.1', 24);
      byHost[v.host]!.host.plug('br-int', vm[name as VmName], `tap${name}`, { 'iface-id': name });
    }
    const push = async (host: string, gs: GoalStateV2, what: string) => {
      const r = await byHost[host]!.push(gs);
      t.deepEqual(r.operationStatuses.filter((s) => s.operationStatus !== OperationStatus.SUCCESS).map((s) => `${s.resourceId}: ${s.statusDetail}`), [], what);
    };
    const switchEqualsAgent = async (when: string) => {
      for (const h of cloud.hosts) await switchHolds(t, h.dataplane, `${when} on ${h.host.name}`);
    };
    await push(A, goalStateFor(A, { web: WEB, clients: CLIENTS }), 'host A');
    await push(B, goalStateFor(B, { clients: CLIENTS }), 'host B');
    await switchEqualsAgent('programming');

    /** UDP from one VM to another (by MAC), optionally from another source: how many arrived. */
    const sendUdp = (from: VmName, to: VmName, srcPort: number, dstPort: number, over: { srcIp?: string; srcMac?: string } = {}): number => {
      const before = vm[to].udpReceived.length;
      const f = vm[from];
      f.send(ipv4Frame(VMS[to].mac, over.srcMac ?? f.mac, over.srcIp ?? f.ip!, VMS[to].ip, 17, udp(srcPort, dstPort, new TextEncoder().encode('hi'))));
      cloud.fabric.run();
      return vm[to].udpReceived.length - before;
    };
    const ping = (from: VmName, to: VmName): string => {
      const seq = vm[from].ping(VMS[to].ip);
      cloud.fabric.run();
      return vm[from].pings.get(seq)!.state;
    };

    // Ingress UDP 7000 from anywhere; the reply of the allowed connection passes both ways.
    t.is(sendUdp('c1', 'w1', 40000, 7000), 1, 'allowed by web-udp');
    t.is(sendUdp('w1', 'c1', 7000, 40000), 1, 'the reply, though c1 allows no ingress');
    t.is(sendUdp('x1', 'w1', 40001, 7000), 1, 'an unprotected VM too (0.0.0.0/0)');
    t.is(sendUdp('x1', 'w1', 40001, 7001), 0, 'another port: denied');
    // c1 has no ingress rule: a new connection to it is dropped.
    t.is(sendUdp('x1', 'c1', 5000, 5000), 0, 'denied into c1');

    // ICMP only from the remote group "clients".
    t.is(ping('c1', 'w1'), 'replied');
    t.not(ping('x1', 'w1'), 'replied', 'x1 is not in clients');
    t.is(ping('w1', 'x1'), 'replied', 'w1 may ping out; the reply comes back');

    // x1 joins "clients" (on host B; host A learns it through the neighbor): only the address
    // dimension changes on A, not the rule flows.
    const key = (f: Flow): string => comparable([f])[0]!;
    const flowsBefore = new Set([...ha.dataplane.installed.flows.values()].map(key));
    await push(A, GoalStateV2.fromPartial({ neighborStates: goalStateFor(A, {}, { x1: ['clients'] }).neighborStates }), 'x1 joins clients');
    const flowsAfter = [...ha.dataplane.installed.flows.values()];
    const added = flowsAfter.filter((f) => !flowsBefore.has(key(f)));
    t.is(flowsAfter.length - flowsBefore.size, 1, 'one flow more');
    t.deepEqual(added.map((f) => formatFlow(f).replace(/cookie=0x[0-9a-f]+,/, '')), ['table=61,priority=100,ip,ct_state=-rpl+trk,nw_src=10.1.0.30 actions=conjunction(' + /conjunction\((\d+),2\/2\)/.exec(formatFlow(added[0]!))![1] + ',2/2)']);
    t.is(ping('x1', 'w1'), 'replied', 'now allowed');
    await switchEqualsAgent('a membership change');

    // A rule removed mid-connection: the established connection is cut.
    t.is(sendUdp('c1', 'w1', 40002, 7000), 1);
    t.is(sendUdp('c1', 'w1', 40002, 7000), 1, 'established');
    await push(A, GoalStateV2.fromPartial({ securityGroupStates: { web: sgState('web', WEB.filter((r) => r.id !== 'web-udp'), 2) } }), 'web-udp removed');
    t.is(sendUdp('c1', 'w1', 40002, 7000), 0, 'cut');
    t.is(ping('c1', 'w1'), 'replied', 'the other rules stay');
    await switchEqualsAgent('a rule removal');

    // Anti-spoofing: a source IP or MAC that is not w1's, and ARP claiming another address.
    t.is(sendUdp('w1', 'x1', 5000, 5000), 1, 'its own address');
    t.is(sendUdp('w1', 'x1', 5000, 5000, { srcIp: '10.1.0.99' }), 0, 'spoofed IP');
    t.is(sendUdp('w1', 'x1', 5000, 5000, { srcMac: 'fa:16:3e:00:00:99' }), 0, 'spoofed MAC');
    t.is(sendUdp('w1', 'x1', 5000, 5000, { srcIp: '10.1.0.50' }), 1, 'an allowed address pair');
    const arpReplies = () => vm.w1.received.filter((f) => { const p = parseFrame(f); return p?.kind === 'arp' && p.op === 2; }).length;
    const replies = arpReplies();
    vm.w1.send(arpFrame(1, VMS.w1.mac, '10.1.0.99', '00:00:00:00:00:00', VMS.x1.ip));
    cloud.fabric.run();
    t.is(arpReplies(), replies, 'ARP from a spoofed address is dropped');
    vm.w1.arpFor(VMS.x1.ip);
    cloud.fabric.run();
    t.is(arpReplies(), replies + 1, 'ARP from its own address is answered');
    vm.w1.arpFor('10.1.0.1');
    cloud.fabric.run();
    t.is(vm.w1.arp.get('10.1.0.1'), GW_MAC, 'the gateway answers ARP whatever the rules');
    // DHCP passes whatever the rules.
    vm.w1.startDhcp();
    cloud.fabric.run();
    t.is(vm.w1.dhcp.state, 'bound');

    // w1's groups become one the agent has never heard of: not enforced (and said so) until its
    // SecurityGroupState arrives; w1's flows are exactly those of a port without groups.
    const ghost = await ha.push(GoalStateV2.fromPartial({ portStates: goalStateFor(A, {}, { w1: ['ghost'] }).portStates }));
    t.regex(ghost.operationStatuses.find((s) => s.resourceId === 'w1')?.statusDetail ?? '', /security group ghost is not known \(accepted; enforced once its SecurityGroupState arrives\)/);
    t.is(sendUdp('x1', 'w1', 1, 2), 1, 'everything passes');
    t.false([...ha.dataplane.installed.flows.values()].some((f) => f.owner?.startsWith('port-sg:w1')), 'no security flows left for w1');
    await switchEqualsAgent('groups unknown');
    await push(A, GoalStateV2.fromPartial({ securityGroupStates: { ghost: sgState('ghost', ALL_EGRESS) } }), 'ghost arrives');
    t.is(sendUdp('x1', 'w1', 1, 2), 0, 'enforced now: no ingress rule');
    t.regex(await ha.dataplane.trace(`in_port=${ha.dataplane.backend.bindings.ofport('w1')},${Buffer.from(ipv4Frame(VMS.x1.mac, VMS.w1.mac, VMS.w1.ip, VMS.x1.ip, 17, udp(5, 6, new Uint8Array(2)))).toString('hex')}`), /\[port-sg:w1 rule ghost\/ghost-1\]/, 'the trace names the rule that allowed it');
    await switchEqualsAgent('the group arriving');
  } finally {
    await cloud.stop();
  }
});
