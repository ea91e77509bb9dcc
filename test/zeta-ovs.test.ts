// The Zeta gateway path on real Open vSwitch 3.1 (private sandbox, dummy datapath): the agent's
// select group and flows on the live bridge; ofproto/trace of unknown unicast and of ARP for an
// unknown address through the group (the node's MAC and IP, the subnet's VNI); a real OAM packet
// (Geneve from a gateway node, received on the underlay with netdev-dummy/receive, decapsulated
// by OVS) punted to the agent, which installs the direct path with its idle timeout; the trace of
// that 5-tuple then goes straight to the instance's host. A gateway node removed changes the
// group in place; the gateway removed takes the group and the direct paths.
import test from 'ava';
import { OperationStatus } from '../proto/gen/alcor/common.js';
import { GoalStateV2 } from '../proto/gen/alcor/goalstate.js';
import { resolveConfig } from '../agent/config.js';
import { startAgent } from '../agent/daemon.js';
import { silentLogger } from '../agent/log.js';
import { makeClient, pushStream } from '../agent/push.js';
import type { FlowDataplane } from '../dataplane/flow-dataplane.js';
import { encodeOamPayload } from '../dataplane/zeta-oam.js';
import { zetaGroupId } from '../dataplane/features/zeta.js';
import { ipv4Frame, udp } from '../packets/frames.js';
import { neighborState, portState, subnetState } from './helpers/agents.js';
import { type OvsSandbox, ovsMissing, startSandbox } from './helpers/ovs-sandbox.js';
import { switchEqualsAgent } from './helpers/switch-state.js';
import { until } from './helpers/wait.js';
import { encapsulate, gatewayState, vpcState } from './helpers/zeta-gateway.js';
import { bridgeLine, onOvsAndSim } from './helpers/ovs-vs-sim.js';
import { formatGroup } from '../dataplane/flow-text.js';

const missing = await ovsMissing();
if (missing) console.log(`zeta-ovs: ${missing}`);
const maybe = missing ? test.skip : test.serial;

const A = '10.0.0.11';
const B = '10.0.0.12';
const G1 = { ip: '10.0.0.201', mac: 'fe:ee:00:00:02:01' };
const G2 = { ip: '10.0.0.202', mac: 'fe:ee:00:00:02:02' };
const A1 = { id: 'a1', mac: 'fa:16:3e:00:0a:01', ip: '10.1.0.5' };

function goalState(nodes = [G1, G2], gatewayIds = ['ZG1']): GoalStateV2 {
  const gs = GoalStateV2.fromPartial({ hostResources: { [A]: { resources: [] } } });
  gs.vpcStates.V1 = vpcState(gatewayIds);
  gs.gatewayStates.ZG1 = gatewayState(nodes);
  gs.subnetStates.S1 = subnetState('S1', { vpcId: 'V1', cidr: '10.1.0.0/24', tunnelId: '5001', networkType: 3, gateway: { ipAddress: '10.1.0.1', macAddress: 'fa:16:3e:aa:01:01' } });
  gs.portStates.a1 = portState('a1', { vpcId: 'V1', macAddress: A1.mac, fixedIps: [{ subnetId: 'S1', ipAddress: A1.ip }] });
  // A neighbor on B: B is a host this agent knows.
  gs.neighborStates['L2/b9'] = neighborState('b9', 0, { vpcId: 'V1', macAddress: 'fa:16:3e:00:0b:09', hostIpAddress: B, fixedIps: [{ neighborType: 0, subnetId: 'S1', ipAddress: '10.1.0.19', arionGroup: '', tunnelId: 0 }] });
  return gs;
}

let sb: OvsSandbox | undefined;
test.after.always(async () => { await sb?.stop(); });

maybe('Zeta on real OVS: group path traces, a real OAM packet installs a direct path, updates and deletes exact', async (t) => {
  sb = await startSandbox();
  const agent = await startAgent(resolveConfig({
    listen: '127.0.0.1:0', admin: '127.0.0.1:0', hostIp: A, dataplane: 'ovs',
    ovsDb: `unix:${sb.dbSocket}`, ovsRundir: sb.dir, ovsDatapathType: 'dummy', stateDir: 'none',
  }), silentLogger());
  const client = makeClient(`127.0.0.1:${agent.grpcPort}`);
  const dp = agent.dataplane as FlowDataplane;
  const push = async (gs: GoalStateV2, what: string) => {
    const [r] = await pushStream(client, [gs]);
    t.deepEqual(r!.operationStatuses.filter((s) => s.operationStatus !== OperationStatus.SUCCESS).map((s) => `${s.resourceId}: ${s.statusDetail}`), [], what);
  };
  try {
    await sb.vsctl('add-port', 'br-int', 'tapa1', '--', 'set', 'interface', 'tapa1', 'type=dummy', 'ofport_request=1', 'external_ids:iface-id=a1');
    await sb.vsctl('add-br', 'br-phy', '--', 'set', 'bridge', 'br-phy', 'datapath_type=dummy', '--', 'add-port', 'br-phy', 'eth0', '--', 'set', 'interface', 'eth0', 'type=dummy');
    await sb.appctl('netdev-dummy/ip4addr', 'br-phy', `${A}/24`);
    await sb.appctl('ovs/route/add', '10.0.0.0/24', 'br-phy');
    for (const peer of [B, G1.ip, G2.ip]) await sb.appctl('tnl/arp/set', 'br-phy', peer, 'aa:55:aa:55:00:99');
    await until(() => dp.backend.bindings.ofport('a1') !== undefined, 'tap bound');
    await push(goalState(), 'the Zeta VPC');
    await switchEqualsAgent(t, dp, 'programming');

    // The group on the live switch: select, a bucket per node.
    const gid = zetaGroupId('ZG1', 'geneve');
    const groups = await sb.ofctl('-O', 'OpenFlow14', 'dump-groups', 'br-int');
    t.regex(groups, new RegExp(`group_id=${gid},type=select,bucket=actions=set_field:${G1.mac}->eth_dst,set_field:${G1.ip}->tun_dst,output:4096,bucket=actions=set_field:${G2.mac}->eth_dst,set_field:${G2.ip}->tun_dst,output:4096`));
    t.log(groups.split('\n').find((l) => l.includes('group_id')) ?? '');

    const trace = (spec: string) => sb!.appctl('ofproto/trace', 'br-int', spec);
    // Unknown unicast from a1: tun_id = the subnet's VNI, the group, one node's MAC and IP. The
    // select group hashes in the datapath (hash(sym_l4(0)), then recirculates): a first trace
    // stops there; tracing with the hash the datapath would have computed shows the bucket.
    const hashed = await trace(`in_port=1,tcp,dl_src=${A1.mac},dl_dst=fa:16:3e:00:0b:01,nw_src=${A1.ip},nw_dst=10.1.0.6,tcp_src=40000,tcp_dst=80`);
    t.regex(hashed, /Datapath actions: hash\(sym_l4\(0\)\),recirc\(0x[0-9a-f]+\)/);
    const uni = await trace(`dp_hash=0x5,in_port=1,tcp,dl_src=${A1.mac},dl_dst=fa:16:3e:00:0b:01,nw_src=${A1.ip},nw_dst=10.1.0.6,tcp_src=40000,tcp_dst=80`);
    t.regex(uni, new RegExp(`group:${gid}`));
    t.regex(uni, /tunneling to 10\.0\.0\.20[12]/);
    t.regex(uni, /geneve\(.*vni=0x1389/);
    t.regex(uni, /set_field:fe:ee:00:00:02:0[12]->eth_dst/);
    t.log(uni.split('\n').filter((l) => /group|bucket|tunneling|Datapath actions/.test(l)).join('\n'));
    // ARP for an unknown address of the network: to the gateway too.
    const arp = await trace(`dp_hash=0x5,in_port=1,arp,dl_src=${A1.mac},dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=${A1.ip},arp_tpa=10.1.0.77,arp_sha=${A1.mac}`);
    t.regex(arp, new RegExp(`group:${gid}`));
    t.regex(arp, /tunneling to 10\.0\.0\.20[12]/);
    // From a tunnel, unknown unicast is not sent back (split horizon).
    const back = await trace(`in_port=4096,tun_id=0x1389,tun_src=${B},tun_dst=${A},tcp,dl_src=fa:16:3e:00:0b:01,dl_dst=fa:16:3e:00:0b:77,nw_src=10.1.0.6,nw_dst=10.1.0.77,tcp_src=80,tcp_dst=40000`);
    t.regex(back, /Datapath actions: drop/);

    // The same traces over the agent's flows and group on a fresh OVS and on the simulator: the
    // select group, the datapath hash and its recirculation, each bucket, print the same.
    const zetaTraces = [
      `in_port=1,tcp,dl_src=${A1.mac},dl_dst=fa:16:3e:00:0b:01,nw_src=${A1.ip},nw_dst=10.1.0.6,tcp_src=40000,tcp_dst=80`,
      ...[0x1, 0x2, 0x5, 0xa].map((h) => `dp_hash=${h},in_port=1,tcp,dl_src=${A1.mac},dl_dst=fa:16:3e:00:0b:01,nw_src=${A1.ip},nw_dst=10.1.0.6,tcp_src=40000,tcp_dst=80`),
      `dp_hash=0x3,in_port=1,arp,dl_src=${A1.mac},dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=${A1.ip},arp_tpa=10.1.0.77,arp_sha=${A1.mac}`,
      `in_port=4096,tun_id=0x1389,tun_src=${G1.ip},tun_dst=${A},udp,dl_src=${G1.mac},dl_dst=02:00:0a:00:00:0b,nw_src=${G1.ip},nw_dst=${A},udp_src=8300,udp_dst=8300`,
    ];
    const compared = await onOvsAndSim(t, [...dp.installed.flows.values()], [
      bridgeLine([1]),
      ...[...dp.installed.groups.values()].map((g) => `ovs-ofctl -O OpenFlow13 add-group br-int ${formatGroup(g)}`),
      'ovs-ofctl -O OpenFlow13 --bundle add-flows br-int flows.txt',
      'ovs-ofctl -O OpenFlow13 dump-groups br-int',
      ...zetaTraces.map((x) => `ovs-appctl ofproto/trace br-int ${x}`),
    ], {}, [...dp.installed.meters.values()]);
    t.regex(compared.at(-1)!, /controller\(userdata=10\)/, 'the OAM packet is punted (on both)');

    // A real OAM packet: Geneve from gateway node G1 to this host, decapsulated by OVS, punted.
    const oam = encodeOamPayload({
      op: 0, innerSrcIp: A1.ip, innerDstIp: '10.1.0.6', srcPort: 40000, dstPort: 80, proto: 6, vni: 5001,
      instIp: '10.1.0.6', nodeIp: B, instMac: 'fa:16:3e:00:0b:01', nodeMac: '02:00:0a:00:00:0c', idleTimeout: 45,
    });
    const inner = ipv4Frame('02:00:0a:00:00:0b', G1.mac, G1.ip, A, 17, udp(8300, 8300, oam));
    const phyMac = (await sb.vsctl('get', 'interface', 'br-phy', 'mac_in_use')).trim().replaceAll('"', '');
    const outer = encapsulate(inner, { src: G1.ip, dst: A, vni: 5001, type: 'geneve' });
    outer.set(phyMac.split(':').map((x) => parseInt(x, 16)), 0);
    const sent = Date.now();
    await sb.appctl('netdev-dummy/receive', 'eth0', Buffer.from(outer).toString('hex'));
    await until(() => dp.zetaOam.counters.injected === 1, 'the OAM inject');
    const took = Date.now() - sent;
    const direct = await sb.ofctl('-O', 'OpenFlow13', 'dump-flows', 'br-int', 'table=80');
    t.regex(direct, /idle_timeout=45/);
    t.regex(direct, /tcp,metadata=0x1389,nw_src=10\.1\.0\.5,nw_dst=10\.1\.0\.6,tp_src=40000,tp_dst=80/);
    t.log(`real OVS: OAM packet received on the underlay to direct path on the switch: ${took} ms (agent's share: ${dp.zetaOam.latencies.join(', ')} ms)`);
    // That 5-tuple now goes straight to B; another one still to the gateway.
    const now = await trace(`in_port=1,tcp,dl_src=${A1.mac},dl_dst=fa:16:3e:00:0b:01,nw_src=${A1.ip},nw_dst=10.1.0.6,tcp_src=40000,tcp_dst=80`);
    t.regex(now, /tunneling to 10\.0\.0\.12/);
    t.notRegex(now, new RegExp(`group:${gid}`));
    const other = await trace(`in_port=1,tcp,dl_src=${A1.mac},dl_dst=fa:16:3e:00:0b:01,nw_src=${A1.ip},nw_dst=10.1.0.6,tcp_src=40001,tcp_dst=80`);
    t.regex(other, new RegExp(`group:${gid}`));

    // A node removed: the group modified in place, one bucket.
    await push(goalState([G2]), 'one node left');
    t.regex(await sb.ofctl('-O', 'OpenFlow14', 'dump-groups', 'br-int'), new RegExp(`group_id=${gid},type=select,bucket=actions=set_field:${G2.mac}->eth_dst,set_field:${G2.ip}->tun_dst,output:4096$`, 'm'));
    await switchEqualsAgent(t, dp, 'the node removal');
    t.regex(await sb.ofctl('-O', 'OpenFlow13', 'dump-flows', 'br-int', 'table=80'), /idle_timeout=45/, 'the direct path stays with the gateway');

    // The gateway removed from the VPC: no group, no Zeta flow, no direct path.
    await push(goalState([G2], []), 'no gateway');
    t.notRegex(await sb.ofctl('-O', 'OpenFlow14', 'dump-groups', 'br-int'), /group_id/);
    t.notRegex(await sb.ofctl('-O', 'OpenFlow13', 'dump-flows', 'br-int'), /table=8[01]/);
    await switchEqualsAgent(t, dp, 'the gateway removal');
  } finally {
    client.close();
    await agent.stop();
  }
});
