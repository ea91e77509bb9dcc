// Security groups on real Open vSwitch 3.1: the agent programs a sandbox; ofproto/trace with
// --ct-next shows each case's verdict on the live switch (allowed with the commit in the port's
// zone, denied, replies, remote-group conjunction, spoofing); the same traces over the agent's
// flows print the same on real OVS and on the simulator; switch == agent after each change.
import test, { type ExecutionContext } from 'ava';
import { OperationStatus } from '../proto/gen/alcor/common.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { resolveConfig } from '../agent/config.js';
import { startAgent } from '../agent/daemon.js';
import { silentLogger } from '../agent/log.js';
import { makeClient, pushStream } from '../agent/push.js';
import type { FlowDataplane } from '../dataplane/flow-dataplane.js';
import { neighborState, portState, subnetState } from './helpers/agents.js';
import { ovsMissing, startSandbox } from './helpers/ovs-sandbox.js';
import { bridgeLine, onOvsAndSim } from './helpers/ovs-vs-sim.js';
import { switchEqualsAgent } from './helpers/switch-state.js';
import { until } from './helpers/wait.js';
import { sgState } from './helpers/security-groups.js';

const missing = await ovsMissing();
if (missing) console.log(`security-groups-ovs: ${missing}`);
const maybe = missing ? test.skip : test.serial;

const W1 = { mac: 'fa:16:3e:00:00:10', ip: '10.1.0.10' };
const X1 = { mac: 'fa:16:3e:00:00:30', ip: '10.1.0.30' };
const C1 = { mac: 'fa:16:3e:00:00:20', ip: '10.1.0.20', host: '10.0.0.12' };

function goalState(): GoalStateV2 {
  return GoalStateV2.fromPartial({
    subnetStates: { S: subnetState('S', { networkType: 3 }) },
    securityGroupStates: {
      web: sgState('web', [
        { dir: 'ingress', proto: 'udp', min: 7000, max: 7000, prefix: '0.0.0.0/0' },
        { dir: 'ingress', proto: 'icmp', group: 'clients' },
        { dir: 'egress', proto: 'udp' }, { dir: 'egress', proto: 'icmp' },
      ]),
    },
    portStates: {
      w1: portState('w1', { macAddress: W1.mac, fixedIps: [{ subnetId: 'S', ipAddress: W1.ip }], securityGroupIds: [{ id: 'web' }] }),
      x1: portState('x1', { macAddress: X1.mac, fixedIps: [{ subnetId: 'S', ipAddress: X1.ip }] }),
    },
    neighborStates: {
      'L2/c1': neighborState('c1', 0, { macAddress: C1.mac, hostIpAddress: C1.host, fixedIps: [{ neighborType: 0, subnetId: 'S', ipAddress: C1.ip, arionGroup: '', tunnelId: 0 }], securityGroupIds: ['clients'] }),
    },
  });
}

const udpTo = (from: { mac: string; ip: string }, to: { mac: string; ip: string }, inPort: string, sport: number, dport: number): string =>
  `${inPort},udp,dl_src=${from.mac},dl_dst=${to.mac},nw_src=${from.ip},nw_dst=${to.ip},nw_ttl=64,udp_src=${sport},udp_dst=${dport}`;
const pingTo = (from: { mac: string; ip: string }, to: { mac: string; ip: string }, inPort: string): string =>
  `${inPort},icmp,dl_src=${from.mac},dl_dst=${to.mac},nw_src=${from.ip},nw_dst=${to.ip},nw_ttl=64,icmp_type=8,icmp_code=0`;
const FROM_C1 = 'in_port=4096,tun_id=0x1389,tun_src=10.0.0.12,tun_dst=10.0.0.11';

/** Trace specs and the ct state each recirculation sees. */
const CASES: Record<string, { spec: string; ct?: string }> = {
  'x1 to w1 udp 7000 (allowed)': { spec: udpTo(X1, W1, 'in_port=2', 40000, 7000), ct: 'trk,new' },
  'x1 to w1 udp 7001 (denied)': { spec: udpTo(X1, W1, 'in_port=2', 40000, 7001), ct: 'trk,new' },
  'c1 to w1 ping (remote group)': { spec: pingTo(C1, W1, FROM_C1), ct: 'trk,new' },
  'x1 to w1 ping (not in the group)': { spec: pingTo(X1, W1, 'in_port=2'), ct: 'trk,new' },
  'w1 reply to x1': { spec: udpTo(W1, X1, 'in_port=1', 7000, 40000), ct: 'trk,est,rpl' },
  'x1 to w1 udp 7000 established': { spec: udpTo(X1, W1, 'in_port=2', 40000, 7000), ct: 'trk,est' },
  'w1 spoofing its source IP': { spec: udpTo({ mac: W1.mac, ip: '10.1.0.99' }, X1, 'in_port=1', 1, 2) },
  'w1 ARP as another address': { spec: `in_port=1,arp,dl_src=${W1.mac},dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=10.1.0.99,arp_tpa=${X1.ip},arp_sha=${W1.mac}` },
  'w1 DHCP discover': { spec: `in_port=1,udp,dl_src=${W1.mac},dl_dst=ff:ff:ff:ff:ff:ff,nw_src=0.0.0.0,nw_dst=255.255.255.255,udp_src=68,udp_dst=67` },
};
const traceArgs = (c: { spec: string; ct?: string }): string[] => (c.ct ? [c.spec, '--ct-next', c.ct] : [c.spec]);

maybe('security groups on real OVS: ct-next traces of every verdict, identical on the simulator; switch == agent', async (t: ExecutionContext) => {
  const sb = await startSandbox();
  const agent = await startAgent(resolveConfig({
    listen: '127.0.0.1:0', admin: '127.0.0.1:0', hostIp: '10.0.0.11', dataplane: 'ovs',
    ovsDb: `unix:${sb.dbSocket}`, ovsRundir: sb.dir, ovsDatapathType: 'dummy', stateDir: 'none',
  }), silentLogger());
  const client = makeClient(`127.0.0.1:${agent.grpcPort}`);
  const dp = agent.dataplane as FlowDataplane;
  try {
    await sb.vsctl('add-port', 'br-int', 'tapw1', '--', 'set', 'interface', 'tapw1', 'type=dummy', 'ofport_request=1', 'external_ids:iface-id=w1');
    await sb.vsctl('add-port', 'br-int', 'tapx1', '--', 'set', 'interface', 'tapx1', 'type=dummy', 'ofport_request=2', 'external_ids:iface-id=x1');
    await until(() => dp.backend.bindings.ofport('w1') !== undefined && dp.backend.bindings.ofport('x1') !== undefined, 'taps bound');
    const [r] = await pushStream(client, [goalState()]);
    t.deepEqual(r!.operationStatuses.filter((s) => s.operationStatus !== OperationStatus.SUCCESS).map((s) => `${s.resourceId}: ${s.statusDetail}`), []);
    await switchEqualsAgent(t, dp, 'programming');

    const actions = async (c: { spec: string; ct?: string }): Promise<string> => {
      const text = await sb.appctl('ofproto/trace', 'br-int', ...traceArgs(c));
      return [...text.matchAll(/Datapath actions: (.*)/g)].map((m) => m[1]).join(' | ');
    };
    // Allowed: committed in w1's zone (its OpenFlow port, 1), then out to w1.
    t.regex(await actions(CASES['x1 to w1 udp 7000 (allowed)']!), /ct\(commit,zone=1\),\d+$/);
    t.regex(await actions(CASES['x1 to w1 udp 7001 (denied)']!), /\| drop$/);
    t.regex(await actions(CASES['c1 to w1 ping (remote group)']!), /ct\(commit,zone=1\),\d+$/);
    t.regex(await actions(CASES['x1 to w1 ping (not in the group)']!), /\| drop$/);
    t.regex(await actions(CASES['w1 reply to x1']!), /ct\(zone=1\),recirc\(0x[0-9a-f]+\) \| \d+$/);
    t.regex(await actions(CASES['x1 to w1 udp 7000 established']!), /ct\(commit,zone=1\),\d+$/);
    t.is(await actions(CASES['w1 spoofing its source IP']!), 'drop');
    t.is(await actions(CASES['w1 ARP as another address']!), 'drop');
    t.regex(await actions(CASES['w1 DHCP discover']!), /userspace\(.*controller/);

    // The same traces over the agent's flows: real OVS and the simulator agree line by line.
    const out = await onOvsAndSim(t, [...dp.installed.flows.values()], [
      bridgeLine([1, 2]),
      'ovs-ofctl -O OpenFlow13 --bundle add-flows br-int flows.txt',
      ...Object.values(CASES).map((c) => `ovs-appctl ofproto/trace br-int ${traceArgs(c).join(' ')}`),
    ]);
    t.true(out.length > 5);

    // A rule removed: the established connection is now dropped; switch == agent.
    const without = goalState();
    without.securityGroupStates.web = sgState('web', [{ dir: 'ingress', proto: 'icmp', group: 'clients' }, { dir: 'egress', proto: 'udp' }], 1);
    await pushStream(client, [GoalStateV2.fromPartial({ securityGroupStates: without.securityGroupStates })]);
    t.regex(await actions(CASES['x1 to w1 udp 7000 established']!), /\| drop$/);
    await switchEqualsAgent(t, dp, 'the rule removal');
  } finally {
    client.close();
    await agent.stop();
    await sb.stop();
  }
});
